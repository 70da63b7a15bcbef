//! Opening declared ports and turning their errors into stage errors that name the port.

use crate::ports::{self, Direction, InputPort, OutputPort, PortError, PortInfo};
use crate::StageError;

/// A readable sentence for a port error (the generated `Display` is the debug form).
pub fn describe_port_error(error: &PortError) -> String {
    match error {
        PortError::UnknownPort(m) => format!("not declared for this operator ({m})"),
        PortError::AlreadyOpen(m) => format!("already open in this stage ({m})"),
        PortError::Closed => "closed: this stage closed it or every reader has ended".into(),
        PortError::Ended => "the end of the stream was already received".into(),
        PortError::TooLarge(limit) => format!("message over the port's limit of {limit} bytes"),
        PortError::PeerFailed(m) => format!("the stage on the other end failed: {m}"),
    }
}

/// `StageError::Failed` naming `port` and what went wrong on it.
pub fn port_failed(port: &str, error: &PortError) -> StageError {
    StageError::Failed(format!("port '{port}': {}", describe_port_error(error)))
}

/// `result.on_port("slices")?` turns a port error into a stage error naming the port.
pub trait OnPort<T> {
    fn on_port(self, port: &str) -> Result<T, StageError>;
}

impl<T> OnPort<T> for Result<T, PortError> {
    fn on_port(self, port: &str) -> Result<T, StageError> {
        self.map_err(|e| port_failed(port, &e))
    }
}

/// The declared port of this name and direction, if any.
pub fn declared_port(name: &str, direction: Direction) -> Option<PortInfo> {
    ports::declared()
        .into_iter()
        .find(|p| p.name == name && p.direction == direction)
}

/// Whether this operator declares an input port `name`.
pub fn has_input(name: &str) -> bool {
    declared_port(name, Direction::Input).is_some()
}

/// Whether this operator declares an output port `name`.
pub fn has_output(name: &str) -> bool {
    declared_port(name, Direction::Output).is_some()
}

/// Opens the input port `name`.
pub fn open_input(name: &str) -> Result<InputPort, StageError> {
    ports::open_input(name).on_port(name)
}

/// Opens the output port `name`.
pub fn open_output(name: &str) -> Result<OutputPort, StageError> {
    ports::open_output(name).on_port(name)
}

/// Checks that a port declared with a message type declares `expected`: both ends of a
/// port must agree on the format, and a mismatch is the pipeline's mistake. A port declared
/// without a type is taken on trust.
pub fn expect_message_type(port: &PortInfo, expected: &str) -> Result<(), StageError> {
    match &port.message_type {
        Some(found) if found != expected => Err(StageError::InvalidInput(format!(
            "port '{}' is declared with type '{found}'; this stage carries '{expected}'",
            port.name
        ))),
        _ => Ok(()),
    }
}

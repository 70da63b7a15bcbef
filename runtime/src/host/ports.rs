//! `ward:stage/ports`: a stage's view of the job's port network. Handles are per store, so
//! one stage can never name another's ports; each declared port is opened at most once.

use super::bindings::ports::{self, Direction, PortError, PortInfo};
use super::StageState;
use crate::engine::CONTRACT_VERSION_TEXT;
use crate::ports::{PortNetwork, PortOpError};
use std::sync::Arc;
use wasmtime::component::{Linker, Resource, WasmList};
use wasmtime::StoreContextMut;

/// The ports of one stage of a job.
pub struct StagePorts {
    network: Option<Arc<PortNetwork>>,
    stage: usize,
    opened_inputs: Vec<bool>,
    opened_outputs: Vec<bool>,
}

impl StagePorts {
    /// A stage with no ports (run alone, or in a pipeline without any).
    pub fn none() -> StagePorts {
        StagePorts {
            network: None,
            stage: 0,
            opened_inputs: Vec::new(),
            opened_outputs: Vec::new(),
        }
    }

    /// Stage number `stage` of the job whose channels are `network`.
    pub fn of(network: Arc<PortNetwork>, stage: usize) -> StagePorts {
        let decls = network.declared(stage);
        StagePorts {
            opened_inputs: vec![false; decls.inputs.len()],
            opened_outputs: vec![false; decls.outputs.len()],
            network: Some(network),
            stage,
        }
    }
}

/// The receiving end of an input port, as the stage holds it.
pub struct InputPort {
    index: usize,
    cursor: usize,
    ended: bool,
}

/// The sending end of an output port, as the stage holds it.
pub struct OutputPort {
    index: usize,
    closed: bool,
}

/// A deadlock ends the stages in it: the error is raised as a trap, which a stage cannot
/// catch and retry.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Deadlock(pub String);

fn to_wit(e: PortOpError) -> wasmtime::Result<PortError> {
    Ok(match e {
        PortOpError::Closed => PortError::Closed,
        PortOpError::TooLarge(limit) => PortError::TooLarge(limit),
        PortOpError::PeerFailed(why) => PortError::PeerFailed(why),
        PortOpError::Deadlock(why) => return Err(wasmtime::Error::new(Deadlock(why))),
    })
}

fn unknown(kind: &str, name: &str, declared: Vec<&str>) -> PortError {
    PortError::UnknownPort(if declared.is_empty() {
        format!("no {kind} port '{name}' is declared for this operator (it declares none)")
    } else {
        format!(
            "no {kind} port '{name}' is declared for this operator (declared: {})",
            declared.join(", ")
        )
    })
}

/// Replaces the generated `output-port.send` in `linker`: the message's length is checked
/// against the port's limit, and room for it found in the channels and the job's channel
/// budget, before it is copied out of the stage's memory; it is copied once, straight into
/// the channel.
pub fn link_send_in_place(linker: &mut Linker<StageState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut instance = linker.instance(&format!("ward:stage/ports@{CONTRACT_VERSION_TEXT}"))?;
    instance.func_wrap_async(
        "[method]output-port.send",
        |store: StoreContextMut<'_, StageState>,
         (port, message): (Resource<OutputPort>, WasmList<u8>)| {
            Box::new(async move {
                let state = store.data();
                let handle = state.table.get(&port)?;
                let (Some(network), stage, index) =
                    (state.ports.network.clone(), state.ports.stage, handle.index)
                else {
                    return Ok((Err(PortError::Closed),));
                };
                if handle.closed {
                    return Ok((Err(PortError::Closed),));
                }
                // Waits for room in the channels and the job's channel budget (and checks
                // the length against max-message) before anything is copied.
                let reservation = match network.reserve(stage, index, message.len() as u64).await {
                    Ok(r) => r,
                    Err(e) => return Ok((Err(to_wit(e)?),)),
                };
                let bytes = message.as_le_slice(&store).to_vec();
                match reservation.commit(bytes) {
                    Ok(()) => Ok((Ok(()),)),
                    Err(e) => Ok((Err(to_wit(e)?),)),
                }
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

impl ports::Host for StageState {
    fn declared(&mut self) -> Vec<PortInfo> {
        let Some(network) = &self.ports.network else {
            return Vec::new();
        };
        let decls = network.declared(self.ports.stage);
        let info = |d: &crate::ports::PortDecl, direction| PortInfo {
            name: d.name.clone(),
            direction,
            peers: d.peers.clone(),
            message_type: d.message_type.clone(),
            max_message: d.max_message,
            capacity: d.capacity,
        };
        decls
            .inputs
            .iter()
            .map(|d| info(d, Direction::Input))
            .chain(decls.outputs.iter().map(|d| info(d, Direction::Output)))
            .collect()
    }

    fn open_input(&mut self, name: String) -> Result<Resource<InputPort>, PortError> {
        let Some(network) = &self.ports.network else {
            return Err(unknown("input", &name, Vec::new()));
        };
        let decls = &network.declared(self.ports.stage).inputs;
        let Some(index) = decls.iter().position(|d| d.name == name) else {
            return Err(unknown(
                "input",
                &name,
                decls.iter().map(|d| d.name.as_str()).collect(),
            ));
        };
        if std::mem::replace(&mut self.ports.opened_inputs[index], true) {
            return Err(PortError::AlreadyOpen(name));
        }
        self.table
            .push(InputPort {
                index,
                cursor: 0,
                ended: false,
            })
            // Only a full handle table fails: answered like a closed port; the stage's
            // handle budget is what it ran out of.
            .map_err(|_| PortError::Closed)
    }

    fn open_output(&mut self, name: String) -> Result<Resource<OutputPort>, PortError> {
        let Some(network) = &self.ports.network else {
            return Err(unknown("output", &name, Vec::new()));
        };
        let decls = &network.declared(self.ports.stage).outputs;
        let Some(index) = decls.iter().position(|d| d.name == name) else {
            return Err(unknown(
                "output",
                &name,
                decls.iter().map(|d| d.name.as_str()).collect(),
            ));
        };
        if std::mem::replace(&mut self.ports.opened_outputs[index], true) {
            return Err(PortError::AlreadyOpen(name));
        }
        self.table
            .push(OutputPort {
                index,
                closed: false,
            })
            .map_err(|_| PortError::Closed)
    }
}

impl ports::HostInputPort for StageState {
    async fn recv(
        &mut self,
        port: Resource<InputPort>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, PortError>> {
        let network = self.ports.network.clone();
        let stage = self.ports.stage;
        let handle = self.table.get_mut(&port)?;
        let Some(network) = network else {
            return Ok(Err(PortError::Ended));
        };
        if handle.ended {
            return Ok(Err(PortError::Ended));
        }
        let mut cursor = handle.cursor;
        let index = handle.index;
        let got = network.recv(stage, index, &mut cursor).await;
        let handle = self.table.get_mut(&port)?;
        handle.cursor = cursor;
        match got {
            Ok(None) => {
                handle.ended = true;
                Ok(Ok(None))
            }
            Ok(Some(message)) => Ok(Ok(Some(message))),
            Err(e) => Ok(Err(to_wit(e)?)),
        }
    }

    fn drop(&mut self, port: Resource<InputPort>) -> wasmtime::Result<()> {
        let handle = self.table.delete(port)?;
        if let Some(network) = &self.ports.network {
            network.close_input(self.ports.stage, handle.index);
        }
        Ok(())
    }
}

impl ports::HostOutputPort for StageState {
    // Linked in its place is `link_send_in_place`, which checks the length before copying;
    // this is what the generated trait asks for, and behaves the same.
    async fn send(
        &mut self,
        port: Resource<OutputPort>,
        message: Vec<u8>,
    ) -> wasmtime::Result<Result<(), PortError>> {
        let handle = self.table.get(&port)?;
        let Some(network) = self.ports.network.clone() else {
            return Ok(Err(PortError::Closed));
        };
        if handle.closed {
            return Ok(Err(PortError::Closed));
        }
        match network.send(self.ports.stage, handle.index, message).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(to_wit(e)?)),
        }
    }

    fn close(&mut self, port: Resource<OutputPort>) {
        let Ok(handle) = self.table.get_mut(&port) else {
            return;
        };
        handle.closed = true;
        let index = handle.index;
        if let Some(network) = &self.ports.network {
            network.close_output(self.ports.stage, index);
        }
    }

    fn drop(&mut self, port: Resource<OutputPort>) -> wasmtime::Result<()> {
        let handle = self.table.delete(port)?;
        if let Some(network) = &self.ports.network {
            network.close_output(self.ports.stage, handle.index);
        }
        Ok(())
    }
}

//! Slices in, smoothed slices out, three slices in memory.

use imaging::ct_slice::{self, CtSliceError, SliceOrder};
use imaging::smooth::SliceSmoother;
use ward_stage_sdk::ports::Direction;
use ward_stage_sdk::{self as sdk, invalid_input, log_info, OnPort, StageError};

/// The input port whose presence selects stream mode.
pub const INPUT: &str = "slices";
/// Where the smoothed stream goes.
pub const OUTPUT: &str = "smoothed";

pub fn run() -> Result<(), StageError> {
    check_ports()?;
    let input = sdk::open_input(INPUT)?;
    let output = sdk::open_output(OUTPUT)?;

    let first = input
        .recv()
        .on_port(INPUT)?
        .ok_or_else(|| bad(0, CtSliceError::NoHeader))?;
    let header = ct_slice::decode_header(&first).map_err(|e| bad(0, e))?;
    // The header describes the smoothed volume as well: same geometry, same keys.
    output.send(&first).on_port(OUTPUT)?;
    drop(first);

    let [nx, ny, nz] = header.dims;
    let mut order = SliceOrder::new(&header);
    let mut smoother = SliceSmoother::new(nx, ny).map_err(|e| invalid_input!("{e}"))?;
    let send = |k: usize, samples: &[i16]| -> Result<(), StageError> {
        let message =
            ct_slice::encode_slice(k, nx, ny, samples).map_err(|e| invalid_input!("{e}"))?;
        output.send(&message).on_port(OUTPUT)?;
        sdk::progress((k + 1) as f32 / nz as f32, "smoothing slices");
        Ok(())
    };
    let mut message = 1;
    while let Some(bytes) = input.recv().on_port(INPUT)? {
        let slice = ct_slice::decode_slice(&bytes).map_err(|e| bad(message, e))?;
        order.check(&slice).map_err(|e| bad(message, e))?;
        if let Some((k, samples)) = smoother
            .push(&slice.samples)
            .map_err(|e| invalid_input!("{e}"))?
        {
            send(k, &samples)?;
        }
        message += 1;
    }
    order.finish().map_err(|e| bad(message, e))?;
    if let Some((k, samples)) = smoother.finish() {
        send(k, &samples)?;
    }
    output.close();
    log_info!("smoothed {nz} slices of {nx}x{ny} from port '{INPUT}' to port '{OUTPUT}'");
    Ok(())
}

/// Both ports must be declared, and with this format if typed.
fn check_ports() -> Result<(), StageError> {
    if let Some(port) = sdk::declared_port(INPUT, Direction::Input) {
        sdk::expect_message_type(&port, ct_slice::MESSAGE_TYPE)?;
    }
    let port = sdk::declared_port(OUTPUT, Direction::Output).ok_or_else(|| {
        invalid_input!(
            "an input port '{INPUT}' selects stream mode, which needs an output port '{OUTPUT}'"
        )
    })?;
    sdk::expect_message_type(&port, ct_slice::MESSAGE_TYPE)
}

/// The input stream is not a valid `ward/ct-slice-v1` stream.
fn bad(message: usize, e: CtSliceError) -> StageError {
    invalid_input!("port '{INPUT}', message {message}: {e}")
}

//! Streaming the series read on the output port `slices` (format `ward/ct-slice-v1`), for
//! pipelines whose downstream stages take slices as they come.

use imaging::ct_slice::{self, CtSliceError};
use imaging::raw_io::VolumeHeader;
use imaging::Volume;
use ward_stage_sdk::ports::Direction;
use ward_stage_sdk::{self as sdk, log_info, OnPort, StageError};

/// The output port this stage streams on when its operator declares it.
pub const PORT: &str = "slices";

/// Whether the operator declares the port; a declared type must be this format's.
pub fn wanted() -> Result<bool, StageError> {
    match sdk::declared_port(PORT, Direction::Output) {
        Some(port) => {
            sdk::expect_message_type(&port, ct_slice::MESSAGE_TYPE)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Sends the header, then every axial slice in order, then closes the port.
pub fn send_series(volume: &Volume<i16>, header: &VolumeHeader) -> Result<(), StageError> {
    let port = sdk::open_output(PORT)?;
    let [nx, ny, nz] = volume.dims;
    let plane = nx * ny;
    port.send(&ct_slice::encode_header(header).map_err(format_error)?)
        .on_port(PORT)?;
    for (k, samples) in volume.data.chunks_exact(plane).enumerate() {
        let message = ct_slice::encode_slice(k, nx, ny, samples).map_err(format_error)?;
        port.send(&message).on_port(PORT)?;
        sdk::progress((k + 1) as f32 / nz as f32, "streaming slices");
    }
    port.close();
    log_info!("streamed {nz} slices on port '{PORT}'");
    Ok(())
}

/// The series cannot be carried by the format (e.g. a dimension over 32 bits).
fn format_error(e: CtSliceError) -> StageError {
    StageError::InvalidInput(format!("port '{PORT}': {e}"))
}

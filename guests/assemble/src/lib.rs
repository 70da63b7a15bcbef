//! Stage `assemble`: receives a `ward/ct-slice-v1` stream on the input port `slices` and
//! writes the volume to its results as `volume.raw` + `volume.json`, the files `dicom-reader`
//! writes, so `segment`, `render` and `dicom-writer` read it the same way.
//!
//! The stream must be complete and in order: a header, then slices 0, 1, ... of the header's
//! shape, each once. Anything else (a missing, repeated, misplaced or wrongly sized slice, a
//! message that is not of this format) is `invalid-input` naming the message.

use imaging::ct_slice::{self, CtSliceError, VolumeAssembler};
use imaging::raw_io;
use std::path::PathBuf;
use ward_stage_sdk::ports::Direction;
use ward_stage_sdk::{self as sdk, invalid_input, log_info, Guest, OnPort, StageError};

const INPUT: &str = "slices";

struct Assemble;

impl Guest for Assemble {
    fn run() -> Result<(), StageError> {
        let port = sdk::declared_port(INPUT, Direction::Input).ok_or_else(|| {
            invalid_input!(
                "this stage reads the input port '{INPUT}', which the operator does not declare"
            )
        })?;
        sdk::expect_message_type(&port, ct_slice::MESSAGE_TYPE)?;
        let out = PathBuf::from(sdk::results()?.path);
        let input = sdk::open_input(INPUT)?;

        let first = input
            .recv()
            .on_port(INPUT)?
            .ok_or_else(|| bad(0, CtSliceError::NoHeader))?;
        let header = ct_slice::decode_header(&first).map_err(|e| bad(0, e))?;
        let nz = header.dims[2];
        let mut assembler = VolumeAssembler::new(header).map_err(|e| bad(0, e))?;
        let mut message = 1;
        while let Some(bytes) = input.recv().on_port(INPUT)? {
            let slice = ct_slice::decode_slice(&bytes).map_err(|e| bad(message, e))?;
            assembler.add(&slice).map_err(|e| bad(message, e))?;
            sdk::progress(assembler.received() as f32 / nz as f32, "receiving slices");
            message += 1;
        }
        let (volume, header) = assembler.finish().map_err(|e| bad(message, e))?;

        sdk::progress(1.0, "writing volume");
        raw_io::write_volume(&out, "volume", &volume, header.extra)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let [nx, ny, nz] = volume.dims;
        log_info!("assembled {nx}x{ny}x{nz} voxels from port '{INPUT}'");
        Ok(())
    }
}

/// The input stream is not a valid `ward/ct-slice-v1` stream.
fn bad(message: usize, e: CtSliceError) -> StageError {
    invalid_input!("port '{INPUT}', message {message}: {e}")
}

sdk::export!(Assemble);

//! Stage `smooth`: the CT volume smoothed with the 3x3x3 binomial kernel (1-2-1 along each
//! axis, edges replicated, rounded half up; see `imaging::smooth`).
//!
//! Two modes, chosen by the operator's ports:
//! - stream: when it declares an input port `slices` (`ward/ct-slice-v1`), it forwards the
//!   header on the output port `smoothed` and sends each smoothed slice as soon as the slice
//!   after it has arrived, holding three slices at a time;
//! - volume: otherwise it reads `volume.raw` + `volume.json` from the upstream results
//!   holding them and writes the smoothed `volume.raw` + `volume.json` (same metadata) to its
//!   results, where `segment`, `render` and `dicom-writer` read it as they read the reader's.
//!
//! Both modes give the same samples, so assembling the stream output (stage `assemble`)
//! writes the same bytes as volume mode. In volume mode the GPU does the work when the node
//! has one and `requests.gpu-memory` holds the volume twice (parameter `device: cpu` keeps it
//! on the CPU); the GPU kernel uses the same integer arithmetic, so the samples are equal.

use ward_stage_sdk::{self as sdk, Guest, StageError};

mod gpu_mode;
mod stream_mode;
mod volume_mode;

struct Smooth;

impl Guest for Smooth {
    fn run() -> Result<(), StageError> {
        if sdk::has_input(stream_mode::INPUT) {
            stream_mode::run()
        } else {
            volume_mode::run()
        }
    }
}

sdk::export!(Smooth);

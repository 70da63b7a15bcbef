//! Volume processing shared by Ward's stages.
//!
//! Plain Rust with no platform assumptions: the same code runs inside the wasm32-wasip2 stage
//! components and natively, where it is the baseline the host's benchmarks compare against.
//! DICOM reading is behind the `dicom` feature so the host's path dependency stays light.

pub mod apng;
pub mod bias_field;
pub mod cine;
pub mod components;
pub mod ct_slice;
#[cfg(feature = "dicom")]
pub mod dicom_series;
pub mod head_mask;
pub mod image;
pub mod lanes;
pub mod morphology;
pub mod otsu;
pub mod project;
pub mod raw_io;
pub mod reformat;
pub mod render;
pub mod segmentation;
pub mod smooth;
pub mod speckle;
pub mod stats;
pub mod threshold;
pub mod volume;
#[cfg(all(target_os = "wasi", target_env = "p2"))]
mod wasi_write;

pub use volume::Volume;

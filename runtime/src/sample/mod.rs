//! Synthetic sample data behind `ward sample ct`.
//!
//! [`phantom`] defines an analytic CT phantom in patient coordinates;
//! [`ct_series`] samples it onto a voxel grid and writes a DICOM CT series.
//! [`Phantom::varied`] draws other phantoms of the same kind (for training and
//! testing segmentation models), with labels at any point from
//! [`Phantom::label_at`].
//! Everything is deterministic (fixed dates, UIDs derived from a seed) so
//! that pipeline outputs over the sample can be compared byte for byte.

pub mod ct_series;
pub mod phantom;

pub use ct_series::{
    voxel_center_mm, write_ct_series, write_ct_series_with_progress, CtSeriesOptions, SampleError,
    SeriesSummary,
};
pub use phantom::{expected_components, hu_at, Phantom, PhantomSphere, Sphere, SPHERES};

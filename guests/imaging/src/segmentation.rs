//! The `segment` stage's computation, shared so the host's benchmark runs exactly the same
//! code natively: threshold, optional morphology, connected components, measurements.

use crate::components::{self, ComponentsError, Connectivity};
use crate::morphology::{self, Element, Operation};
use crate::stats::{self, LabelStats};
use crate::threshold;
use crate::volume::Volume;

/// What to segment and how.
#[derive(Debug, Clone)]
pub struct Params {
    /// HU range kept, inclusive.
    pub lower: f64,
    pub upper: f64,
    pub connectivity: Connectivity,
    /// Applied to the thresholded mask before labelling.
    pub morphology: Option<(Operation, Element, usize)>,
    /// Components smaller than this are dropped.
    pub min_voxels: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            lower: 200.0,
            upper: 3071.0,
            connectivity: Connectivity::Six,
            morphology: None,
            min_voxels: 1,
        }
    }
}

/// A segmentation: the label map and what was measured of each label.
pub struct Segmentation {
    pub labels: Volume<u16>,
    /// Voxels within [lower, upper] before morphology and size filtering.
    pub thresholded_voxels: usize,
    pub components: Vec<LabelStats>,
    pub dropped: usize,
    pub total_voxels: usize,
    pub total_ml: f64,
}

/// Segments `ct`, reporting progress as (fraction, phase).
pub fn segment(
    ct: &Volume<i16>,
    params: &Params,
    progress: &mut dyn FnMut(f32, &str),
) -> Result<Segmentation, ComponentsError> {
    progress(0.1, "thresholding");
    let mut mask = threshold::threshold(ct, params.lower, params.upper);
    let thresholded_voxels = threshold::count(&mask);
    if let Some((op, element, radius)) = params.morphology {
        progress(0.3, "morphology");
        mask = morphology::apply(&mask, op, element, radius);
    }
    progress(0.5, "labelling components");
    let labelled = components::label(&mask, params.connectivity, params.min_voxels)?;
    drop(mask);
    progress(0.7, "measuring");
    let components = stats::measure(&labelled.labels, ct, labelled.components.len());
    let total_voxels: usize = components.iter().map(|c| c.voxels).sum();
    Ok(Segmentation {
        total_ml: total_voxels as f64 * ct.voxel_mm3() / 1000.0,
        labels: labelled.labels,
        thresholded_voxels,
        components,
        dropped: labelled.dropped,
        total_voxels,
    })
}

//! A pipeline stored as a document (by `ward serve`, or in a `WardPipeline`), read as if it
//! were the file `<components>/<name>.yaml`: its local components resolve inside the
//! components directory and nowhere else. Registry components are exempt: their files come
//! from the component store, once verified.

use super::{parse, Pipeline};
use std::path::Path;

/// Parses `yaml` as `<components>/<name>.yaml` and refuses a local component outside
/// `components`.
pub fn parse_stored(components: &Path, name: &str, yaml: &str) -> Result<Pipeline, String> {
    let file = components.join(format!("{name}.yaml"));
    let pipeline = parse(&file, yaml).map_err(|e| e.to_string())?;
    let root = components
        .canonicalize()
        .map_err(|e| format!("{}: {e}", components.display()))?;
    for stage in pipeline
        .stages
        .iter()
        .filter(|s| s.component.registry.is_none())
    {
        let path = stage
            .component
            .path
            .canonicalize()
            .map_err(|e| format!("{}: {e}", stage.component.path.display()))?;
        if !path.starts_with(&root) {
            return Err(format!(
                "{}: operator '{}': component {} is outside the components directory {}",
                stage.component.location,
                stage.name,
                stage.component.path.display(),
                components.display()
            ));
        }
    }
    Ok(pipeline)
}

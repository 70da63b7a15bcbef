//! The standalone adapter's pipelines, loaded from the routes' files once at start-up (and
//! by `ward dicom listen --check`), so that a pipeline that is not valid, or an export that
//! names a stage or output no pipeline of its route has, is refused before anything is
//! received rather than when a study arrives.

use super::config::{AdapterConfig, ConfigError, Problems};
use crate::pipeline::{Pipeline, PipelineError};
use std::path::Path;

/// Each route's pipelines, in the order of `AdapterConfig::routes` and of each route's
/// `pipelines`.
#[derive(Debug, Clone)]
pub struct RoutePipelines {
    pub by_route: Vec<Vec<Pipeline>>,
}

impl RoutePipelines {
    /// Loads every route's pipelines and checks every export against them.
    pub fn load(config: &AdapterConfig) -> Result<RoutePipelines, ConfigError> {
        let mut problems = Problems::new(&config.file);
        let mut by_route = Vec::new();
        for route in &config.routes {
            let mut loaded = Vec::new();
            for (file, location) in route.pipelines.iter().zip(&route.pipeline_locations) {
                match crate::pipeline::load(file) {
                    Ok(p) => loaded.push(p),
                    Err(PipelineError::Read { source, .. }) => problems.push(
                        location.clone(),
                        format!(
                            "route '{}': cannot read the pipeline {}: {source}",
                            route.ae_title,
                            file.display()
                        ),
                    ),
                    Err(PipelineError::Invalid(found)) => {
                        problems.push(
                            location.clone(),
                            format!(
                                "route '{}': the pipeline {} is not valid",
                                route.ae_title,
                                file.display()
                            ),
                        );
                        // The pipeline's own problems follow, each where it is in its file.
                        problems.found.extend(found);
                    }
                }
            }
            if loaded.len() == route.pipelines.len() {
                for export in &route.exports {
                    if let Err(why) = export_target(&loaded, &export.stage, &export.output) {
                        problems.push(
                            export.location.clone(),
                            format!(
                                "route '{}': export output '{}.{}': {why}",
                                route.ae_title, export.stage, export.output
                            ),
                        );
                    }
                }
            }
            by_route.push(loaded);
        }
        // Pipeline problems keep the order they were found in, after the configuration's.
        if problems.found.is_empty() {
            Ok(RoutePipelines { by_route })
        } else {
            Err(ConfigError::Invalid(problems.found))
        }
    }

    /// The pipeline loaded from `file` for the route at `route` (an index into the routes).
    pub fn find(&self, route: usize, file: &Path) -> Option<&Pipeline> {
        self.by_route.get(route)?.iter().find(|p| p.file == file)
    }

    /// Jobs at once when `max-jobs` is not set: the cores over the largest CPU request of
    /// any stage of any route's pipeline, at least 1.
    pub fn default_max_jobs(&self, cores: usize) -> usize {
        let largest = self
            .by_route
            .iter()
            .flatten()
            .flat_map(|p| &p.stages)
            .map(|s| s.requests.cpu.max(1) as usize)
            .max()
            .unwrap_or(1);
        (cores / largest).max(1)
    }

    pub fn count(&self) -> usize {
        self.by_route.iter().map(Vec::len).sum()
    }
}

/// Some pipeline of the route must have the stage, and that stage the output.
fn export_target(pipelines: &[Pipeline], stage: &str, output: &str) -> Result<(), String> {
    if pipelines.is_empty() {
        return Err("the route has no pipelines to export from".into());
    }
    let stages: Vec<_> = pipelines.iter().filter_map(|p| p.stage(stage)).collect();
    if stages.is_empty() {
        let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
        return Err(format!(
            "no stage '{stage}' in the route's pipeline(s) {}",
            names.join(", ")
        ));
    }
    if stages
        .iter()
        .any(|s| s.outputs.iter().any(|o| o.name == output))
    {
        return Ok(());
    }
    let outputs: Vec<&str> = stages
        .iter()
        .flat_map(|s| s.outputs.iter().map(|o| o.name.as_str()))
        .collect();
    Err(format!(
        "stage '{stage}' has no output '{output}' (its outputs: {})",
        if outputs.is_empty() {
            "none".to_string()
        } else {
            outputs.join(", ")
        }
    ))
}

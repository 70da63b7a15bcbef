//! Pipeline files: the YAML model, validation with precise locations, and the stage graph.

mod error;
mod file_model;
mod graph;
mod load;
pub(crate) mod located_yaml;
mod model;
mod ports;
pub mod quantity;

pub use error::{PipelineError, Problem};
pub use load::{load, parse};
pub use model::*;

#[cfg(test)]
mod ports_tests;
#[cfg(test)]
mod tests;

//! Pipeline files: the YAML model, validation with precise locations, and the stage graph.

mod clara;
mod error;
mod file_model;
mod graph;
mod load;
mod locate;
pub(crate) mod located_yaml;
mod model;
mod ports;
pub mod quantity;
mod stored;

pub use clara::{convert_clara, is_clara_api_version, ClaraOptions, Converted};
pub use error::{one_per_line, PipelineError, Problem};
/// Locating YAML errors, for the other YAML files Ward reads.
pub(crate) use load::check_identifier;
pub use load::{load, parse};
pub use model::*;
pub use stored::parse_stored;

#[cfg(test)]
mod clara_tests;
#[cfg(test)]
mod ports_tests;
#[cfg(test)]
mod tests;

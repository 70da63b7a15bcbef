//! Writing Ward stages: the bindings of the `ward:stage/stage` world plus helpers.
//!
//! A stage crate (`crate-type = ["cdylib"]`, built for `wasm32-wasip2`) implements [`Guest`]
//! and exports it:
//!
//! ```no_run
//! use ward_stage_sdk::{Guest, StageError};
//!
//! struct MyStage;
//!
//! impl Guest for MyStage {
//!     fn run() -> Result<(), StageError> {
//!         let input = ward_stage_sdk::payload()?;
//!         let results = ward_stage_sdk::results()?;
//!         ward_stage_sdk::log_info!("reading {}", input.path);
//!         let files = std::fs::read_dir(&input.path)
//!             .map_err(|e| ward_stage_sdk::failed!("cannot list {}: {e}", input.path))?
//!             .count();
//!         ward_stage_sdk::progress(1.0, "counted");
//!         let text = format!("{files} entries\n");
//!         let dir = std::path::Path::new(&results.path);
//!         ward_stage_sdk::write_file(dir, "count.txt", text.as_bytes())?;
//!         Ok(())
//!     }
//! }
//!
//! ward_stage_sdk::export!(MyStage);
//! ```
//!
//! `ward new stage NAME` writes such a crate, with a pipeline file, a test payload and a copy
//! of this SDK, that builds outside the Ward repository.
//!
//! Stages never hard-code volume paths: they ask [`volumes::mounted`] (or the helpers here,
//! which do). Streaming ports are opened with [`open_input`] / [`open_output`]; a port's
//! errors become stage errors naming it with [`OnPort::on_port`].
//!
//! # Versions
//!
//! The SDK's version is the contract's: `ward-stage-sdk` 0.2.0 generates its bindings from
//! `ward:stage@0.2.0`, the copy in this crate's `wit/` of the contract a Ward host speaks.
//! A host accepts components built against the same major version of the contract (the
//! same minor version while the major is 0), so a stage built with this SDK runs on every
//! Ward host that speaks `ward:stage@0.2.x`.

// Lets the generated code and the exported macro name this crate the same way from inside
// it and from stage crates.
extern crate self as ward_stage_sdk;

/// The generated bindings.
pub mod bindings {
    wit_bindgen::generate!({
        // The SDK's own copy of the contract, so that it builds outside the repository.
        path: "wit",
        world: "stage",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "ward_stage_sdk::bindings",
        runtime_path: "ward_stage_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use bindings::export;
pub use bindings::ward::stage::types::StageError;
pub use bindings::ward::stage::{context, gpu, ports, volumes};
pub use bindings::Guest;
pub use context::Level;
pub use volumes::{Volume, VolumeKind};

#[cfg(target_arch = "wasm32")]
mod alloc;
mod logging;
#[cfg(feature = "inference")]
pub mod nn;
mod params;
mod streams;
mod vols;

pub use logging::{log, progress};

/// Every stage built with the SDK allocates through it: large blocks come zeroed from fresh
/// pages, without the C library clearing them again (see `alloc`).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::StageAllocator = alloc::StageAllocator::new();
pub use params::{param, param_choice, param_opt};
pub use streams::{
    declared_port, describe_port_error, expect_message_type, has_input, has_output, open_input,
    open_output, port_failed, OnPort,
};
pub use vols::{datasets, input_containing, inputs_from_stages, payload, results, write_file};

/// `StageError::Failed` with a formatted message.
#[macro_export]
macro_rules! failed {
    ($($arg:tt)*) => { $crate::StageError::Failed(format!($($arg)*)) };
}

/// `StageError::InvalidInput` with a formatted message.
#[macro_export]
macro_rules! invalid_input {
    ($($arg:tt)*) => { $crate::StageError::InvalidInput(format!($($arg)*)) };
}

//! Ward: medical-imaging pipelines whose stages are untrusted WebAssembly components.
//!
//! The runtime library behind the `ward` binary: the wasmtime engine and sandbox
//! ([`engine`]), the host side of the `ward:stage` contract ([`host`]), pipeline files
//! ([`pipeline`]), the volumes a stage sees ([`volumes`]), streaming channels between
//! stages ([`ports`]), job execution and records ([`jobs`]), and the synthetic CT phantom ([`sample`]). The harnesses behind `ward bench`
//! and `ward conformance` are part of the binary, at the command-line edge.

pub mod cluster;
pub mod dicom;
pub mod engine;
pub mod host;
pub mod jobs;
pub mod nn;
pub mod pipeline;
pub mod ports;
pub mod registry;
pub mod sample;
pub mod service;
pub mod volumes;

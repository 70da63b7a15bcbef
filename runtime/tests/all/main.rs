//! Ward's integration tests: one test binary (every extra one relinks wasmtime), a module per
//! area. They drive real components built from `guests/` and `conformance/stages/` (built
//! once per run), the real engine and the `ward` binary, and DCMTK's dcmdump.

mod bench;
mod cli;
mod conformance;
mod ct_pipeline;
mod dicom_scp;
mod dicom_scu;
mod engine;
mod gpu;
mod new_stage;
mod ports;
mod real_dicom;
mod sandbox;
mod service;
mod service_limits;
mod service_uploads;
mod streaming;
mod support;
mod validation;

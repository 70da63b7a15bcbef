//! Ward's integration tests: one test binary (every extra one relinks wasmtime), a module per
//! area. They drive real components built from `guests/` and `conformance/stages/` (built
//! once per run), the real engine and the `ward` binary, and DCMTK's dcmdump.

mod ai_segment;
mod bench;
mod cli;
mod client;
mod clinical_workflows;
mod cluster_cli;
mod cluster_nodes;
mod cluster_serve;
mod conformance;
mod convert_clara;
mod ct_pipeline;
mod dicom_scp;
mod dicom_scu;
mod engine;
mod examples;
mod gpu;
mod inference;
mod new_stage;
mod ports;
mod pynetdicom_peers;
mod readme_serve;
mod real_dicom;
mod registry_components;
mod registry_harness;
mod registry_support;
mod sandbox;
mod service;
mod service_config;
mod service_events;
mod service_limits;
mod service_preemption;
mod service_registry;
mod service_retention;
mod service_uploads;
mod service_watermarks;
mod stow_clients;
mod streaming;
mod support;
mod ui;
mod ui_browser;
mod validation;
mod webdriver;

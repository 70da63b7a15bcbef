//! The DICOM adapter: DIMSE over TCP on dicom-rs's upper layer. Ward receives instances from
//! the PACS (C-ECHO and C-STORE SCP), assembles them into payloads that trigger pipelines,
//! and sends results back (C-STORE SCU).

pub mod config;
pub mod dimse;
pub mod export;
pub mod instance;
pub mod peer;
pub mod pipelines;
pub mod queue;
pub mod route;
pub mod scp;
pub mod scu;
pub mod slots;
#[cfg(test)]
mod smoke;
pub mod sop;
pub mod store;
pub mod studies;

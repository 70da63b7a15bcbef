//! Streaming ports between the stages of a job: bounded channels with back-pressure, one
//! channel budget for all of a job's channels (what they hold is host memory), fan-out and
//! fan-in, failure propagation, and deadlock detection.
//!
//! One [`PortNetwork`] per job holds every channel ("edge": one output port to one input
//! port). Stages run on threads of their own; a port call that must wait parks on the
//! stage's own [`tokio::sync::Notify`], so the stage's deadline (a timer on its runtime)
//! still ends it.

mod deadlock;
mod network;
mod stats;
#[cfg(test)]
mod tests;

pub use network::{PortDecl, PortNetwork, PortOpError, Reservation, StagePortDecls};
pub use stats::{BudgetStats, PortStats};

//! What a job's port channels carried, for the job summary.

use serde::Serialize;

/// One channel: an output port to one of its readers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PortStats {
    /// `stage.port` of the writer.
    pub writer: String,
    /// `stage.port` of the reader.
    pub reader: String,
    pub messages: u64,
    pub bytes: u64,
    /// The most bytes the channel held at once: what back-pressure bounded.
    pub peak_buffered_bytes: u64,
    pub peak_buffered_messages: u64,
    pub capacity: u32,
    pub max_message: u64,
    /// Seconds the writer waited because this channel was full.
    pub writer_blocked_s: f64,
    /// Seconds the reader waited on the port for a message.
    pub reader_blocked_s: f64,
}

/// The job's channel budget: what all its channels held together.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BudgetStats {
    /// The most bytes the job's channels may hold at once (`ports-budget`).
    pub budget_bytes: u64,
    /// The most they held at once (a message shared by several readers counted once, a
    /// message being copied in counted too): never above `budget_bytes`.
    pub peak_buffered_bytes: u64,
    /// Seconds writers waited because the budget was full, all writers together.
    pub writer_blocked_s: f64,
}

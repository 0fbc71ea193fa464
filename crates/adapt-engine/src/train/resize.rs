//! A change of a run's micro-batch: an event and a record kept in its checkpoint.

use serde::{Deserialize, Serialize};

/// Why the micro-batch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ResizeReason {
    /// A micro-batch's peak went over the budget: the step was taken again, smaller.
    OverBudget,
    /// MLX could not allocate: the step was taken again, smaller.
    AllocationFailed,
    /// The step's peak came near the budget: the next steps are smaller.
    NearBudget,
    /// Steps running had room for twice the rows: the next steps are larger.
    Room,
}

/// One change of the micro-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BatchResize {
    /// The step (from 1) first taken at the new size.
    pub step: u64,
    /// Rows per micro-batch before and after.
    pub from: usize,
    pub to: usize,
    pub reason: ResizeReason,
    /// The measured peak that decided it, and the budget it was held against (bytes).
    pub peak_memory: u64,
    pub budget: u64,
}

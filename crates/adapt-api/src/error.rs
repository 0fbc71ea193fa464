//! Errors at the shell boundary: a stable code and a message a person can act on.

use serde::Serialize;

/// `{code, message}` as shells receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[error("{message}")]
pub struct ApiError {
    /// Stable, machine-readable code such as `model.not_found`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.into(),
            message: message.into(),
        }
    }

    pub(crate) fn engine_gone() -> ApiError {
        ApiError::new(
            "api.engine_stopped",
            "the engine thread stopped unexpectedly",
        )
    }

    pub(crate) fn no_model() -> ApiError {
        ApiError::new(
            "api.no_model",
            "no model is loaded; load one first (for example with --model PATH)",
        )
    }
}

impl From<adapt_engine::EngineError> for ApiError {
    fn from(e: adapt_engine::EngineError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl From<adapt_store::StoreError> for ApiError {
    fn from(e: adapt_store::StoreError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl From<adapt_paths::PathsError> for ApiError {
    fn from(e: adapt_paths::PathsError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

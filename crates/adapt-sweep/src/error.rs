//! [`SweepError`]: a sweep definition that cannot be used, naming the field and what to do.

/// Errors from reading a sweep definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepError {
    /// A knob in `space` (or a key of the definition) that is not a training setting.
    #[error("{source_name}: unknown knob '{knob}'; known knobs: {known}")]
    UnknownKnob {
        source_name: String,
        knob: String,
        known: String,
    },
    /// A field whose value cannot be used.
    #[error("{source_name}: '{field}': {message}")]
    BadField {
        source_name: String,
        field: String,
        message: String,
    },
}

impl SweepError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            SweepError::UnknownKnob { .. } => "sweep.unknown_knob",
            SweepError::BadField { .. } => "sweep.bad_field",
        }
    }

    pub(crate) fn bad(source: &str, field: &str, message: impl Into<String>) -> SweepError {
        SweepError::BadField {
            source_name: source.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

//! The engine's error type. Every variant has a stable `code()` that shells show to people and
//! scripts can match on; messages say what went wrong and, where possible, what to do.

use std::path::PathBuf;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// MLX itself reported an error (shapes, dtypes, out of memory, …).
    #[error("MLX: {0}")]
    Mlx(#[from] mlx_rs::error::Exception),

    /// The GPU was required but cannot be used.
    #[error(
        "the GPU was required but cannot be used: {cause}. Fix the GPU runtime, or choose \
         device auto to fall back to the CPU (--device auto, ADAPT_DEVICE=auto) or cpu"
    )]
    GpuUnavailable { cause: String },

    /// The runtime is MLX's CUDA build and its GPU cannot be used: that build takes all its
    /// memory, the CPU's arrays too, from the CUDA driver, so it cannot fall back to the CPU in
    /// this process (`Adapt::start` starts the program again on MLX's CPU runtime instead).
    #[error(
        "the GPU cannot be used: {cause}. This MLX runtime is the CUDA build, which takes all \
         its memory (the CPU's too) from the CUDA driver, so it cannot run on the CPU without a \
         device: fix the GPU (driver, CUDA_VISIBLE_DEVICES), or choose device auto, which starts \
         Adapt again on MLX's CPU runtime (ADAPT_CPU_RUNTIME names it)"
    )]
    NoDeviceForRuntime { cause: String },

    /// The model file or folder does not exist.
    #[error("{}: no such model file or folder", path.display())]
    ModelNotFound { path: PathBuf },

    /// The model's files are readable but not what the engine needs.
    #[error("{}: {message}", path.display())]
    InvalidModel { path: PathBuf, message: String },

    /// The model uses an architecture the engine does not implement.
    #[error(
        "{}: architecture '{architecture}' is not supported; supported: {}",
        path.display(),
        supported.join(", ")
    )]
    UnsupportedArchitecture {
        path: PathBuf,
        architecture: String,
        /// The architectures that are.
        supported: &'static [&'static str],
    },

    /// Writing a model folder failed.
    #[error("cannot write {}: {message}; check free space and permissions", path.display())]
    Write { path: PathBuf, message: String },

    /// A request did not fit the model (for example a prompt longer than its context).
    #[error("{0}")]
    InvalidRequest(String),

    /// The GGUF header reader rejected the file.
    #[error(transparent)]
    Gguf(#[from] adapt_gguf::GgufError),

    /// Tokenizer or chat-template failure.
    #[error(transparent)]
    Text(#[from] adapt_text::TextError),

    /// Joining or talking to the group of processes training together.
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistributedError),
}

impl EngineError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Mlx(_) => "engine.mlx",
            EngineError::GpuUnavailable { .. } | EngineError::NoDeviceForRuntime { .. } => {
                "device.gpu_unavailable"
            }
            EngineError::ModelNotFound { .. } => "model.not_found",
            EngineError::InvalidModel { .. } => "model.invalid",
            EngineError::UnsupportedArchitecture { .. } => "model.unsupported_architecture",
            EngineError::InvalidRequest(_) => "request.invalid",
            EngineError::Write { .. } => "model.write_failed",
            EngineError::Gguf(e) => e.code(),
            EngineError::Text(e) => e.code(),
            EngineError::Distributed(e) => e.code(),
        }
    }

    pub(crate) fn invalid_model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EngineError::InvalidModel {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

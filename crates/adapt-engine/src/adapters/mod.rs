//! Adapters: LoRA and DoRA over a model's projections, in mlx-lm's layout.
//!
//! [`config`] says what an adapter is; [`attach`] puts fresh ones on a model (everything else
//! frozen) and takes them off; [`files`] saves and loads adapter folders (`adapters.safetensors`
//! and `adapter_config.json`) and fingerprints them; [`swap`] attaches a folder to a loaded
//! model or swaps it for another; [`fuse`] folds adapters into their base, in memory or into a
//! new model folder; [`shelf`] keeps adapters taken off in memory for fast swaps. The layer itself is [`crate::models::adapter::Adapter`]: model code never
//! knows it is there.

pub mod attach;
pub mod config;
pub mod files;
pub mod fuse;
pub mod shelf;
pub mod swap;

pub use attach::{attach, remove, set_cast_to_input, set_training};
pub use config::{AdapterConfig, FineTuneType, LoraParameters};
pub use files::{
    adapter_weights, fingerprint, load, load_weights, read_config, save_weights, ADAPTERS_FILE,
    CONFIG_FILE,
};
pub use fuse::{fuse, fuse_folder, FuseReport};
pub use shelf::AdapterShelf;

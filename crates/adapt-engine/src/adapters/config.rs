//! What an adapter is, as `adapter_config.json` records it: LoRA or DoRA, how many blocks,
//! and mlx-lm's `lora_parameters` (rank, scale, dropout, projections).

use serde::{Deserialize, Serialize};

/// LoRA or DoRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum FineTuneType {
    #[default]
    Lora,
    Dora,
}

/// The adapter's shape: mlx-lm's `lora_parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LoraParameters {
    pub rank: i32,
    pub scale: f32,
    pub dropout: f32,
    /// Projections to adapt, relative to a block (`self_attn.q_proj`, or just `q_proj`);
    /// `None`: every projection of the block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
}

impl Default for LoraParameters {
    fn default() -> Self {
        LoraParameters {
            rank: 8,
            scale: 20.0,
            dropout: 0.0,
            keys: None,
        }
    }
}

/// Which adapters, where: what `adapter_config.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub fine_tune_type: FineTuneType,
    /// Adapted blocks, counted from the last (`-1`: all).
    pub num_layers: i32,
    pub lora_parameters: LoraParameters,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            fine_tune_type: FineTuneType::Lora,
            num_layers: 16,
            lora_parameters: LoraParameters::default(),
        }
    }
}

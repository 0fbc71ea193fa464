//! Converting and quantizing models: GGUF → MLX folder, folder → re-quantized or dequantized
//! folder, an adapter fused into its base, and copies of a model made into the library. The
//! work runs on the engine thread (it uses MLX) and reports its steps as it goes.

use std::path::Path;

use adapt_engine::adapters::fuse_folder;
pub use adapt_engine::adapters::FuseReport;
use adapt_engine::convert::{gguf_to_folder, ConvertReport};
use adapt_engine::quantize::{quantize_folder, Target};

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
use crate::models::record_model;
use crate::train_form::supported;
use adapt_library::describe;

impl Adapt {
    /// Converts the GGUF file `src` into the MLX model folder `out`; `on_step` hears each step.
    pub fn convert_model(
        &self,
        src: &Path,
        out: &Path,
        on_step: impl FnMut(&str),
    ) -> Result<ConvertReport, ApiError> {
        let (src, out) = (src.to_path_buf(), out.to_path_buf());
        self.with_steps(move |step| Ok(gguf_to_folder(&src, &out, step)?), on_step)
    }

    /// Writes the model folder `src` into `out` quantized (or dequantized) as `target` says;
    /// with `measure`, reports the quality cost against the source on a fixed text.
    pub fn quantize_model(
        &self,
        src: &Path,
        out: &Path,
        target: Target,
        measure: bool,
        on_step: impl FnMut(&str),
    ) -> Result<ConvertReport, ApiError> {
        let (src, out) = (src.to_path_buf(), out.to_path_buf());
        self.with_steps(
            move |step| Ok(quantize_folder(&src, &out, target, measure, step)?),
            on_step,
        )
    }

    /// Fuses the adapter folder `adapter` into the model `src`, writing the model folder `out`.
    pub fn fuse_adapter(
        &self,
        src: &Path,
        adapter: &Path,
        out: &Path,
        dequantize: bool,
        on_step: impl FnMut(&str),
    ) -> Result<FuseReport, ApiError> {
        let (src, adapter, out) = (src.to_path_buf(), adapter.to_path_buf(), out.to_path_buf());
        self.with_steps(
            move |step| Ok(fuse_folder(&src, &adapter, &out, dequantize, step)?),
            on_step,
        )
    }

    /// Runs `work` on the engine thread, relaying the steps it reports to `on_step`.
    pub(crate) fn with_steps<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn FnMut(&str)) -> Result<T, ApiError> + Send + 'static,
        mut on_step: impl FnMut(&str),
    ) -> Result<T, ApiError> {
        self.engine.relay(
            move |_, emit: &mut dyn FnMut(String)| work(&mut |s: &str| emit(s.to_string())),
            |step: String| on_step(&step),
        )
    }
}

/// A new model in the library made from one already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Variant {
    /// A GGUF file as an MLX model folder.
    Mlx,
    /// A model folder quantized to `bits` (4 or 8) in groups of 64.
    Quantized { bits: i32 },
    /// A quantized model folder with float weights.
    Dequantized,
}

impl Variant {
    /// The new model's folder name, after the source's.
    fn folder_name(self, source: &Path) -> String {
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        match self {
            Variant::Mlx => format!("{stem}-mlx"),
            Variant::Quantized { bits } => format!("{stem}-{bits}bit"),
            Variant::Dequantized => format!("{stem}-float"),
        }
    }
}

impl Adapt {
    /// Writes `variant` of the model at `src` into the models cache, beside the others, and
    /// reports sizes (and, for quantization, the quality cost). Refuses when that model exists.
    pub fn make_variant(
        &self,
        src: &Path,
        variant: Variant,
        on_step: impl FnMut(&str),
    ) -> Result<ConvertReport, ApiError> {
        let out = self.models_dir(None).join(variant.folder_name(src));
        if out.exists() {
            return Err(ApiError::new(
                ErrorCode::ConvertExists,
                format!(
                    "{} exists already: delete it in Models first to make it again",
                    out.display()
                ),
            ));
        }
        let report = match variant {
            Variant::Mlx => self.convert_model(src, &out, on_step),
            Variant::Quantized { bits } if [4, 8].contains(&bits) => {
                let spec = adapt_engine::models::layers::QuantSpec {
                    group_size: 64,
                    bits,
                };
                self.quantize_model(src, &out, Target::Quantize(spec), true, on_step)
            }
            Variant::Quantized { bits } => Err(ApiError::new(
                ErrorCode::QuantizeUnsupported,
                format!("{bits}-bit is not offered: choose 4 or 8 bits"),
            )),
            Variant::Dequantized => {
                self.quantize_model(src, &out, Target::Dequantize, false, on_step)
            }
        }?;
        let name = variant.folder_name(src);
        let description = describe(&out, &supported())?;
        record_model(
            &mut *self.store()?,
            &name,
            &out,
            Some(&description),
            "converted",
        )?;
        Ok(report)
    }
}

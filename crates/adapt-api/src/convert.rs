//! Converting and quantizing models: GGUF → MLX folder, folder → re-quantized or dequantized
//! folder. The work runs on the engine thread (it uses MLX) and reports its steps as it goes.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use adapt_engine::convert::{gguf_to_folder, ConvertReport};
use adapt_engine::quantize::{quantize_folder, Target};

use crate::engine_thread::Request;
use crate::{Adapt, ApiError};

/// What the engine thread is asked to write.
pub(crate) enum ConvertWork {
    Gguf {
        src: PathBuf,
        out: PathBuf,
    },
    Quantize {
        src: PathBuf,
        out: PathBuf,
        target: Target,
        measure: bool,
    },
}

impl ConvertWork {
    /// Runs on the engine thread.
    pub(crate) fn run(self, progress: &mut dyn FnMut(&str)) -> Result<ConvertReport, ApiError> {
        Ok(match self {
            ConvertWork::Gguf { src, out } => gguf_to_folder(&src, &out, progress)?,
            ConvertWork::Quantize {
                src,
                out,
                target,
                measure,
            } => quantize_folder(&src, &out, target, measure, progress)?,
        })
    }
}

impl Adapt {
    /// Converts the GGUF file `src` into the MLX model folder `out`; `on_step` hears each step.
    pub fn convert_model(
        &self,
        src: &Path,
        out: &Path,
        on_step: impl FnMut(&str),
    ) -> Result<ConvertReport, ApiError> {
        let work = ConvertWork::Gguf {
            src: src.to_path_buf(),
            out: out.to_path_buf(),
        };
        self.convert(work, on_step)
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
        let work = ConvertWork::Quantize {
            src: src.to_path_buf(),
            out: out.to_path_buf(),
            target,
            measure,
        };
        self.convert(work, on_step)
    }

    fn convert(
        &self,
        work: ConvertWork,
        on_step: impl FnMut(&str),
    ) -> Result<ConvertReport, ApiError> {
        self.with_steps(
            |progress, reply| Request::Convert {
                work,
                progress,
                reply,
            },
            on_step,
        )
    }

    /// Sends the request `make` builds and relays the engine's step messages to `on_step`
    /// until it answers.
    pub(crate) fn with_steps<T>(
        &self,
        make: impl FnOnce(mpsc::Sender<String>, mpsc::Sender<Result<T, ApiError>>) -> Request,
        mut on_step: impl FnMut(&str),
    ) -> Result<T, ApiError> {
        let (progress, steps) = mpsc::channel();
        let (reply, answer) = mpsc::channel();
        self.sender()?
            .send(make(progress, reply))
            .map_err(|_| ApiError::engine_gone())?;
        // The engine drops the progress sender when it is done, which ends this loop.
        for step in steps {
            on_step(&step);
        }
        answer.recv().map_err(|_| ApiError::engine_gone())?
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
                "convert.exists",
                format!(
                    "{} exists already: delete it in Models first to make it again",
                    out.display()
                ),
            ));
        }
        match variant {
            Variant::Mlx => self.convert_model(src, &out, on_step),
            Variant::Quantized { bits } if [4, 8].contains(&bits) => {
                let spec = adapt_engine::models::layers::QuantSpec {
                    group_size: 64,
                    bits,
                };
                self.quantize_model(src, &out, Target::Quantize(spec), true, on_step)
            }
            Variant::Quantized { bits } => Err(ApiError::new(
                "quantize.unsupported",
                format!("{bits}-bit is not offered: choose 4 or 8 bits"),
            )),
            Variant::Dequantized => {
                self.quantize_model(src, &out, Target::Dequantize, false, on_step)
            }
        }
    }
}

//! [`Adapt`]: the handle every shell holds — the engine thread and the records (data
//! directory, store, jobs) — and the use cases of the loaded model itself: the device, loading
//! a model (with an adapter), and one-shot generation.

use std::path::{Path, PathBuf};

use adapt_engine::{
    choose_device, generate, load, prompt_tokens, ChatMessage, DeviceChoice, DevicePreference,
    DeviceReport, EngineError, GenerateParams, Generation, LoadOptions, ModelInfo, SequenceCache,
};
use adapt_paths::DataDir;
use adapt_store::Store;

use crate::budgets;
use crate::engine_thread::{Engine, GenerationEvent};
use crate::error::{ApiError, ErrorCode};
use crate::records::{AdaptConfig, Records};

/// Handle to a running engine. Dropping it stops the engine thread.
pub struct Adapt {
    pub(crate) engine: Engine,
    /// The data directory, store and job runner; an error here only fails the methods that
    /// need them, so generation works even where the data directory cannot be written.
    pub(crate) records: Records,
    /// The device the engine computes on and why, chosen when it started.
    device: DeviceChoice,
}

/// The environment variable that says where the engine computes: auto, gpu or cpu.
pub const DEVICE_ENV: &str = "ADAPT_DEVICE";

/// The device `asked` for, else the one `ADAPT_DEVICE` names, else auto.
fn device_preference(asked: Option<DevicePreference>) -> Result<DevicePreference, ApiError> {
    if let Some(d) = asked {
        return Ok(d);
    }
    match std::env::var(DEVICE_ENV) {
        Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e: String| {
            ApiError::new(ErrorCode::RequestInvalid, format!("{DEVICE_ENV}: {e}"))
        }),
        _ => Ok(DevicePreference::Auto),
    }
}

impl Adapt {
    /// Starts the engine thread and opens the store in the default data directory: what the
    /// `adapt` program and the app call. Where the loaded MLX runtime is the CUDA build, its GPU
    /// cannot be used and `auto` was asked for, the program starts again on MLX's CPU runtime
    /// (the process is replaced; see [`adapt_engine::runtime`]), which then says why it runs on
    /// the CPU; only when that runtime cannot be found does this fail, saying where it looked.
    pub fn start() -> Result<Adapt, ApiError> {
        Adapt::open(AdaptConfig::default(), true)
    }

    /// Starts the engine thread and opens the store as `config` says; jobs whose process
    /// died are marked interrupted (see [`Adapt::resumable_jobs`]).
    /// The engine first chooses its device (see [`Adapt::device_choice`]); `gpu` asked for
    /// and not usable fails here with `device.gpu_unavailable`, and so does a CUDA runtime
    /// without a usable device (this never replaces the process; [`Adapt::start`] does).
    pub fn start_with(config: AdaptConfig) -> Result<Adapt, ApiError> {
        Adapt::open(config, false)
    }

    fn open(config: AdaptConfig, may_restart: bool) -> Result<Adapt, ApiError> {
        let asked = device_preference(config.device)?;
        let records = Records::open(config)?;
        let engine = Engine::start()?;
        let device = match engine.call(move |_| Ok(choose_device(asked)))? {
            Ok(device) => device,
            Err(EngineError::NoDeviceForRuntime { cause })
                if may_restart && asked == DevicePreference::Auto =>
            {
                drop(engine);
                drop(records);
                return Err(crate::restart::on_cpu_runtime(&cause));
            }
            Err(e) => return Err(e.into()),
        };
        let budgets = budgets::read(&records);
        budgets::apply_memory(&engine, budgets.memory)?;
        Ok(Adapt {
            engine,
            records,
            device,
        })
    }

    /// The device the engine computes on and why: the GPU, or the CPU because it was asked
    /// for or because the GPU could not be used (`fell_back`, with the cause).
    pub fn device_choice(&self) -> &DeviceChoice {
        &self.device
    }

    /// Backend, memory and MLX version.
    pub fn device(&self) -> Result<DeviceReport, ApiError> {
        self.engine
            .call(|_| DeviceReport::current().map_err(ApiError::from))
    }

    /// Loads the model at `path`, replacing any loaded one (and its conversations).
    pub fn load_model(&self, path: &Path) -> Result<ModelInfo, ApiError> {
        self.load_model_with_adapter(path, None)
    }

    /// Loads the model at `path` with the adapter folder `adapter` (ours or mlx-lm's)
    /// attached, replacing any loaded model.
    pub fn load_model_with_adapter(
        &self,
        path: &Path,
        adapter: Option<&Path>,
    ) -> Result<ModelInfo, ApiError> {
        let path = path.to_path_buf();
        let adapter = adapter.map(Path::to_path_buf);
        self.engine.call(move |state| {
            state.model = None;
            state.chats.clear();
            state.adapters.clear();
            let mut lm = load(&path, &LoadOptions::default())?;
            if let Some(dir) = &adapter {
                lm.attach_adapter(dir)?;
            }
            let info = lm.info.clone();
            state.model = Some(lm);
            Ok(info)
        })
    }

    /// Generates a reply to `prompt`: rendered with the model's chat template unless `raw`.
    pub fn generate(
        &self,
        prompt: &str,
        raw: bool,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        let prompt = prompt.to_string();
        let params = params.clone();
        self.engine.stream(
            move |state, sink| {
                let lm = state.loaded()?;
                let ids = if raw {
                    lm.tokenizer
                        .encode(&prompt, true)
                        .map_err(EngineError::from)?
                } else {
                    prompt_tokens(lm, &[ChatMessage::new("user", prompt)])?
                };
                let mut cache = SequenceCache::new(&lm.model);
                Ok(generate(
                    &lm.model,
                    &lm.tokenizer,
                    &mut cache,
                    &ids,
                    &params,
                    sink,
                )?)
            },
            on_event,
        )
    }

    /// The data directory in use.
    pub fn data_dir(&self) -> Result<&DataDir, ApiError> {
        self.records.data_dir()
    }

    /// Where prepared datasets are cached.
    pub fn dataset_cache(&self) -> Result<PathBuf, ApiError> {
        self.records.dataset_cache.clone()
    }

    pub(crate) fn store(&self) -> Result<std::sync::MutexGuard<'_, Store>, ApiError> {
        self.records.store()
    }
}

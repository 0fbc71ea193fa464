//! A group run seen from the app: what each machine would hold and how fast the group could
//! go ([`GroupEstimate`]), and starting it ([`Adapt::start_group_training`]): the request
//! written to a file, `adapt train --request FILE` started on every machine through
//! [`crate::launch`] — this machine's rank 0 records the run like any other, so it shows in
//! Runs — and the ranks' output kept in a log file.

use std::io::Write;
use std::path::{Path, PathBuf};

use adapt_engine::distributed::DistBackend;
use adapt_engine::train::TrainPlan;
use serde::Serialize;

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
use crate::launch::{plan, run, Host, LaunchSpec, DEFAULT_PORT};
use crate::train::TrainProgress;
use crate::train_form::TrainRequest;

/// What training on a group of machines would take, per machine and in all.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GroupEstimate {
    pub ranks: usize,
    /// Examples of each global batch each machine trains (`batch_size / ranks`).
    pub batch_per_rank: usize,
    /// One machine's plan at its share of the batch: each holds the whole model and its
    /// adapters, so this memory is needed on every machine.
    pub per_rank: TrainPlan,
    /// Bytes summed across the machines at every step (the adapters' gradients, float32).
    pub exchanged_bytes: u64,
    /// The most the group could train, in tokens per second: `ranks` × one machine's
    /// measured speed (none until a calibration measured it).
    pub upper_tokens_per_second: Option<f64>,
    /// How to read the figures.
    pub note: String,
}

/// A group run that was started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GroupStart {
    pub ranks: usize,
    /// Every rank's output, line by line with its rank, and how the group ended.
    pub log: PathBuf,
}

impl Adapt {
    /// What `request` takes on each of `ranks` machines (each trains `batch_size / ranks`
    /// examples of every batch), and an upper bound of the group's speed from one machine's
    /// measured `tokens_per_second`, when given.
    pub fn estimate_group(
        &self,
        request: &TrainRequest,
        ranks: usize,
        tokens_per_second: Option<f64>,
        on_progress: impl FnMut(&TrainProgress),
    ) -> Result<GroupEstimate, ApiError> {
        let batch_per_rank = batch_per_rank(request.config.batch_size, ranks)?;
        let mut one = request.clone();
        one.config.batch_size = batch_per_rank;
        let per_rank = self.plan_training(&one, on_progress)?;
        let exchanged_bytes = per_rank.trainable_parameters as u64 * 4;
        let upper = tokens_per_second.map(|t| t * ranks as f64);
        Ok(GroupEstimate {
            ranks,
            batch_per_rank,
            exchanged_bytes,
            upper_tokens_per_second: upper,
            note: group_note(ranks, exchanged_bytes, upper.is_some()),
            per_rank,
        })
    }

    /// Starts `request` on `hosts` (this machine, `localhost`, first: it runs rank 0 and
    /// records the run) with `program`, the `adapt` command-line program here. Returns once
    /// the ranks are started; the run shows in the runs list as rank 0 records it.
    pub fn start_group_training(
        &self,
        request: &TrainRequest,
        hosts: Vec<Host>,
        program: PathBuf,
    ) -> Result<GroupStart, ApiError> {
        self.check_request(request)?;
        batch_per_rank(request.config.batch_size, hosts.len())?;
        let dir = self.data_dir()?.root().join("machines");
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::io("create", &dir, e))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let request_file = dir.join(format!("request-{stamp}.json"));
        // The ranks start in another folder: paths relative to this process become absolute.
        let request = &absolute_paths(request.clone());
        let text = serde_json::to_string_pretty(request).map_err(|e| {
            ApiError::new(ErrorCode::ApiInternal, format!("cannot write the run: {e}"))
        })?;
        std::fs::write(&request_file, text).map_err(|e| ApiError::io("write", &request_file, e))?;
        let ranks = hosts.len();
        let spec = LaunchSpec {
            processes: None,
            hosts: Some(hosts),
            backend: DistBackend::Ring,
            port: DEFAULT_PORT,
            program,
            args: vec![
                "train".into(),
                "--request".into(),
                request_file.display().to_string(),
            ],
            cwd: dir.clone(),
        };
        let commands = plan(&spec)?;
        let log = dir.join(format!("group-{stamp}.log"));
        let file = std::fs::File::create(&log).map_err(|e| ApiError::io("create", &log, e))?;
        let file = std::sync::Arc::new(std::sync::Mutex::new(file));
        std::thread::spawn(move || {
            let write = |line: String| {
                if let Ok(mut f) = file.lock() {
                    let _ = writeln!(f, "{line}");
                }
            };
            let lines = {
                let file = file.clone();
                move |rank: usize, line: &str| {
                    if let Ok(mut f) = file.lock() {
                        let _ = writeln!(f, "[{rank}] {line}");
                    }
                }
            };
            let started = |rank: usize, pid: u32| write(format!("rank {rank}: process {pid}"));
            match run(&commands, started, lines) {
                Ok(exits) => write(format!("all {} ranks finished", exits.len())),
                Err(e) => write(format!("the group failed [{}]: {}", e.code, e.message)),
            }
        });
        Ok(GroupStart { ranks, log })
    }
}

/// `request` with its model and data paths absolute (from this process's folder).
fn absolute_paths(mut request: TrainRequest) -> TrainRequest {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    request.model = absolute(&request.model);
    let data = &mut request.data;
    data.train = absolute(&data.train);
    data.valid = data.valid.as_deref().map(absolute);
    data.test = data.test.as_deref().map(absolute);
    request
}

/// Each rank's share of a batch of `batch_size`.
fn batch_per_rank(batch_size: usize, ranks: usize) -> Result<usize, ApiError> {
    if ranks == 0 || !batch_size.is_multiple_of(ranks) {
        return Err(ApiError::new(
            ErrorCode::RequestInvalid,
            format!(
                "config.batch_size {batch_size} is not divisible by the group's {ranks} \
                 machines; each machine takes every {ranks}th example of a batch, so choose a \
                 multiple of {ranks}"
            ),
        ));
    }
    Ok(batch_size / ranks)
}

fn group_note(ranks: usize, exchanged: u64, measured: bool) -> String {
    let mib = exchanged as f64 / (1u64 << 20) as f64;
    let speed = match measured {
        true => format!("The speed is an upper bound: {ranks} × one machine's measured speed."),
        false => "Measure one machine (Calibrate) for a speed estimate.".to_string(),
    };
    format!(
        "Every machine holds the whole model and needs the memory shown. {speed} Each step \
         also sums {mib:.1} MiB of gradients across the machines, and the slowest machine sets \
         the pace."
    )
}

/// Reads a training request written by [`Adapt::start_group_training`] (`adapt train
/// --request FILE`).
pub fn read_request(path: &Path) -> Result<TrainRequest, ApiError> {
    let text = std::fs::read_to_string(path).map_err(|e| ApiError::io("read", path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            ErrorCode::RequestInvalid,
            format!("{}: not a training request ({e})", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_splits_evenly_or_is_refused() {
        assert_eq!(batch_per_rank(8, 2).unwrap(), 4);
        let e = batch_per_rank(6, 4).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestInvalid);
        assert!(e.message.contains("config.batch_size 6"), "{e:?}");
    }

    #[test]
    fn the_note_says_the_speed_is_a_bound_and_names_the_exchange() {
        let note = group_note(3, 8 << 20, true);
        assert!(
            note.contains("upper bound: 3 ×") && note.contains("8.0 MiB"),
            "{note}"
        );
        assert!(group_note(2, 0, false).contains("Calibrate"));
    }

    #[test]
    fn the_ranks_get_absolute_paths() {
        let mut form = crate::train_form::training_presets()[0].form.clone();
        form.model = "models-cache/m.gguf".into();
        form.dataset = "/data/chats.jsonl".into();
        let request = absolute_paths(form.request());
        let here = std::env::current_dir().unwrap();
        assert_eq!(request.model, here.join("models-cache/m.gguf"));
        assert_eq!(request.data.train, PathBuf::from("/data/chats.jsonl"));
    }

    #[test]
    fn a_bad_request_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("request.json");
        std::fs::write(&path, "{}").unwrap();
        let e = read_request(&path).unwrap_err();
        assert!(
            e.message.contains("request.json: not a training request"),
            "{e:?}"
        );
    }
}

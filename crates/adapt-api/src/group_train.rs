//! Training as one rank of a group (`adapt launch`): rank 0 records and writes the run as a
//! process of its own would; every other rank trains the same run beside it — rank 0's
//! request, shared over the group when training starts — on its own copy of the model and
//! data, and records and writes nothing.

use adapt_engine::distributed::share_from_rank0;
use adapt_engine::train::TrainOutcome;

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::CancelToken;
use crate::train::{prepare_data, RunConfig, TrainProgress, TrainWork};

impl Adapt {
    /// On a rank other than 0 of a group: trains rank 0's run with it — its request comes
    /// from rank 0; the data is prepared here from the same paths — and writes nothing (rank 0
    /// keeps the checkpoints, metrics and adapter). `on_progress` hears the same events as a
    /// run of its own, without `Run` and `Ended`.
    pub fn follow_training(
        &self,
        mut on_progress: impl FnMut(&TrainProgress),
    ) -> Result<TrainOutcome, ApiError> {
        let engine = self.engine.handle();
        // Rank 0 sends its run when its job starts training (`train_job`).
        let shared = engine.call(|_| Ok(share_from_rank0(Vec::new())?))?;
        let config: RunConfig = serde_json::from_slice(&shared).map_err(|e| {
            ApiError::new(
                ErrorCode::DistributedMismatch,
                format!(
                    "rank 0 sent a run this Adapt cannot read ({e}); run the same version of \
                     Adapt on every machine"
                ),
            )
        })?;
        let report = prepare_data(&config.request, &self.dataset_cache()?, &mut on_progress)?;
        if config.data_key.as_deref().is_some_and(|k| k != report.key) {
            return Err(ApiError::new(
                ErrorCode::DistributedMismatch,
                format!(
                    "the training data at {} here differs from rank 0's; every machine needs \
                     the same files at the same paths",
                    config.request.data.train.display()
                ),
            ));
        }
        let scratch = std::env::temp_dir().join(format!("adapt-rank-{}", std::process::id()));
        let work = TrainWork::new(&config.request, &report, scratch.clone(), false)?;
        on_progress(&TrainProgress::Loading);
        let cancel = CancelToken::default();
        let outcome = engine.relay(
            move |_, emit| work.run(&cancel, emit),
            |event| on_progress(&TrainProgress::Engine(event)),
        );
        let _ = std::fs::remove_dir_all(&scratch);
        outcome
    }
}

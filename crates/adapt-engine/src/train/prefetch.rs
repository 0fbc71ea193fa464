//! Batches prepared ahead: while a step runs on the engine thread, a helper thread builds the
//! next step's batches from the token cache — plain token data, so no MLX state leaves the
//! engine thread (the arrays are made there, from these). The queue holds one step: the helper
//! is joined when the step ends, and a step whose batches were not built ahead (the first, or
//! one after a resume) builds them itself. The positions are the batcher's, so a run resumes at
//! the same batch with or without it.

use std::time::Instant;

use adapt_data::{Batch, Batcher, Position};

/// One step's batches and where the data stands after them.
pub(crate) struct StepBatches {
    pub start: Position,
    pub batches: Vec<Batch>,
    pub next: Position,
}

/// The `n` batches from `start` on.
fn build(batcher: &Batcher<'_>, start: Position, n: u64) -> StepBatches {
    let mut next = start;
    let batches = (0..n).map(|_| batcher.next_batch(&mut next)).collect();
    StepBatches {
        start,
        batches,
        next,
    }
}

/// A step's batches built ahead, if any.
pub(crate) struct Prefetch {
    enabled: bool,
    ready: Option<StepBatches>,
    /// Seconds the engine thread spent building batches itself, and on how many steps.
    pub(crate) built_here: (f64, u64),
}

impl Prefetch {
    pub(crate) fn new(enabled: bool) -> Prefetch {
        Prefetch {
            enabled,
            ready: None,
            built_here: (0.0, 0),
        }
    }

    /// The `n` batches of the step starting at `start`: the ones built ahead when they start
    /// there, else built now. Returns them with the seconds the caller waited.
    pub(crate) fn take(
        &mut self,
        batcher: &Batcher<'_>,
        start: Position,
        n: u64,
    ) -> (StepBatches, f64) {
        match self.ready.take() {
            Some(ready) if ready.start == start && ready.batches.len() as u64 == n => (ready, 0.0),
            _ => {
                let t = Instant::now();
                let built = build(batcher, start, n);
                let secs = t.elapsed().as_secs_f64();
                self.built_here.0 += secs;
                self.built_here.1 += 1;
                (built, secs)
            }
        }
    }

    /// Runs `work` while a helper thread builds the `n` batches from `next` on, kept for the
    /// next [`Prefetch::take`]; without prefetching, just runs `work`.
    pub(crate) fn ahead<R>(
        &mut self,
        batcher: &Batcher<'_>,
        next: Position,
        n: u64,
        work: impl FnOnce() -> R,
    ) -> R {
        if !self.enabled {
            return work();
        }
        std::thread::scope(|s| {
            let helper = s.spawn(|| build(batcher, next, n));
            let out = work();
            // A helper that panicked leaves nothing ready: the next step builds its own.
            self.ready = helper.join().ok();
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_data::cache::CacheWriter;
    use adapt_data::render::Tokenized;
    use adapt_data::{BatchConfig, TokenCache};

    #[test]
    fn batches_built_ahead_are_the_ones_built_inline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.tok");
        let mut w = CacheWriter::create(&path).unwrap();
        for i in 0..10u32 {
            let tokens: Vec<u32> = (0..5 + i).collect();
            let mask = vec![true; tokens.len()];
            w.push(u64::from(i), &Tokenized { tokens, mask }).unwrap();
        }
        w.finish().unwrap();
        let cache = TokenCache::open(&path).unwrap();
        let config = BatchConfig {
            batch_size: 3,
            max_seq_length: 64,
            seed: 5,
            pad_id: 0,
        };
        let batcher = Batcher::new(&cache, config).unwrap();
        let (mut ahead, mut inline) = (Prefetch::new(true), Prefetch::new(false));
        let (mut a, mut b) = (Position::default(), Position::default());
        for _ in 0..7 {
            let (x, _) = ahead.take(&batcher, a, 2);
            let (y, _) = inline.take(&batcher, b, 2);
            assert_eq!(x.batches, y.batches);
            assert_eq!(x.next, y.next);
            (a, b) = (x.next, y.next);
            ahead.ahead(&batcher, a, 2, || ());
            inline.ahead(&batcher, b, 2, || ());
        }
        // Only the first step was built on the caller's thread when prefetching.
        assert_eq!((ahead.built_here.1, inline.built_here.1), (1, 7));
        // Batches built for another position are not used.
        let (x, _) = ahead.take(&batcher, Position { epoch: 9, step: 1 }, 2);
        assert_eq!(x.start, Position { epoch: 9, step: 1 });
        assert_eq!(ahead.built_here.1, 2);
    }
}

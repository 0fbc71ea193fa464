//! Data-parallel training over a [`Group`]: every rank holds the whole model and its adapters,
//! takes every N-th example of each global batch, and the ranks sum their gradients so each
//! optimizer step is the step one process would take on the global batch.
//!
//! - Rows: rank `r` of `N` trains rows `r, r + N, …` of each global batch; a rank with no row
//!   (a short last batch) takes part with a zero-weighted row.
//! - Gradients: each rank's gradient of its own mean loss is weighted by its share of the
//!   batch's trained tokens, then one `all_sum` over every gradient (and the loss) gives the
//!   gradient of the global batch's mean loss — before clipping and the optimizer step.
//! - Start and resume: rank 0 alone reads and writes files; it shares the run's state, the
//!   adapter weights and the optimizer state with the others when the session starts, so a
//!   group resumes from rank 0's newest checkpoint.

use std::collections::HashMap;
use std::rc::Rc;

use adapt_data::Batch;
use mlx_rs::module::FlattenedModuleParam;
use mlx_rs::{Array, Dtype};
use serde::{Deserialize, Serialize};

use super::checkpoint::TrainState;
use super::events::RankThroughput;
use crate::distributed::{world, DistributedError, Group};
use crate::error::{EngineError, Result};

/// The group this process trains in, when it has more than one rank.
pub(crate) fn training_group() -> Result<Option<&'static Group>> {
    Ok(world()?.filter(|g| g.size() > 1))
}

/// Trained tokens of `batch` (its mask shifted onto the predicted tokens).
fn trained_tokens(batch: &Batch) -> u64 {
    let width = batch.width;
    (0..batch.rows)
        .map(|r| {
            batch.mask[r * width + 1..(r + 1) * width]
                .iter()
                .filter(|&&m| m != 0)
                .count() as u64
        })
        .sum()
}

/// This rank's rows of a global batch, with the share of the batch's trained tokens they
/// hold and the batch's trained tokens in all.
pub(crate) struct LocalPart {
    pub batch: Batch,
    pub weight: f32,
    pub global_tokens: u64,
}

/// Rank `rank` of `size`'s rows of `global`: rows `rank, rank + size, …`.
pub(crate) fn local_part(global: &Batch, rank: usize, size: usize) -> LocalPart {
    let width = global.width;
    let mut rows: Vec<usize> = (rank..global.rows).step_by(size).collect();
    let empty = rows.is_empty();
    if empty {
        rows.push(0);
    }
    let take = |v: &[u32]| -> Vec<u32> {
        rows.iter()
            .flat_map(|&r| v[r * width..(r + 1) * width].iter().copied())
            .collect()
    };
    let mut mask: Vec<u8> = rows
        .iter()
        .flat_map(|&r| global.mask[r * width..(r + 1) * width].iter().copied())
        .collect();
    if empty {
        mask.fill(0);
    }
    let batch = Batch {
        position: global.position,
        rows: rows.len(),
        width,
        tokens: take(&global.tokens),
        mask,
        lengths: rows.iter().map(|&r| global.lengths[r]).collect(),
        indices: rows.iter().map(|&r| global.indices[r]).collect(),
    };
    let global_tokens = trained_tokens(global);
    let weight = trained_tokens(&batch) as f32 / global_tokens.max(1) as f32;
    LocalPart {
        batch,
        weight,
        global_tokens,
    }
}

/// Sums `arrays` over the group in one exchange (flattened into one float32 buffer), each
/// back in its shape and dtype.
pub(crate) fn sum_all(group: &Group, arrays: &[Array]) -> Result<Vec<Array>> {
    let summed = group.all_sum(&flat(arrays.iter())?)?;
    group.eval([&summed])?;
    split_like(
        &summed,
        arrays.iter().map(|a| (a.shape().to_vec(), a.dtype())),
    )
}

/// `arrays` as one float32 vector, one after the other.
fn flat<'a>(arrays: impl Iterator<Item = &'a Array>) -> Result<Array> {
    let parts = arrays
        .map(|a| a.as_dtype(Dtype::Float32)?.reshape(&[-1]))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(mlx_rs::ops::concatenate(&parts, 0)?)
}

/// `flat` cut into arrays of the given shapes and dtypes, in order.
fn split_like(flat: &Array, layout: impl Iterator<Item = (Vec<i32>, Dtype)>) -> Result<Vec<Array>> {
    use mlx_rs::ops::indexing::IndexOp;
    let mut at = 0i32;
    let mut out = Vec::new();
    for (shape, dtype) in layout {
        let n: i32 = shape.iter().product();
        out.push(flat.index(at..at + n).reshape(&shape)?.as_dtype(dtype)?);
        at += n;
    }
    Ok(out)
}

/// Sums the step's gradients and loss sum over the group: the gradient of the global batch's
/// mean loss (each rank weighted its own by its share of the tokens) and the batch's loss sum.
pub(crate) fn reduce_step(
    group: &Group,
    grads: FlattenedModuleParam,
    loss_sum: f64,
) -> Result<(FlattenedModuleParam, f64)> {
    let mut names: Vec<Rc<str>> = grads.keys().cloned().collect();
    names.sort();
    let mut arrays: Vec<Array> = names.iter().map(|k| grads[k].clone()).collect();
    arrays.push(Array::from_f32(loss_sum as f32));
    let mut summed = sum_all(group, &arrays)?;
    let loss = summed.pop().map(|a| a.item_cast::<f32>()).unwrap_or(0.0) as f64;
    Ok((names.into_iter().zip(summed).collect(), loss))
}

/// Sums `(loss sum, tokens)` over the group (validation).
pub(crate) fn reduce_pair(group: &Group, sum: f64, toks: f64) -> Result<(f64, f64)> {
    let pair = Array::from_slice(&[sum as f32, toks as f32], &[2]);
    let summed = group.all_sum(&pair)?;
    group.eval([&summed])?;
    let v = summed.as_slice::<f32>();
    Ok((v[0] as f64, v[1] as f64))
}

/// One rank's own work since the last report: trained tokens of its rows, seconds computing
/// gradients, seconds in the exchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RankWindow {
    pub tokens: u64,
    pub compute_seconds: f64,
    pub exchange_seconds: f64,
}

impl RankWindow {
    pub(crate) fn add(&mut self, tokens: u64, compute_seconds: f64, exchange_seconds: f64) {
        self.tokens += tokens;
        self.compute_seconds += compute_seconds;
        self.exchange_seconds += exchange_seconds;
    }
}

/// Every rank's window, by rank, on every rank (one `all_gather`).
pub(crate) fn gather_throughput(group: &Group, mine: RankWindow) -> Result<Vec<RankThroughput>> {
    let local = [
        mine.tokens as f32,
        mine.compute_seconds as f32,
        mine.exchange_seconds as f32,
    ];
    let all = group.all_gather(&Array::from_slice(&local, &[1, 3]))?;
    group.eval([&all])?;
    Ok(throughputs(all.as_slice::<f32>()))
}

/// `[tokens, compute seconds, exchange seconds]` of each rank, one after the other, as
/// figures.
fn throughputs(gathered: &[f32]) -> Vec<RankThroughput> {
    gathered
        .chunks_exact(3)
        .enumerate()
        .map(|(rank, v)| {
            let (tokens, compute, exchange) = (v[0] as u64, v[1] as f64, v[2] as f64);
            RankThroughput {
                rank,
                trained_tokens: tokens,
                compute_seconds: compute,
                exchange_seconds: exchange,
                tokens_per_second: tokens as f64 / compute.max(1e-9),
            }
        })
        .collect()
}

/// What rank 0 tells the others when a session starts.
#[derive(Serialize, Deserialize)]
struct Header {
    state: TrainState,
    examples: usize,
    /// Name, shape and dtype of each shared array, in the order of the shared buffer.
    arrays: Vec<(String, Vec<i32>, String)>,
}

/// What a session starts from, as rank 0 has it (its resumed or fresh state, its adapter
/// weights, its optimizer state).
pub(crate) struct RunStart {
    pub state: TrainState,
    pub examples: usize,
    pub weights: HashMap<String, Array>,
    pub optimizer: HashMap<String, Array>,
}

/// Every rank leaves with rank 0's `start`; a rank whose data differs from rank 0's fails.
pub(crate) fn share_start(group: &Group, start: RunStart) -> Result<RunStart> {
    let mut named: Vec<(String, Array)> = Vec::new();
    if group.is_leader() {
        let mut w: Vec<_> = start.weights.iter().collect();
        w.sort_by(|a, b| a.0.cmp(b.0));
        named.extend(w.into_iter().map(|(k, v)| (format!("w:{k}"), v.clone())));
        let mut o: Vec<_> = start.optimizer.iter().collect();
        o.sort_by(|a, b| a.0.cmp(b.0));
        named.extend(o.into_iter().map(|(k, v)| (format!("o:{k}"), v.clone())));
    }
    let header = Header {
        state: start.state.clone(),
        examples: start.examples,
        arrays: named
            .iter()
            .map(|(k, a)| (k.clone(), a.shape().to_vec(), dtype_name(a.dtype())))
            .collect(),
    };
    let bytes = serde_json::to_vec(&header).unwrap_or_default();
    let header: Header = serde_json::from_slice(&group.share_bytes(&bytes)?)
        .map_err(|e| DistributedError::Mismatch(format!("rank 0's run header: {e}")))?;
    if header.examples != start.examples {
        return Err(DistributedError::Mismatch(format!(
            "rank {} has {} training examples but rank 0 has {}; every rank must train on \
             the same data",
            group.rank(),
            start.examples,
            header.examples
        ))
        .into());
    }
    let total: i32 = header
        .arrays
        .iter()
        .map(|(_, s, _)| s.iter().product::<i32>())
        .sum();
    let flat = match group.is_leader() {
        true if !named.is_empty() => flat(named.iter().map(|(_, a)| a))?,
        _ => mlx_rs::ops::zeros::<f32>(&[total])?,
    };
    let flat = group.broadcast(&flat)?;
    group.eval([&flat])?;
    let layout = header
        .arrays
        .iter()
        .map(|(_, s, d)| Ok((s.clone(), parse_dtype(d)?)))
        .collect::<Result<Vec<_>>>()?;
    let arrays = split_like(&flat, layout.into_iter())?;
    let (mut weights, mut optimizer) = (HashMap::new(), HashMap::new());
    for ((name, _, _), a) in header.arrays.iter().zip(arrays) {
        match name.split_once(':') {
            Some(("w", k)) => weights.insert(k.to_string(), a),
            Some((_, k)) => optimizer.insert(k.to_string(), a),
            None => None,
        };
    }
    Ok(RunStart {
        state: header.state,
        examples: header.examples,
        weights,
        optimizer,
    })
}

fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

fn parse_dtype(name: &str) -> Result<Dtype> {
    [
        Dtype::Float32,
        Dtype::Float16,
        Dtype::Bfloat16,
        Dtype::Uint32,
        Dtype::Int32,
    ]
    .into_iter()
    .find(|d| dtype_name(*d) == name)
    .ok_or_else(|| {
        EngineError::from(DistributedError::Mismatch(format!(
            "rank 0 shared an array of dtype {name}, which cannot be sent"
        )))
    })
}

/// The batch size every rank trains with: the smallest that fits on any rank, rounded down
/// to a multiple of the group's size.
pub(crate) fn agree_batch_size(group: &Group, fits: usize, requested: usize) -> Result<usize> {
    let size = group.size();
    if !requested.is_multiple_of(size) {
        return Err(DistributedError::Mismatch(format!(
            "batch_size {requested} is not divisible by the group's {size} ranks; each rank \
             takes every {size}th example of a batch, so choose a multiple of {size}"
        ))
        .into());
    }
    let all = group.all_gather(&Array::from_slice(&[fits as f32], &[1]))?;
    group.eval([&all])?;
    let least = all
        .as_slice::<f32>()
        .iter()
        .fold(f32::MAX, |a, &b| a.min(b)) as usize;
    let agreed = least / size * size;
    if agreed == 0 {
        return Err(DistributedError::Mismatch(format!(
            "a batch of {size} (one example per rank) does not fit in memory on every rank"
        ))
        .into());
    }
    Ok(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_data::Position;

    fn batch(rows: usize) -> Batch {
        let width = 4;
        Batch {
            position: Position::default(),
            rows,
            width,
            tokens: (0..(rows * width) as u32).collect(),
            mask: (0..rows * width)
                .map(|i| u8::from(i % width != 0))
                .collect(),
            lengths: vec![4; rows],
            indices: (0..rows).collect(),
        }
    }

    #[test]
    fn each_rank_takes_every_nth_row() {
        let global = batch(5);
        let zero = local_part(&global, 0, 2);
        let one = local_part(&global, 1, 2);
        assert_eq!(zero.batch.indices, vec![0, 2, 4]);
        assert_eq!(one.batch.indices, vec![1, 3]);
        assert_eq!(&one.batch.tokens[..4], &[4, 5, 6, 7]);
        assert_eq!(zero.global_tokens, 15);
        assert!((zero.weight + one.weight - 1.0).abs() < 1e-6);
    }

    #[test]
    fn gathered_windows_become_each_ranks_speed() {
        let ranks = throughputs(&[100.0, 2.0, 0.5, 30.0, 3.0, 0.25]);
        assert_eq!(ranks.len(), 2);
        assert_eq!((ranks[1].rank, ranks[1].trained_tokens), (1, 30));
        assert_eq!(ranks[0].tokens_per_second, 50.0);
        assert_eq!(ranks[1].tokens_per_second, 10.0);
        assert_eq!(ranks[1].exchange_seconds, 0.25);
    }

    #[test]
    fn a_rank_without_rows_takes_part_with_no_weight() {
        let part = local_part(&batch(1), 1, 2);
        assert_eq!(part.batch.rows, 1);
        assert!(part.batch.mask.iter().all(|&m| m == 0));
        assert_eq!(part.weight, 0.0);
    }
}

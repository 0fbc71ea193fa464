//! Hyperparameter sweeps without MLX: what to search ([`SweepSpec`], [`Space`] of
//! [`Domain`]s over training settings by dotted name), how to choose each trial's values
//! ([`Sampler`], a seeded TPE with random start-up trials, a pure function of the trials
//! before) and when to stop a trial early ([`Halving`], successive halving on validation loss
//! at rungs of steps). The API runs the trials; this crate only decides.

mod error;
mod halving;
mod rng;
mod space;
mod spec;
mod tpe;

pub use error::SweepError;
pub use halving::Halving;
pub use space::{apply, known_knobs, Domain, Params, Space};
pub use spec::SweepSpec;
pub use tpe::{Observation, Sampler};

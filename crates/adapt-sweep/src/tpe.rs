//! A Tree-structured Parzen Estimator (Bergstra et al., 2011), independent per knob as in
//! Optuna's default: the finished trials are split into the best quarter and the rest, each
//! group's values become a density (a Parzen window of truncated normals plus a wide prior, or
//! smoothed counts for a choice), and of a few candidates drawn from the good density the one
//! most likelier under it than under the other is suggested. The first `startup_trials` are
//! drawn at random.
//!
//! A suggestion is a pure function of the seed, the trial's number and the trials before it,
//! so a resumed sweep suggests what an uninterrupted one would have.

use serde_json::Value;

use crate::rng::Rng;
use crate::space::{Domain, Params, Space};

/// A trial the sampler learns from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub params: Params,
    /// Rungs of successive halving the trial passed (a finished trial passed them all).
    pub rungs_reached: usize,
    /// Its validation loss at the deepest rung it reached (infinite for a failed trial).
    pub value: f64,
}

impl Observation {
    /// Better trials first: those that reached more rungs, then the lower loss.
    pub fn better_first(a: &Observation, b: &Observation) -> std::cmp::Ordering {
        b.rungs_reached
            .cmp(&a.rungs_reached)
            .then(finite(a.value).total_cmp(&finite(b.value)))
    }
}

/// The sampler's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    pub seed: u64,
    /// Trials drawn at random before the densities are used.
    pub startup_trials: u64,
    /// Candidates drawn from the good density per knob.
    pub candidates: usize,
}

/// Share of the trials that make the good group.
const GAMMA: f64 = 0.25;

impl Sampler {
    /// The values of trial `number` (0 for the first), given the trials before it.
    pub fn suggest(&self, space: &Space, number: u64, history: &[Observation]) -> Params {
        let mut ranked: Vec<&Observation> = history.iter().collect();
        ranked.sort_by(|a, b| Observation::better_first(a, b));
        let n_good = ((ranked.len() as f64 * GAMMA).ceil() as usize).clamp(1, 25);
        let startup = number < self.startup_trials || ranked.len() < 2;
        let (good, bad) = ranked.split_at(n_good.min(ranked.len()));
        let mut params = Params::new();
        for (i, (name, domain)) in space.knobs.iter().enumerate() {
            let mut rng = Rng::new(self.seed, &[number, i as u64]);
            let value = if startup {
                random(domain, &mut rng)
            } else {
                let values = |group: &[&Observation]| -> Vec<Value> {
                    group
                        .iter()
                        .filter_map(|o| o.params.get(name).cloned())
                        .collect()
                };
                self.pick(domain, &values(good), &values(bad), &mut rng)
            };
            params.insert(name.clone(), value);
        }
        params
    }

    fn pick(&self, domain: &Domain, good: &[Value], bad: &[Value], rng: &mut Rng) -> Value {
        if let Domain::Choice(items) = domain {
            let counts = |vals: &[Value]| {
                let mut c = vec![1.0f64; items.len()];
                for v in vals {
                    if let Some(i) = domain.choice_index(v) {
                        c[i] += 1.0;
                    }
                }
                let total: f64 = c.iter().sum();
                c.into_iter().map(|x| x / total).collect::<Vec<_>>()
            };
            let (l, g) = (counts(good), counts(bad));
            let best = (0..self.candidates.max(1))
                .map(|_| draw_index(&l, rng))
                .max_by(|&a, &b| (l[a] / g[a]).total_cmp(&(l[b] / g[b])))
                .unwrap_or(0);
            return items[best].clone();
        }
        let Some((lo, hi)) = domain.internal_bounds() else {
            return Value::Null;
        };
        let points = |vals: &[Value]| -> Vec<f64> {
            vals.iter().filter_map(|v| domain.to_internal(v)).collect()
        };
        let l = Parzen::new(&points(good), lo, hi);
        let g = Parzen::new(&points(bad), lo, hi);
        let best = (0..self.candidates.max(1))
            .map(|_| l.sample(rng))
            .max_by(|&a, &b| {
                (l.log_pdf(a) - g.log_pdf(a)).total_cmp(&(l.log_pdf(b) - g.log_pdf(b)))
            })
            .unwrap_or((lo + hi) / 2.0);
        domain.value_at(best)
    }
}

fn finite(x: f64) -> f64 {
    if x.is_nan() {
        f64::INFINITY
    } else {
        x
    }
}

/// A value drawn uniformly (on the knob's scale).
fn random(domain: &Domain, rng: &mut Rng) -> Value {
    match domain {
        Domain::Choice(items) => items[rng.below(items.len())].clone(),
        d => {
            let (lo, hi) = d.internal_bounds().unwrap_or((0.0, 1.0));
            d.value_at(lo + rng.unit() * (hi - lo))
        }
    }
}

fn draw_index(probs: &[f64], rng: &mut Rng) -> usize {
    let mut u = rng.unit();
    for (i, p) in probs.iter().enumerate() {
        if u < *p {
            return i;
        }
        u -= p;
    }
    probs.len() - 1
}

/// A mixture of normals truncated to `[lo, hi]`: one per point, plus a wide prior.
struct Parzen {
    components: Vec<(f64, f64, f64)>, // weight, mean, sigma
    lo: f64,
    hi: f64,
}

impl Parzen {
    fn new(points: &[f64], lo: f64, hi: f64) -> Parzen {
        let width = hi - lo;
        let mut sorted: Vec<f64> = points.iter().map(|p| p.clamp(lo, hi)).collect();
        sorted.sort_by(f64::total_cmp);
        let min_sigma = width / (sorted.len() as f64 + 1.0).min(100.0);
        let weight = 1.0 / (sorted.len() as f64 + 1.0);
        let mut components: Vec<(f64, f64, f64)> = sorted
            .iter()
            .enumerate()
            .map(|(i, &mu)| {
                let left = if i == 0 { mu - lo } else { mu - sorted[i - 1] };
                let right = if i + 1 == sorted.len() {
                    hi - mu
                } else {
                    sorted[i + 1] - mu
                };
                (weight, mu, left.max(right).clamp(min_sigma, width))
            })
            .collect();
        components.push((weight, (lo + hi) / 2.0, width));
        Parzen { components, lo, hi }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        let weights: Vec<f64> = self.components.iter().map(|c| c.0).collect();
        let (_, mu, sigma) = self.components[draw_index(&weights, rng)];
        for _ in 0..64 {
            let x = mu + sigma * rng.normal();
            if (self.lo..=self.hi).contains(&x) {
                return x;
            }
        }
        mu
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let p: f64 = self
            .components
            .iter()
            .map(|&(w, mu, s)| {
                let z = normal_cdf((self.hi - mu) / s) - normal_cdf((self.lo - mu) / s);
                let d = (-0.5 * ((x - mu) / s).powi(2)).exp()
                    / (s * (2.0 * std::f64::consts::PI).sqrt());
                w * d / z.max(1e-12)
            })
            .sum();
        p.max(1e-300).ln()
    }
}

/// Φ(x), from an erf approximation good to 1.5e-7 (Abramowitz and Stegun 7.1.26).
fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if z >= 0.0 { erf } else { -erf })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space() -> Space {
        Space {
            knobs: vec![
                ("x".into(), Domain::Uniform(-5.0, 5.0)),
                ("lr".into(), Domain::LogUniform(1e-5, 1.0)),
                (
                    "k".into(),
                    Domain::Choice(vec![json!(1), json!(10), json!(100)]),
                ),
            ],
        }
    }

    fn objective(p: &Params) -> f64 {
        let x = p["x"].as_f64().unwrap();
        let lr = p["lr"].as_f64().unwrap().log10();
        (x - 1.5).powi(2) + (lr + 3.0).powi(2) + p["k"].as_f64().unwrap() / 10.0
    }

    fn run(sampler: &Sampler, trials: u64) -> Vec<Observation> {
        let mut history = Vec::new();
        for n in 0..trials {
            let params = sampler.suggest(&space(), n, &history);
            let value = objective(&params);
            history.push(Observation {
                params,
                rungs_reached: 1,
                value,
            });
        }
        history
    }

    fn best(h: &[Observation]) -> f64 {
        h.iter().map(|o| o.value).fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn a_seed_gives_the_same_trials() {
        let s = Sampler {
            seed: 3,
            startup_trials: 5,
            candidates: 24,
        };
        assert_eq!(run(&s, 20), run(&s, 20));
        let other = Sampler { seed: 4, ..s };
        assert_ne!(run(&s, 20), run(&other, 20));
    }

    #[test]
    fn values_stay_inside_their_domains() {
        let s = Sampler {
            seed: 1,
            startup_trials: 3,
            candidates: 24,
        };
        for o in run(&s, 40) {
            let x = o.params["x"].as_f64().unwrap();
            let lr = o.params["lr"].as_f64().unwrap();
            assert!(
                (-5.0..=5.0).contains(&x) && (1e-5..=1.0).contains(&lr),
                "{o:?}"
            );
            assert!([1, 10, 100].contains(&o.params["k"].as_i64().unwrap()));
        }
    }

    #[test]
    fn the_densities_beat_random_search_on_average() {
        let (mut tpe, mut random) = (0.0, 0.0);
        for seed in 0..10 {
            let s = Sampler {
                seed,
                startup_trials: 8,
                candidates: 24,
            };
            tpe += best(&run(&s, 40));
            random += best(&run(
                &Sampler {
                    startup_trials: 1000,
                    ..s
                },
                40,
            ));
        }
        assert!(tpe < random, "tpe {tpe} random {random}");
    }

    #[test]
    fn the_good_group_steers_a_choice() {
        let s = Sampler {
            seed: 0,
            startup_trials: 0,
            candidates: 24,
        };
        let space = Space {
            knobs: vec![("k".into(), Domain::Choice(vec![json!("a"), json!("b")]))],
        };
        let obs = |k: &str, value: f64| Observation {
            params: [("k".to_string(), json!(k))].into(),
            rungs_reached: 1,
            value,
        };
        let history: Vec<Observation> = (0..8)
            .map(|i| {
                if i < 2 {
                    obs("a", 0.1)
                } else {
                    obs("b", 1.0 + i as f64)
                }
            })
            .collect();
        let picks = (0..20)
            .filter(|n| s.suggest(&space, 10 + n, &history)["k"] == json!("a"))
            .count();
        assert!(picks >= 15, "{picks}");
    }

    #[test]
    fn the_cdf_is_right_at_known_points() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }
}

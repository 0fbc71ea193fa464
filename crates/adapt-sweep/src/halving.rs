//! Successive halving, asynchronous (ASHA) as trials run one after another: a trial is
//! evaluated at rungs of steps (say 25 %, 50 % and 100 % of its budget) and goes on past a
//! rung only while its validation loss there is among the best `1 / reduction` of every trial
//! that reached that rung so far; otherwise it is pruned and the next trial starts.

use serde::{Deserialize, Serialize};

/// The rungs and how hard each one cuts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Halving {
    /// Steps at which a trial is judged, increasing; the last is the whole budget.
    pub rungs: Vec<u64>,
    /// A rung keeps the best `1 / reduction` of the trials that reached it (at least one).
    pub reduction: f64,
}

impl Halving {
    /// Rungs at `fractions` of `budget` steps (rounded up, at least one step, the budget
    /// itself always last).
    pub fn new(budget: u64, fractions: &[f64], reduction: f64) -> Halving {
        let mut rungs: Vec<u64> = fractions
            .iter()
            .map(|f| ((budget as f64 * f).ceil() as u64).clamp(1, budget.max(1)))
            .collect();
        rungs.push(budget.max(1));
        rungs.sort_unstable();
        rungs.dedup();
        Halving { rungs, reduction }
    }

    /// How often to evaluate so that every rung is an evaluation: the rungs' common divisor.
    pub fn eval_every(&self) -> u64 {
        fn gcd(a: u64, b: u64) -> u64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        self.rungs.iter().fold(0, |g, &r| gcd(g, r)).max(1)
    }

    /// The rung at `step`, if it is one.
    pub fn rung_at(&self, step: u64) -> Option<usize> {
        self.rungs.iter().position(|&r| r == step)
    }

    /// Whether the last rung is `rung` (a trial there has finished, not been judged).
    pub fn is_last(&self, rung: usize) -> bool {
        rung + 1 >= self.rungs.len()
    }

    /// Whether a trial whose validation loss at `rung` is `value` goes on, given the losses
    /// of the trials before it at that rung. Nothing is pruned at the last rung.
    pub fn promote(&self, rung: usize, value: f64, earlier: &[f64]) -> bool {
        if self.is_last(rung) {
            return true;
        }
        if value.is_nan() {
            return earlier.is_empty();
        }
        let n = earlier.len() + 1;
        let keep = ((n as f64 / self.reduction.max(1.0)).floor() as usize).max(1);
        let better = earlier.iter().filter(|&&e| e < value).count();
        better < keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_are_fractions_of_the_budget_and_evaluations_hit_them() {
        let h = Halving::new(40, &[0.25, 0.5], 3.0);
        assert_eq!(h.rungs, [10, 20, 40]);
        assert_eq!(h.eval_every(), 10);
        assert_eq!(h.rung_at(20), Some(1));
        assert_eq!(h.rung_at(30), None);
        let odd = Halving::new(10, &[0.25, 0.5, 1.0], 3.0);
        assert_eq!(odd.rungs, [3, 5, 10]);
        assert_eq!(odd.eval_every(), 1);
        assert_eq!(Halving::new(0, &[0.5], 2.0).rungs, [1]);
    }

    #[test]
    fn a_rung_keeps_the_best_share() {
        let h = Halving::new(40, &[0.25, 0.5], 3.0);
        assert!(h.promote(0, 5.0, &[]), "the first trial always goes on");
        assert!(h.promote(0, 1.0, &[2.0]));
        assert!(!h.promote(0, 3.0, &[2.0]));
        // Six trials at a rung with reduction 3: the best two go on.
        assert!(h.promote(0, 1.5, &[1.0, 2.0, 3.0, 4.0, 5.0]));
        assert!(!h.promote(0, 2.5, &[1.0, 2.0, 3.0, 4.0, 5.0]));
        assert!(!h.promote(0, f64::NAN, &[1.0]));
        assert!(h.promote(2, 100.0, &[1.0]), "nothing is pruned at the end");
    }
}

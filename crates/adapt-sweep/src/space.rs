//! The search space: each knob (a training setting by its dotted name, `learning_rate`,
//! `lora_parameters.rank`) with the values it may take, and [`apply`] to set a trial's values
//! into a configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SweepError;

/// The values one knob may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Domain {
    /// A number between the bounds, sampled on a log scale (learning rates).
    LogUniform(f64, f64),
    /// A number between the bounds.
    Uniform(f64, f64),
    /// A whole number between the bounds, both included.
    Int(i64, i64),
    /// One of the listed values (any JSON: numbers, lists of keys, schedules).
    #[cfg_attr(feature = "ts", ts(type = "unknown[]"))]
    Choice(Vec<Value>),
}

/// A trial's values, by knob.
pub type Params = BTreeMap<String, Value>;

/// Every knob of a sweep with its domain, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Space {
    pub knobs: Vec<(String, Domain)>,
}

impl Domain {
    /// Reads `{log_uniform: [lo, hi]}`, `{uniform: [lo, hi]}`, `{int: [lo, hi]}`,
    /// `{choice: [..]}` or a bare list (a choice).
    pub fn from_value(value: &Value, source: &str, field: &str) -> Result<Domain, SweepError> {
        const FORMS: &str = "use {log_uniform: [lo, hi]}, {uniform: [lo, hi]}, {int: [lo, hi]} \
                             or {choice: [a, b, ...]} (a bare list is a choice)";
        let bad = |m: String| SweepError::bad(source, field, m);
        let (kind, args) = match value {
            Value::Array(items) => ("choice", Value::Array(items.clone())),
            Value::Object(map) if map.len() == 1 => {
                let (k, v) = map.iter().next().expect("one entry");
                (k.as_str(), v.clone())
            }
            _ => return Err(bad(FORMS.into())),
        };
        let pair = || -> Result<(f64, f64), SweepError> {
            match args
                .as_array()
                .map(|a| a.iter().map(Value::as_f64).collect::<Vec<_>>())
            {
                Some(v) if v.len() == 2 && v.iter().all(Option::is_some) => {
                    let (lo, hi) = (v[0].unwrap_or(0.0), v[1].unwrap_or(0.0));
                    if lo.is_finite() && hi.is_finite() && lo < hi {
                        Ok((lo, hi))
                    } else {
                        Err(bad(format!("{kind} needs two numbers, the lower first")))
                    }
                }
                _ => Err(bad(format!("{kind} needs [lower, upper]"))),
            }
        };
        match kind {
            "log_uniform" => {
                let (lo, hi) = pair()?;
                if lo <= 0.0 {
                    return Err(bad("log_uniform bounds must be above 0".into()));
                }
                Ok(Domain::LogUniform(lo, hi))
            }
            "uniform" => pair().map(|(lo, hi)| Domain::Uniform(lo, hi)),
            "int" => {
                let (lo, hi) = pair()?;
                if lo.fract() != 0.0 || hi.fract() != 0.0 {
                    return Err(bad("int bounds must be whole numbers".into()));
                }
                Ok(Domain::Int(lo as i64, hi as i64))
            }
            "choice" => match args {
                Value::Array(items) if !items.is_empty() => Ok(Domain::Choice(items)),
                _ => Err(bad("choice needs a non-empty list of values".into())),
            },
            other => Err(bad(format!("unknown domain '{other}'; {FORMS}"))),
        }
    }

    /// The numeric bounds the sampler works in (log for log-uniform; whole numbers widened
    /// by a half so each gets an equal share), or `None` for a choice.
    pub(crate) fn internal_bounds(&self) -> Option<(f64, f64)> {
        match *self {
            Domain::LogUniform(lo, hi) => Some((lo.ln(), hi.ln())),
            Domain::Uniform(lo, hi) => Some((lo, hi)),
            Domain::Int(lo, hi) => Some((lo as f64 - 0.5, hi as f64 + 0.5)),
            Domain::Choice(_) => None,
        }
    }

    /// A value from the sampler's number (see [`Domain::internal_bounds`]).
    pub(crate) fn value_at(&self, u: f64) -> Value {
        match *self {
            Domain::LogUniform(lo, hi) => Value::from(u.exp().clamp(lo, hi)),
            Domain::Uniform(lo, hi) => Value::from(u.clamp(lo, hi)),
            Domain::Int(lo, hi) => Value::from((u.round() as i64).clamp(lo, hi)),
            Domain::Choice(_) => Value::Null,
        }
    }

    /// The sampler's number for a value (inverse of [`Domain::value_at`]).
    pub(crate) fn to_internal(&self, v: &Value) -> Option<f64> {
        let x = v.as_f64()?;
        match self {
            Domain::LogUniform(..) => (x > 0.0).then(|| x.ln()),
            Domain::Uniform(..) | Domain::Int(..) => Some(x),
            Domain::Choice(_) => None,
        }
    }

    /// The index of a chosen value.
    pub(crate) fn choice_index(&self, v: &Value) -> Option<usize> {
        match self {
            Domain::Choice(items) => items.iter().position(|c| c == v),
            _ => None,
        }
    }
}

impl Space {
    /// Reads a mapping of knob → domain; every knob must be one of `known`.
    pub fn from_value(value: &Value, source: &str, known: &[String]) -> Result<Space, SweepError> {
        let Value::Object(map) = value else {
            return Err(SweepError::bad(
                source,
                "space",
                "a mapping of settings to the values they may take",
            ));
        };
        let mut knobs = Vec::new();
        for (name, domain) in map {
            if !known.iter().any(|k| k == name) {
                return Err(SweepError::UnknownKnob {
                    source_name: source.into(),
                    knob: name.clone(),
                    known: known.join(", "),
                });
            }
            knobs.push((
                name.clone(),
                Domain::from_value(domain, source, &format!("space.{name}"))?,
            ));
        }
        if knobs.is_empty() {
            return Err(SweepError::bad(
                source,
                "space",
                "name at least one setting to search",
            ));
        }
        Ok(Space { knobs })
    }
}

/// Every setting a sweep may name: the dotted paths of `base`'s leaves (objects are walked
/// into), plus `extra` (settings the base leaves out when unset).
pub fn known_knobs(base: &Value, extra: &[&str]) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        if let Value::Object(map) = v {
            for (k, child) in map {
                let path = match prefix {
                    "" => k.clone(),
                    p => format!("{p}.{k}"),
                };
                if child.is_object() && !child.as_object().is_some_and(|m| m.is_empty()) {
                    walk(&path, child, out);
                }
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk("", base, &mut out);
    out.extend(extra.iter().map(|s| s.to_string()));
    out.sort();
    out.dedup();
    out
}

/// `base` with each of `params` set at its dotted path (objects created on the way).
pub fn apply(base: &Value, params: &Params) -> Value {
    let mut out = base.clone();
    for (path, value) in params {
        let mut at = &mut out;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            if !at.is_object() {
                *at = Value::Object(Default::default());
            }
            let map = at.as_object_mut().expect("an object");
            if i + 1 == parts.len() {
                map.insert(part.to_string(), value.clone());
                break;
            }
            at = map.entry(part.to_string()).or_insert(Value::Null);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known() -> Vec<String> {
        known_knobs(
            &json!({"learning_rate": 1e-5, "lora_parameters": {"rank": 8, "scale": 20.0}}),
            &["lora_parameters.keys"],
        )
    }

    #[test]
    fn knobs_are_the_leaves_and_their_parents() {
        assert_eq!(
            known(),
            [
                "learning_rate",
                "lora_parameters",
                "lora_parameters.keys",
                "lora_parameters.rank",
                "lora_parameters.scale"
            ]
        );
    }

    #[test]
    fn every_domain_form_reads_and_bad_ones_name_the_field() {
        let s = Space::from_value(
            &json!({
                "learning_rate": {"log_uniform": [1e-5, 1e-2]},
                "lora_parameters.rank": [4, 8],
                "lora_parameters.scale": {"uniform": [5, 30]},
                "lora_parameters.keys": {"choice": [["q_proj"], ["q_proj", "v_proj"]]},
            }),
            "s.yaml",
            &known(),
        )
        .unwrap();
        assert_eq!(s.knobs.len(), 4);
        assert!(s
            .knobs
            .contains(&("learning_rate".into(), Domain::LogUniform(1e-5, 1e-2))));
        for (bad, says) in [
            (json!({"learning_rate": {"log_uniform": [0, 1]}}), "above 0"),
            (json!({"learning_rate": {"uniform": [2, 1]}}), "lower first"),
            (
                json!({"learning_rate": {"gauss": [1, 2]}}),
                "unknown domain",
            ),
            (json!({"learning_rate": 3}), "log_uniform"),
            (json!({"learning_rate": {"choice": []}}), "non-empty"),
            (json!({"lora_parameters.rank": {"int": [1.5, 4]}}), "whole"),
            (json!({}), "at least one"),
        ] {
            let e = Space::from_value(&bad, "s.yaml", &known()).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
            assert!(e.to_string().starts_with("s.yaml: '"), "{e}");
        }
    }

    #[test]
    fn an_unknown_knob_is_refused_by_name() {
        let e = Space::from_value(&json!({"learning_rat": [1]}), "s.yaml", &known()).unwrap_err();
        assert_eq!(e.code(), "sweep.unknown_knob");
        assert!(e.to_string().contains("'learning_rat'"), "{e}");
        assert!(e.to_string().contains("learning_rate"), "{e}");
    }

    #[test]
    fn apply_sets_dotted_paths_and_keeps_the_rest() {
        let base = json!({"learning_rate": 1e-5, "lora_parameters": {"rank": 8, "scale": 20.0}});
        let mut p = Params::new();
        p.insert("lora_parameters.rank".into(), json!(16));
        p.insert("learning_rate".into(), json!(0.01));
        p.insert("schedule.warmup".into(), json!(5));
        assert_eq!(
            apply(&base, &p),
            json!({"learning_rate": 0.01, "lora_parameters": {"rank": 16, "scale": 20.0},
                   "schedule": {"warmup": 5}})
        );
    }

    #[test]
    fn internal_numbers_round_trip() {
        let d = Domain::LogUniform(1e-5, 1e-1);
        let (lo, hi) = d.internal_bounds().unwrap();
        assert!((d.value_at(lo).as_f64().unwrap() - 1e-5).abs() < 1e-12);
        assert!((d.to_internal(&json!(1e-1)).unwrap() - hi).abs() < 1e-12);
        let i = Domain::Int(2, 4);
        assert_eq!(i.value_at(4.49), json!(4));
        assert_eq!(i.value_at(9.0), json!(4));
        let c = Domain::Choice(vec![json!("a"), json!([1, 2])]);
        assert_eq!(c.choice_index(&json!([1, 2])), Some(1));
    }
}

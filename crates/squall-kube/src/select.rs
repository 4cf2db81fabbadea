//! Which pods `terminate_pods` hits: chaosk8s's `_select_pods` (validation,
//! name pattern, order, `all` / `mode` / `qty` / `rand`) as pure functions
//! over a listed set of pods, plus squall's additions: a seeded random pick
//! that can be replayed and random targets when no selector narrows the
//! namespace. The blast-radius check is in [`crate::limits`].

use k8s_openapi::api::core::v1::Pod;
use rand::SeedableRng;
use rand::rngs::StdRng;
use regex::Regex;
use serde_json::{Map, Value, json};
use squall_activity::ActivityError;
use squall_activity::describe::optional;
use squall_core::catalog::{ArgSpec, ArgType};

use crate::args::{bool_or, int_or, opt_str, str_or};

/// The arguments of `terminate_pods`, in upstream order, plus `seed`.
pub const ARGS: &[ArgSpec] = &[
    optional(
        "label_selector",
        ArgType::String,
        "null",
        "Label selector of the candidate pods, e.g. `app=web`.",
    ),
    optional(
        "name_pattern",
        ArgType::String,
        "null",
        "A regular expression searched (unanchored, like Python's re.search) in each candidate's name.",
    ),
    optional(
        "all",
        ArgType::Boolean,
        "false",
        "Terminate every candidate; rand, mode and qty are ignored.",
    ),
    optional(
        "rand",
        ArgType::Boolean,
        "false",
        "Pick the pods at random (without repeats) instead of the first ones.",
    ),
    optional(
        "mode",
        ArgType::String,
        "\"fixed\"",
        "`fixed`: qty is a number of pods; `percentage`: qty is a percentage of the candidates, rounded up.",
    ),
    optional(
        "qty",
        ArgType::Integer,
        "1",
        "How many pods (or what percentage) to terminate.",
    ),
    optional(
        "grace_period",
        ArgType::Integer,
        "-1",
        "Grace period in seconds; -1 uses each pod's terminationGracePeriodSeconds, 0 deletes at once.",
    ),
    optional(
        "ns",
        ArgType::String,
        "\"default\"",
        "The namespace of the pods.",
    ),
    optional(
        "order",
        ArgType::String,
        "\"alphabetic\"",
        "`alphabetic` (the API's order, by name) or `oldest` (by creation time, oldest first).",
    ),
    optional(
        "seed",
        ArgType::Integer,
        "null",
        "Seed of a random pick (squall only): the output of a random pick reports its seed; pass it here to replay the same pick on the same candidates.",
    ),
];

/// The selection arguments of `terminate_pods`.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub label_selector: Option<String>,
    pub name_pattern: Option<String>,
    pub all: bool,
    pub rand: bool,
    pub percentage: bool,
    pub qty: u64,
    pub ns: String,
    pub oldest: bool,
}

impl Selection {
    /// Reads and validates the arguments with chaosk8s's messages.
    pub fn read(args: &Map<String, Value>) -> Result<Self, ActivityError> {
        let qty = int_or(args, "qty", 1)?;
        let mode = str_or(args, "mode", "fixed")?;
        let order = str_or(args, "order", "alphabetic")?;
        let fail = |m: String| Err(ActivityError::Failed(m));
        if qty < 0 {
            return fail(format!("Cannot select pods. Quantity '{qty}' is negative."));
        }
        if mode != "fixed" && mode != "percentage" {
            return fail(format!("Cannot select pods. Mode '{mode}' is invalid."));
        }
        if order != "alphabetic" && order != "oldest" {
            return fail(format!("Cannot select pods. Order '{order}' is invalid."));
        }
        Ok(Self {
            label_selector: opt_str(args, "label_selector")?,
            name_pattern: opt_str(args, "name_pattern")?,
            all: bool_or(args, "all", false)?,
            rand: bool_or(args, "rand", false)?,
            percentage: mode == "percentage",
            qty: qty.unsigned_abs(),
            ns: str_or(args, "ns", "default")?,
            oldest: order == "oldest",
        })
    }

    /// The listed pods that match the name pattern, in the chosen order.
    pub fn candidates(&self, pods: Vec<Pod>) -> Result<Vec<Pod>, ActivityError> {
        let mut pods = match &self.name_pattern {
            Some(p) => {
                let re = Regex::new(p).map_err(|e| {
                    ActivityError::failed(format!("invalid name_pattern '{p}': {e}"))
                })?;
                let name = |pod: &Pod| pod.metadata.name.clone().unwrap_or_default();
                pods.into_iter()
                    .filter(|pod| re.is_match(&name(pod)))
                    .collect()
            }
            None => pods,
        };
        if self.oldest {
            // Stable, so equal timestamps keep the API's order.
            pods.sort_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            });
        }
        Ok(pods)
    }

    /// Whether the pick is random: asked for, or forced because nothing
    /// narrows the namespace (squall picks random pods there rather than
    /// always the alphabetically first ones).
    pub fn is_random(&self) -> bool {
        self.rand || (self.label_selector.is_none() && self.name_pattern.is_none())
    }

    /// Chooses the pods to terminate. `seed` replays an earlier random pick;
    /// without one a fresh seed is drawn (53 bits, exact in any JSON reader).
    pub fn pick(&self, candidates: &[Pod], seed: Option<i64>) -> Pick {
        let names: Vec<String> = candidates
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        if self.all {
            return Pick { names, seed: None };
        }
        let len = names.len() as u64;
        let wanted = if self.percentage {
            self.qty.saturating_mul(len).div_ceil(100)
        } else {
            self.qty
        };
        let qty = usize::try_from(wanted.min(len)).unwrap_or(names.len());
        if !self.is_random() {
            return Pick {
                names: names.into_iter().take(qty).collect(),
                seed: None,
            };
        }
        let seed = seed.map_or_else(|| rand::random::<u64>() >> 11, i64::unsigned_abs);
        let mut rng = StdRng::seed_from_u64(seed);
        let picked = rand::seq::index::sample(&mut rng, names.len(), qty)
            .into_iter()
            .map(|i| names[i].clone())
            .collect();
        Pick {
            names: picked,
            seed: Some(seed),
        }
    }
}

/// The pods chosen, and the seed when the choice was random.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub names: Vec<String>,
    pub seed: Option<u64>,
}

impl Pick {
    /// The activity's output: the list of names as chaosk8s returns it, or
    /// `{"pods": [...], "seed": N}` for a random pick.
    pub fn output(&self) -> Value {
        match self.seed {
            None => json!(self.names),
            Some(seed) => json!({"pods": self.names, "seed": seed}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(names: &[&str]) -> Vec<Pod> {
        names
            .iter()
            .map(|n| {
                let mut p = Pod::default();
                p.metadata.name = Some((*n).to_owned());
                p
            })
            .collect()
    }

    fn sel(v: Value) -> Selection {
        Selection::read(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn validation_messages_match_chaosk8s() {
        let err = |v: Value| Selection::read(v.as_object().unwrap()).unwrap_err();
        assert_eq!(
            err(json!({"qty": -1})).message(),
            "Cannot select pods. Quantity '-1' is negative."
        );
        assert_eq!(
            err(json!({"mode": "some"})).message(),
            "Cannot select pods. Mode 'some' is invalid."
        );
        assert_eq!(
            err(json!({"order": "newest"})).message(),
            "Cannot select pods. Order 'newest' is invalid."
        );
    }

    #[test]
    fn fixed_percentage_and_all() {
        let p = pods(&["a", "b", "c", "d", "e"]);
        let s = sel(json!({"label_selector": "x", "qty": 2}));
        assert_eq!(s.pick(&p, None).names, ["a", "b"]);
        // ceil(30% of 5) = 2
        let s = sel(json!({"label_selector": "x", "mode": "percentage", "qty": 30}));
        assert_eq!(s.pick(&p, None).names, ["a", "b"]);
        let s = sel(json!({"label_selector": "x", "qty": 99}));
        assert_eq!(s.pick(&p, None).names.len(), 5);
        let s = sel(json!({"label_selector": "x", "all": true, "qty": 0}));
        assert_eq!(
            s.pick(&p, None),
            Pick {
                names: vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()],
                seed: None
            }
        );
        let s = sel(json!({"label_selector": "x", "qty": 0}));
        assert!(s.pick(&p, None).names.is_empty());
    }

    #[test]
    fn random_picks_replay_from_their_seed() {
        let p = pods(&["a", "b", "c", "d", "e", "f", "g", "h"]);
        let s = sel(json!({"label_selector": "x", "rand": true, "qty": 3}));
        let first = s.pick(&p, None);
        let seed = first.seed.unwrap();
        assert!(seed < 1 << 53);
        let again = s.pick(&p, Some(i64::try_from(seed).unwrap()));
        assert_eq!(first, again);
        let mut unique = first.names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3, "no repeats");
        assert_eq!(first.output()["seed"], json!(seed));
        assert_eq!(first.output()["pods"], json!(first.names));
    }

    #[test]
    fn no_selector_means_random_and_pattern_is_a_search() {
        assert!(sel(json!({})).is_random());
        assert!(!sel(json!({"name_pattern": "web"})).is_random());
        let s = sel(json!({"name_pattern": "eb-"}));
        let c = s.candidates(pods(&["web-1", "db-1", "web-2"])).unwrap();
        assert_eq!(c.len(), 2);
        let bad = sel(json!({"name_pattern": "("}));
        assert!(
            bad.candidates(pods(&["a"]))
                .unwrap_err()
                .message()
                .starts_with("invalid name_pattern '('")
        );
    }
}

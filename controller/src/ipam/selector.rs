//! Label selectors (`matchLabels` + `matchExpressions`) and their matcher,
//! as Kubernetes defines them, without Kubernetes types: the reconciler
//! converts the IPPool's `metav1.LabelSelector`s into these.
//!
//! Semantics (as `metav1.LabelSelectorAsSelector`): every `matchLabels`
//! pair and every expression must hold; an empty selector matches every
//! object; `NotIn` and `DoesNotExist` match objects without the key.

use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// A label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    pub match_labels: Labels,
    pub match_expressions: Vec<LabelRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: SelectorOperator,
}

/// An expression's operator with its values (only `In`/`NotIn` carry any).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
}

/// Why a selector is not valid (the API server refuses the same).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    #[error("a label selector key is empty")]
    EmptyKey,
    #[error("operator {operator} of key {key:?} needs at least one value")]
    MissingValues { key: String, operator: &'static str },
    #[error("operator {operator} of key {key:?} takes no values")]
    UnexpectedValues { key: String, operator: &'static str },
    #[error("unknown label selector operator {0:?} (In, NotIn, Exists, DoesNotExist)")]
    UnknownOperator(String),
}

impl SelectorOperator {
    /// Builds an operator from its API spelling and values, refusing what
    /// the API server refuses.
    pub fn from_parts(
        key: &str,
        operator: &str,
        values: impl IntoIterator<Item = String>,
    ) -> Result<SelectorOperator, SelectorError> {
        let values: BTreeSet<String> = values.into_iter().collect();
        let op = match operator {
            "In" => SelectorOperator::In(values),
            "NotIn" => SelectorOperator::NotIn(values),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(SelectorError::UnexpectedValues {
                    key: key.into(),
                    operator: if operator == "Exists" {
                        "Exists"
                    } else {
                        "DoesNotExist"
                    },
                })
            }
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => return Err(SelectorError::UnknownOperator(other.into())),
        };
        let req = LabelRequirement {
            key: key.into(),
            operator: op,
        };
        req.validate()?;
        Ok(req.operator)
    }

    fn name(&self) -> &'static str {
        match self {
            SelectorOperator::In(_) => "In",
            SelectorOperator::NotIn(_) => "NotIn",
            SelectorOperator::Exists => "Exists",
            SelectorOperator::DoesNotExist => "DoesNotExist",
        }
    }
}

impl LabelRequirement {
    fn validate(&self) -> Result<(), SelectorError> {
        if self.key.is_empty() {
            return Err(SelectorError::EmptyKey);
        }
        match &self.operator {
            SelectorOperator::In(v) | SelectorOperator::NotIn(v) if v.is_empty() => {
                Err(SelectorError::MissingValues {
                    key: self.key.clone(),
                    operator: self.operator.name(),
                })
            }
            _ => Ok(()),
        }
    }

    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            SelectorOperator::In(v) => value.is_some_and(|x| v.contains(x)),
            SelectorOperator::NotIn(v) => value.is_none_or(|x| !v.contains(x)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Checks what the API server checks; pool validation reports the error.
    pub fn validate(&self) -> Result<(), SelectorError> {
        if self.match_labels.keys().any(String::is_empty) {
            return Err(SelectorError::EmptyKey);
        }
        self.match_expressions
            .iter()
            .try_for_each(LabelRequirement::validate)
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

//! Label selectors match as Kubernetes' do.

use super::super::{LabelRequirement, LabelSelector, SelectorError, SelectorOperator};
use super::labels;

fn expr(key: &str, op: &str, values: &[&str]) -> LabelRequirement {
    LabelRequirement {
        key: key.into(),
        operator: SelectorOperator::from_parts(key, op, values.iter().map(|v| v.to_string()))
            .unwrap(),
    }
}

fn sel(match_labels: &[(&str, &str)], exprs: Vec<LabelRequirement>) -> LabelSelector {
    LabelSelector {
        match_labels: labels(match_labels),
        match_expressions: exprs,
    }
}

/// Name, selector, the object's labels, whether it matches.
type MatchCase = (
    &'static str,
    LabelSelector,
    &'static [(&'static str, &'static str)],
    bool,
);

#[test]
fn matching() {
    let cases: Vec<MatchCase> = vec![
        (
            "empty selector matches everything",
            sel(&[], vec![]),
            &[],
            true,
        ),
        (
            "empty selector matches labelled",
            sel(&[], vec![]),
            &[("a", "1")],
            true,
        ),
        (
            "matchLabels equal",
            sel(&[("a", "1")], vec![]),
            &[("a", "1"), ("b", "2")],
            true,
        ),
        (
            "matchLabels value differs",
            sel(&[("a", "1")], vec![]),
            &[("a", "2")],
            false,
        ),
        (
            "matchLabels key missing",
            sel(&[("a", "1")], vec![]),
            &[],
            false,
        ),
        (
            "all matchLabels needed",
            sel(&[("a", "1"), ("b", "2")], vec![]),
            &[("a", "1")],
            false,
        ),
        (
            "In matches a listed value",
            sel(&[], vec![expr("env", "In", &["prod", "stage"])]),
            &[("env", "stage")],
            true,
        ),
        (
            "In misses other value",
            sel(&[], vec![expr("env", "In", &["prod"])]),
            &[("env", "dev")],
            false,
        ),
        (
            "In misses absent key",
            sel(&[], vec![expr("env", "In", &["prod"])]),
            &[],
            false,
        ),
        (
            "NotIn matches other value",
            sel(&[], vec![expr("env", "NotIn", &["prod"])]),
            &[("env", "dev")],
            true,
        ),
        (
            "NotIn matches absent key",
            sel(&[], vec![expr("env", "NotIn", &["prod"])]),
            &[],
            true,
        ),
        (
            "NotIn misses listed value",
            sel(&[], vec![expr("env", "NotIn", &["prod"])]),
            &[("env", "prod")],
            false,
        ),
        (
            "Exists with key",
            sel(&[], vec![expr("gpu", "Exists", &[])]),
            &[("gpu", "")],
            true,
        ),
        (
            "Exists without key",
            sel(&[], vec![expr("gpu", "Exists", &[])]),
            &[],
            false,
        ),
        (
            "DoesNotExist without key",
            sel(&[], vec![expr("gpu", "DoesNotExist", &[])]),
            &[],
            true,
        ),
        (
            "DoesNotExist with key",
            sel(&[], vec![expr("gpu", "DoesNotExist", &[])]),
            &[("gpu", "x")],
            false,
        ),
        (
            "labels and expressions both needed",
            sel(&[("a", "1")], vec![expr("b", "Exists", &[])]),
            &[("a", "1")],
            false,
        ),
    ];
    for (name, s, l, want) in cases {
        assert_eq!(s.matches(&labels(l)), want, "{name}");
    }
}

#[test]
fn invalid_selectors_are_refused() {
    let no_values = SelectorOperator::from_parts("env", "In", Vec::new());
    assert_eq!(
        no_values,
        Err(SelectorError::MissingValues {
            key: "env".into(),
            operator: "In"
        })
    );
    let exists_values = SelectorOperator::from_parts("env", "Exists", vec!["x".to_string()]);
    assert_eq!(
        exists_values,
        Err(SelectorError::UnexpectedValues {
            key: "env".into(),
            operator: "Exists"
        })
    );
    let unknown = SelectorOperator::from_parts("env", "Gt", vec!["1".to_string()]);
    assert_eq!(unknown, Err(SelectorError::UnknownOperator("Gt".into())));
    let empty_key = LabelSelector {
        match_labels: labels(&[("", "x")]),
        match_expressions: Vec::new(),
    };
    assert_eq!(empty_key.validate(), Err(SelectorError::EmptyKey));
    let built_empty_in = LabelSelector {
        match_labels: Default::default(),
        match_expressions: vec![LabelRequirement {
            key: "env".into(),
            operator: SelectorOperator::NotIn(Default::default()),
        }],
    };
    assert!(built_empty_in.validate().is_err());
}

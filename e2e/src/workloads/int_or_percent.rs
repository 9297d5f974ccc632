//! `maxSurge`/`maxUnavailable`: an integer or a percentage of a total,
//! rounded as upstream (`intstr.GetScaledValueFromIntOrPercent`).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::error::WorkloadError;

/// Which way a percentage rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Round {
    Up,
    Down,
}

/// `value` scaled against `total`; `default` when unset.
pub(crate) fn scaled(
    field: &'static str,
    value: Option<&IntOrString>,
    default: &IntOrString,
    total: i32,
    round: Round,
) -> Result<i32, WorkloadError> {
    match value.unwrap_or(default) {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(text) => {
            let invalid = || WorkloadError::InvalidIntOrPercent {
                field,
                value: text.clone(),
            };
            let percent: i64 = text
                .strip_suffix('%')
                .ok_or_else(invalid)?
                .parse()
                .map_err(|_| invalid())?;
            let product = percent * i64::from(total);
            let scaled = match round {
                Round::Up => (product + 99).div_euclid(100),
                Round::Down => product.div_euclid(100),
            };
            i32::try_from(scaled).map_err(|_| invalid())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.to_string())
    }

    #[test]
    fn percentages_round_as_upstream() {
        let d = IntOrString::Int(1);
        assert_eq!(
            scaled("s", Some(&pct("25%")), &d, 3, Round::Up).ok(),
            Some(1)
        );
        assert_eq!(
            scaled("u", Some(&pct("25%")), &d, 3, Round::Down).ok(),
            Some(0)
        );
        assert_eq!(
            scaled("u", Some(&pct("50%")), &d, 10, Round::Down).ok(),
            Some(5)
        );
        assert_eq!(scaled("u", None, &d, 10, Round::Down).ok(), Some(1));
        assert_eq!(
            scaled("u", Some(&IntOrString::Int(2)), &d, 10, Round::Up).ok(),
            Some(2)
        );
        assert!(scaled("u", Some(&pct("x%")), &d, 10, Round::Up).is_err());
        assert!(scaled("u", Some(&pct("5")), &d, 10, Round::Up).is_err());
    }
}

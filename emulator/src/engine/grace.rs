//! Graceful deletion of Pods, as the real server's pod strategy decides it:
//! a Pod running on a node is not removed by DELETE but marked with a
//! `deletionTimestamp` that far in the future and `deletionGracePeriodSeconds`,
//! so its kubelet can stop it; the kubelet then deletes it with grace 0. A
//! Pod never scheduled, or already finished, goes at once.

use serde_json::Value;

/// What `terminationGracePeriodSeconds` defaults to.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The grace period a DELETE with `options` gives `pod`; 0 removes it now.
pub(super) fn pod_grace_seconds(pod: &Value, options: &Value) -> i64 {
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|node| !node.is_empty());
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || finished {
        return 0;
    }
    options["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0)
}

/// Whether a new deletion deadline `grace` seconds from now comes before the
/// one already set (a second DELETE may only shorten the wait).
pub(super) fn shortens(pod: &Value, grace: i64) -> bool {
    let current = pod["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match current {
        Some(current) => jiff::Timestamp::now().as_second() + grace < current.as_second(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str, phase: &str, grace: Option<i64>) -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": grace},
            "status": {"phase": phase},
        })
    }

    #[test]
    fn a_running_pod_gets_its_own_grace_period_unless_the_request_gives_one() {
        let running = pod("node-0", "Running", Some(20));
        assert_eq!(pod_grace_seconds(&running, &json!({})), 20);
        assert_eq!(
            pod_grace_seconds(&running, &json!({"gracePeriodSeconds": 3})),
            3
        );
        assert_eq!(
            pod_grace_seconds(&running, &json!({"gracePeriodSeconds": 0})),
            0
        );
        assert_eq!(
            pod_grace_seconds(&pod("node-0", "Running", None), &json!({})),
            30
        );
    }

    #[test]
    fn unscheduled_and_finished_pods_go_at_once() {
        let options = json!({"gracePeriodSeconds": 30});
        assert_eq!(
            pod_grace_seconds(&pod("", "Pending", Some(30)), &options),
            0
        );
        assert_eq!(
            pod_grace_seconds(&pod("node-0", "Succeeded", Some(30)), &options),
            0
        );
        assert_eq!(
            pod_grace_seconds(&pod("node-0", "Failed", Some(30)), &options),
            0
        );
    }

    #[test]
    fn only_an_earlier_deadline_replaces_the_current_one() {
        let mut marked = pod("node-0", "Running", Some(30));
        marked["metadata"]["deletionTimestamp"] = json!(crate::meta::rfc3339_after(30));
        assert!(shortens(&marked, 0));
        assert!(shortens(&marked, 5));
        assert!(!shortens(&marked, 60));
    }
}

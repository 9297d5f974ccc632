//! The arithmetic of a Deployment's rolling update (upstream's
//! `NewRSNewReplicas` and `reconcileOldReplicaSets`), on plain counts.

/// What the Deployment controller knows of one ReplicaSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RsCounts {
    /// `spec.replicas`.
    pub spec: i32,
    /// `status.replicas`: the Pods it still has (may lag a scale-down).
    pub status: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

impl RsCounts {
    /// Pods it has or will have: a scale-down only counts once its Pods go,
    /// so a surge never overlaps Pods still on their way out.
    fn pods(&self) -> i32 {
        self.spec.max(self.status)
    }

    /// Available Pods it will keep: a status not yet updated after a
    /// scale-down must not count Pods about to be deleted.
    fn available(&self) -> i32 {
        self.available.min(self.spec)
    }
}

/// The new ReplicaSet's replicas: up by what `max_surge` allows, never past
/// `replicas`.
pub(crate) fn new_rs_replicas(
    replicas: i32,
    max_surge: i32,
    new: RsCounts,
    old: &[RsCounts],
) -> i32 {
    if new.spec >= replicas {
        return replicas;
    }
    let current: i32 = old.iter().chain([&new]).map(RsCounts::pods).sum();
    let max_total = replicas + max_surge;
    if current >= max_total {
        return new.spec;
    }
    new.spec + (max_total - current).min(replicas - new.spec)
}

/// The old ReplicaSets' replicas (same order as `old`, oldest first): first
/// unhealthy Pods go, then available ones down to `replicas -
/// max_unavailable` available in all.
pub(crate) fn old_rs_replicas(
    replicas: i32,
    max_unavailable: i32,
    new: RsCounts,
    old: &[RsCounts],
) -> Vec<i32> {
    let mut targets: Vec<i32> = old.iter().map(|o| o.spec).collect();
    let all_pods: i32 = old.iter().map(|o| o.spec).sum::<i32>() + new.spec;
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.spec - new.available();
    let mut cleanup = all_pods - min_available - new_unavailable;
    if cleanup <= 0 {
        return targets;
    }
    for (target, counts) in targets.iter_mut().zip(old) {
        let unhealthy = (counts.spec - counts.available()).max(0).min(cleanup);
        *target -= unhealthy;
        cleanup -= unhealthy;
    }
    let available: i32 = old
        .iter()
        .zip(&targets)
        .map(|(counts, target)| counts.available().min(*target))
        .sum::<i32>()
        + new.available();
    let mut scale_down = available - min_available;
    for target in targets.iter_mut() {
        if scale_down <= 0 {
            break;
        }
        let step = (*target).min(scale_down);
        *target -= step;
        scale_down -= step;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(spec: i32, status: i32, available: i32) -> RsCounts {
        RsCounts {
            spec,
            status,
            available,
        }
    }

    #[test]
    fn surge_one_unavailable_zero_steps_one_pod_at_a_time() {
        // Start: old has 3, new none; surge 1 → new gets 1.
        assert_eq!(new_rs_replicas(3, 1, rs(0, 0, 0), &[rs(3, 3, 3)]), 1);
        // New not yet available: nothing of the old may go.
        assert_eq!(old_rs_replicas(3, 0, rs(1, 1, 0), &[rs(3, 3, 3)]), vec![3]);
        // New available: one old goes.
        assert_eq!(old_rs_replicas(3, 0, rs(1, 1, 1), &[rs(3, 3, 3)]), vec![2]);
        // Old scaled to 2 but its Pod not gone yet: no surge past 4.
        assert_eq!(new_rs_replicas(3, 1, rs(1, 1, 1), &[rs(2, 3, 3)]), 1);
        assert_eq!(new_rs_replicas(3, 1, rs(1, 1, 1), &[rs(2, 2, 2)]), 2);
        // A stale old status does not let a second old Pod go.
        assert_eq!(old_rs_replicas(3, 0, rs(2, 1, 1), &[rs(2, 3, 3)]), vec![2]);
    }

    #[test]
    fn unavailable_budget_and_unhealthy_pods() {
        assert_eq!(old_rs_replicas(4, 2, rs(0, 0, 0), &[rs(4, 4, 4)]), vec![2]);
        // Unhealthy old Pods go first; then none of the available may go.
        assert_eq!(old_rs_replicas(4, 2, rs(0, 0, 0), &[rs(4, 4, 2)]), vec![2]);
        assert_eq!(old_rs_replicas(4, 1, rs(0, 0, 0), &[rs(4, 4, 2)]), vec![3]);
        // Several old sets: the oldest shrinks first.
        assert_eq!(
            old_rs_replicas(4, 2, rs(0, 0, 0), &[rs(2, 2, 2), rs(2, 2, 2)]),
            vec![0, 2]
        );
        // Scaling without a rollout.
        assert_eq!(new_rs_replicas(5, 1, rs(3, 3, 3), &[]), 5);
        assert_eq!(new_rs_replicas(2, 1, rs(3, 3, 3), &[]), 2);
    }
}

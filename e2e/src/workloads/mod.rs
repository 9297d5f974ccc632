//! Workload controllers for the simulated cluster, in the harness (not the
//! product): what kube-scheduler and kube-controller-manager would do for a
//! chart install, acting only through the Kubernetes API (watches, reads
//! from local stores, writes), so they work against the emulator or any
//! API server. Pod status is the kubelet's: these only read it.
//!
//! See e2e/README.md, "Workload controllers", for what each does and what
//! is simplified.

mod cache;
mod daemon_pod;
mod daemonset;
mod deployment;
mod endpointslice;
mod error;
mod events;
mod expectations;
mod garbage_collector;
mod int_or_percent;
mod nodes;
mod ownership;
mod placement;
mod pod_state;
mod replicaset;
mod rollout;
mod runner;
mod scheduler;
mod slice_contents;
mod template_hash;
mod writes;

use std::sync::Arc;

use kube::Client;
use tokio::task::JoinHandle;

pub use error::WorkloadError;
pub use nodes::register_nodes;

/// The running controllers: scheduler, ReplicaSet, Deployment, DaemonSet,
/// EndpointSlice controllers and the garbage collector. Dropping it stops
/// them all.
pub struct WorkloadControllers {
    tasks: Vec<JoinHandle<()>>,
}

impl WorkloadControllers {
    /// Starts every controller on `client` (inside a tokio runtime). Nodes
    /// are read from the API: see [`register_nodes`].
    pub fn start(client: Client) -> Self {
        let (cache, mut tasks) = cache::Cache::start(&client);
        let c = || (client.clone(), cache.clone());
        tasks.extend([
            spawn("scheduler", &cache, scheduler::Scheduler::new(c().0, c().1)),
            spawn(
                "replicaset",
                &cache,
                replicaset::ReplicaSetController::new(c().0, c().1),
            ),
            spawn(
                "deployment",
                &cache,
                deployment::DeploymentController::new(c().0, c().1),
            ),
            spawn(
                "daemonset",
                &cache,
                daemonset::DaemonSetController::new(c().0, c().1),
            ),
            spawn(
                "endpointslice",
                &cache,
                endpointslice::EndpointSliceController::new(c().0, c().1),
            ),
            spawn(
                "garbagecollector",
                &cache,
                garbage_collector::GarbageCollector::new(c().0, c().1),
            ),
        ]);
        Self { tasks }
    }
}

fn spawn<C: runner::Reconcile>(
    name: &'static str,
    cache: &cache::Cache,
    controller: Arc<C>,
) -> JoinHandle<()> {
    tokio::spawn(runner::run(name, cache.clone(), controller))
}

impl Drop for WorkloadControllers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

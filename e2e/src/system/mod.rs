//! The simulated Kubernetes system a chart is installed on: the simulated
//! cluster's nodes, the API emulator reached from them at its in-cluster
//! address, and (as they are added) the controllers and kubelets that run
//! what the chart creates. See e2e/README.md, "Whole system".

mod api_access;
mod cluster_dns;
mod simulated;

pub use api_access::{in_cluster_api_address, ApiAccess};
pub use cluster_dns::{
    render_hosts, ClusterDns, ClusterDnsError, ServiceAddresses, CLUSTER_DOMAIN,
};
pub use simulated::{Simulated, SystemError};

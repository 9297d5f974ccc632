//! The L2 speaker (`gatehouse-controller speaker`): one per node, it
//! announces load-balancer addresses on the LAN (ARP, NDP) from exactly
//! one node each. Pure decisions (`elect`, `demand`, `decide`,
//! `heartbeat`) apart from the I/O (`view`, `liveness`, `announce`).

pub mod announce;
pub mod decide;
pub mod demand;
pub mod elect;
pub mod heartbeat;
pub mod liveness;
pub mod metrics;
pub mod node;
pub mod packet;
pub mod peers;
pub mod run;
pub mod status;
pub mod view;

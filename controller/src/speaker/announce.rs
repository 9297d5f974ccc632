//! Answers ARP requests and Neighbor Solicitations for the addresses this
//! node announces, and sends gratuitous ARP / unsolicited Neighbor
//! Advertisements when it takes one over.
//!
//! One AF_PACKET socket per interface and protocol, with a classic BPF
//! filter attached before it is bound, so the kernel hands over only ARP
//! requests (or Neighbor Solicitations) and none of the node's other
//! traffic. Sockets come from `socket2` and `pnet_datalink`; no unsafe code
//! of ours. Each socket has a reader thread that answers from the set of
//! announced addresses; nothing is answered for any other address.

use super::metrics as m;
use super::node::NodeName;
use super::packet::{self, Mac, NaDestination, Solicitation};
use pnet_datalink::{linux, Channel, DataLinkSender, NetworkInterface};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
/// When gratuitous packets go out after taking an address over: at once,
/// then again in case the first were lost or a neighbour cache ignored
/// them.
const GRATUITOUS_SCHEDULE_MS: [u64; 5] = [0, 200, 500, 1000, 2000];
/// How long a reader blocks before it checks whether to stop.
const READ_TIMEOUT: Duration = Duration::from_millis(250);

/// Announced addresses and the interfaces each is announced on (empty:
/// every interface).
type Owned = BTreeMap<IpAddr, Vec<String>>;

/// The raw-socket side of the speaker.
#[derive(Clone)]
pub struct Announcer {
    shared: Arc<Shared>,
}

struct Shared {
    me: NodeName,
    owned: RwLock<Owned>,
    ports: Mutex<BTreeMap<String, Arc<Port>>>,
}

/// One interface: its sockets' sender, its addresses, its readers.
struct Port {
    name: String,
    index: u32,
    mac: Mac,
    link_local: Option<Ipv6Addr>,
    has_ipv4: bool,
    sender: Mutex<Box<dyn DataLinkSender>>,
    /// Joins the solicited-node multicast groups of announced IPv6
    /// addresses, so that the interface accepts their solicitations.
    multicast: Option<Socket>,
    stop: Arc<AtomicBool>,
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Announcer {
    pub fn new(me: NodeName) -> Self {
        Announcer {
            shared: Arc::new(Shared {
                me,
                owned: RwLock::default(),
                ports: Mutex::default(),
            }),
        }
    }

    /// Opens sockets on interfaces that appeared and closes those of
    /// interfaces that went away or down. Call at start and periodically.
    pub fn refresh_interfaces(&self) {
        let present: Vec<NetworkInterface> = pnet_datalink::interfaces()
            .into_iter()
            .filter(|i| i.is_up() && !i.is_loopback())
            .filter(|i| i.mac.is_some_and(|m| m.octets() != [0; 6]))
            .collect();
        let names: BTreeSet<&str> = present.iter().map(|i| i.name.as_str()).collect();
        let mut ports = self
            .shared
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ports.retain(|name, _| {
            let keep = names.contains(name.as_str());
            if !keep {
                tracing::info!(interface = %name, "speaker: interface gone or down; its sockets are closed");
            }
            keep
        });
        for interface in present {
            if ports.contains_key(&interface.name) {
                continue;
            }
            match open_port(&self.shared, &interface) {
                Ok(port) => {
                    tracing::info!(interface = %port.name, mac = %port.mac, "speaker: answering ARP and NDP on interface");
                    ports.insert(port.name.clone(), port);
                }
                Err(e) => {
                    metrics::counter!(m::INTERFACE_ERRORS, "interface" => interface.name.clone())
                        .increment(1);
                    tracing::warn!(interface = %interface.name, "speaker: cannot open raw sockets (needs CAP_NET_RAW): {e}");
                }
            }
        }
    }

    /// Starts announcing `address` on `interfaces` (all when empty).
    pub fn take(&self, address: IpAddr, interfaces: Vec<String>) {
        self.shared
            .owned
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(address, interfaces);
        if let IpAddr::V6(v6) = address {
            for port in self.ports_for(address) {
                port.join(v6, true);
            }
        }
        let announcer = self.clone();
        tokio::spawn(async move {
            let mut waited = 0;
            for at in GRATUITOUS_SCHEDULE_MS {
                tokio::time::sleep(Duration::from_millis(at - waited)).await;
                waited = at;
                if !announcer.owns(address) {
                    return;
                }
                announcer.send_gratuitous(address);
            }
        });
    }

    /// Stops announcing `address`: from now on its requests go unanswered.
    pub fn release(&self, address: IpAddr) {
        let ports = self.ports_for(address);
        self.shared
            .owned
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&address);
        if let IpAddr::V6(v6) = address {
            for port in ports {
                port.join(v6, false);
            }
        }
    }

    pub fn owns(&self, address: IpAddr) -> bool {
        self.shared
            .owned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&address)
    }

    fn ports_for(&self, address: IpAddr) -> Vec<Arc<Port>> {
        let owned = self
            .shared
            .owned
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let interfaces = owned.get(&address).cloned().unwrap_or_default();
        drop(owned);
        self.shared
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|p| interfaces.is_empty() || interfaces.contains(&p.name))
            .cloned()
            .collect()
    }

    fn send_gratuitous(&self, address: IpAddr) {
        for port in self.ports_for(address) {
            let frame = match address {
                IpAddr::V4(v4) if port.has_ipv4 => packet::gratuitous_arp(port.mac, v4),
                IpAddr::V4(_) => continue,
                IpAddr::V6(v6) => packet::neighbor_advertisement(
                    port.mac,
                    port.link_local.unwrap_or(v6),
                    v6,
                    NaDestination::AllNodes,
                ),
            };
            if port.send(&frame) {
                metrics::counter!(m::GRATUITOUS, "node" => self.shared.me.to_string(), "address" => address.to_string(), "interface" => port.name.clone()).increment(1);
            }
        }
    }
}

impl Shared {
    /// Whether `address` is announced on `interface`.
    fn answers(&self, address: IpAddr, interface: &str) -> bool {
        self.owned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&address)
            .is_some_and(|on| on.is_empty() || on.iter().any(|i| i == interface))
    }
}

impl Port {
    fn send(&self, frame: &[u8]) -> bool {
        let mut sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        match sender.send_to(frame, None) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                metrics::counter!(m::INTERFACE_ERRORS, "interface" => self.name.clone())
                    .increment(1);
                tracing::warn!(interface = %self.name, "speaker: sending a frame failed: {e}");
                false
            }
            None => false,
        }
    }

    fn join(&self, address: Ipv6Addr, join: bool) {
        let Some(socket) = &self.multicast else {
            return;
        };
        let group = packet::solicited_node_multicast(address);
        let result = if join {
            socket.join_multicast_v6(&group, self.index)
        } else {
            socket.leave_multicast_v6(&group, self.index)
        };
        if let Err(e) = result {
            // Several addresses can share a group: joining twice or
            // leaving a group another address still needs is harmless
            // here, as readers also see frames the interface accepts.
            tracing::debug!(interface = %self.name, %group, join, "speaker: multicast membership: {e}");
        }
    }
}

fn open_port(shared: &Arc<Shared>, interface: &NetworkInterface) -> io::Result<Arc<Port>> {
    let mac = Mac(interface.mac.map(|m| m.octets()).unwrap_or_default());
    let (arp_sender, arp_receiver) = filtered_channel(interface, ETH_P_ARP, packet::arp_filter())?;
    let (_, ns_receiver) = filtered_channel(
        interface,
        ETH_P_IPV6,
        packet::neighbor_solicitation_filter(),
    )?;
    let link_local = interface.ips.iter().find_map(|net| match net.ip() {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(v6),
        _ => None,
    });
    let multicast = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).ok();
    let stop = Arc::new(AtomicBool::new(false));
    let port = Arc::new(Port {
        name: interface.name.clone(),
        index: interface.index,
        mac,
        link_local,
        has_ipv4: interface.ips.iter().any(|n| n.is_ipv4()),
        sender: Mutex::new(arp_sender),
        multicast,
        stop: stop.clone(),
    });
    for receiver in [arp_receiver, ns_receiver] {
        let shared = shared.clone();
        let weak = Arc::downgrade(&port);
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("speaker-{}", interface.name))
            .spawn(move || read_loop(receiver, &shared, &weak, &stop))?;
    }
    Ok(port)
}

/// A channel on `interface` whose socket only ever receives what `filter`
/// accepts of `protocol`.
fn filtered_channel(
    interface: &NetworkInterface,
    protocol: u16,
    filter: Vec<socket2::SockFilter>,
) -> io::Result<(
    Box<dyn DataLinkSender>,
    Box<dyn pnet_datalink::DataLinkReceiver>,
)> {
    let socket = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(protocol.to_be()))),
    )?;
    // Before the bind, so that no unfiltered frame is ever queued.
    socket.attach_filter(&filter)?;
    let config = linux::Config {
        read_timeout: Some(READ_TIMEOUT),
        write_timeout: Some(Duration::from_millis(100)),
        promiscuous: false,
        socket_fd: Some(socket.into_raw_fd()),
        read_buffer_size: 2048,
        write_buffer_size: 2048,
        ..linux::Config::default()
    };
    match linux::channel(interface, config)? {
        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
        _ => Err(io::Error::other("not an Ethernet channel")),
    }
}

fn read_loop(
    mut receiver: Box<dyn pnet_datalink::DataLinkReceiver>,
    shared: &Shared,
    port: &std::sync::Weak<Port>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        let frame = match receiver.next() {
            Ok(frame) => frame,
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                continue
            }
            Err(e) => {
                if let Some(port) = port.upgrade() {
                    metrics::counter!(m::INTERFACE_ERRORS, "interface" => port.name.clone())
                        .increment(1);
                    tracing::warn!(interface = %port.name, "speaker: reading failed: {e}");
                }
                std::thread::sleep(READ_TIMEOUT);
                continue;
            }
        };
        let Some(port) = port.upgrade() else { return };
        match packet::parse_solicitation(frame) {
            Ok(Some(Solicitation::Arp(request))) => {
                if shared.answers(IpAddr::V4(request.target_ip), &port.name)
                    && port.send(&packet::arp_reply(port.mac, &request))
                {
                    metrics::counter!(m::REPLIES, "node" => shared.me.to_string(), "kind" => "arp", "interface" => port.name.clone()).increment(1);
                }
            }
            Ok(Some(Solicitation::Neighbor(ns))) => {
                if shared.answers(IpAddr::V6(ns.target), &port.name) {
                    let to = NaDestination::Solicited {
                        mac: ns.source_link_addr.unwrap_or(ns.source_mac),
                        ip: ns.source_ip,
                    };
                    let frame = packet::neighbor_advertisement(
                        port.mac,
                        port.link_local.unwrap_or(ns.target),
                        ns.target,
                        to,
                    );
                    if port.send(&frame) {
                        metrics::counter!(m::REPLIES, "node" => shared.me.to_string(), "kind" => "ndp", "interface" => port.name.clone()).increment(1);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                metrics::counter!(m::FRAMES_REFUSED, "interface" => port.name.clone()).increment(1);
                tracing::debug!(interface = %port.name, "speaker: dropped a malformed frame: {e}");
            }
        }
    }
}

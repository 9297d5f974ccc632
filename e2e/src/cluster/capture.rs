//! A packet capture on the LAN bridge: every ARP frame and ICMPv6 Neighbor
//! Advertisement that crosses `br0`, timestamped, so that tests can ask who
//! claimed a load-balancer IP, when, and whether two nodes ever claimed it
//! at once.
//!
//! The capture is an AF_PACKET socket (pnet_datalink, Layer 2) bound to the
//! bridge inside the LAN namespace. The socket asks for promiscuous mode,
//! which makes the bridge hand it every frame it forwards between ports,
//! unicast ARP replies included, not only broadcasts. A background thread
//! reads it with a short timeout; dropping the capture stops and joins it.

use super::error::{ClusterError, Result};
use super::frames::{self, ArpOp, LanFrame, Mac};
use super::lan::BRIDGE;
use super::netns::Netns;
use super::Cluster;
use pnet_datalink::{Channel, ChannelType, Config, DataLinkReceiver};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one read waits before the reader looks at its stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(20);
/// How often [`LanCapture::wait_until`] looks again.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// One frame the capture kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Position in the capture, from 0, never reused (also not by `clear`).
    pub seq: u64,
    /// When the reader got it (monotonic).
    pub at: Instant,
    pub frame: LanFrame,
}

/// How a frame claimed an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnnouncementKind {
    /// An ARP reply to someone's request.
    ArpReply,
    /// An ARP request with the same sender and target IP.
    GratuitousArpRequest,
    /// An ARP reply with the same sender and target IP.
    GratuitousArpReply,
    /// An ICMPv6 Neighbor Advertisement for the IP (solicited or not).
    NeighborAdvertisement { solicited: bool },
}

/// A frame that says "`ip` is at `mac`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub seq: u64,
    pub at: Instant,
    /// The MAC claimed: the ARP sender hardware address, or the
    /// advertisement's target link-layer address (else its Ethernet source).
    pub mac: Mac,
    /// The frame's Ethernet source (normally the same as `mac`).
    pub eth_src: Mac,
    pub kind: AnnouncementKind,
}

/// Two MACs claiming one IP at once: `older` announced before `newer`
/// first did, and announced again at `older_again_at`, after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    pub newer: Mac,
    pub newer_first_at: Instant,
    pub older: Mac,
    pub older_again_at: Instant,
}

impl Overlap {
    /// How long after the newcomer's first announcement the older one spoke.
    pub fn after(&self) -> Duration {
        self.older_again_at.duration_since(self.newer_first_at)
    }
}

/// Where a capture stood at one moment; see [`LanCapture::since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaptureMark(u64);

/// Frames a capture kept, in the order they were seen, to look at.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    frames: Vec<Seen>,
}

impl Captured {
    pub fn frames(&self) -> &[Seen] {
        &self.frames
    }

    /// Replies and gratuitous ARP/NA frames that claim `ip`, in order.
    /// Plain ARP requests from `ip` are not counted: they ask, they do not
    /// answer.
    pub fn announcements(&self, ip: impl Into<IpAddr>) -> Vec<Announcement> {
        let ip = ip.into();
        self.frames
            .iter()
            .filter_map(|seen| announcement(seen, ip))
            .collect()
    }

    /// Every MAC that claimed `ip`.
    pub fn announcers(&self, ip: impl Into<IpAddr>) -> BTreeSet<Mac> {
        self.announcements(ip).into_iter().map(|a| a.mac).collect()
    }

    /// The first moment two MACs claimed `ip`: after a MAC's first
    /// announcement, an announcement by a MAC that had announced before it.
    /// Within one window a failback (A, then B, then A again) counts too:
    /// look at one failover at a time with [`LanCapture::since`].
    pub fn overlap(&self, ip: impl Into<IpAddr>) -> Option<Overlap> {
        // MACs in the order of their first announcement.
        let mut firsts: Vec<(Mac, Instant)> = Vec::new();
        for a in self.announcements(ip) {
            match firsts.iter().position(|(mac, _)| *mac == a.mac) {
                None => firsts.push((a.mac, a.at)),
                Some(position) => {
                    if let Some(&(newer, newer_first_at)) = firsts[position + 1..].last() {
                        return Some(Overlap {
                            newer,
                            newer_first_at,
                            older: a.mac,
                            older_again_at: a.at,
                        });
                    }
                }
            }
        }
        None
    }

    /// One line per frame, for failure messages.
    pub fn describe(&self) -> String {
        let Some(first) = self.frames.first() else {
            return "(no ARP or neighbor advertisement frames)".to_owned();
        };
        let mut text = String::new();
        for seen in &self.frames {
            let ms = seen.at.duration_since(first.at).as_secs_f64() * 1000.0;
            let _ = match seen.frame {
                LanFrame::Arp(arp) => writeln!(
                    text,
                    "#{} +{ms:.1}ms ARP {:?} eth {} -> {}: {} is at {}, for {} ({})",
                    seen.seq,
                    arp.op,
                    arp.eth_src,
                    arp.eth_dst,
                    arp.sender_ip,
                    arp.sender_mac,
                    arp.target_ip,
                    arp.target_mac
                ),
                LanFrame::NeighborAdvertisement(na) => writeln!(
                    text,
                    "#{} +{ms:.1}ms NA eth {} -> {}: {} is at {:?} (S={} O={})",
                    seen.seq,
                    na.eth_src,
                    na.eth_dst,
                    na.target,
                    na.target_mac,
                    na.solicited,
                    na.override_flag
                ),
            };
        }
        text
    }
}

fn announcement(seen: &Seen, ip: IpAddr) -> Option<Announcement> {
    let (mac, eth_src, kind) = match seen.frame {
        LanFrame::Arp(arp) => {
            if arp.claim().map(IpAddr::V4) != Some(ip) {
                return None;
            }
            let kind = match (arp.op, arp.is_gratuitous()) {
                (ArpOp::Reply, false) => AnnouncementKind::ArpReply,
                (ArpOp::Reply, true) => AnnouncementKind::GratuitousArpReply,
                (ArpOp::Request, _) => AnnouncementKind::GratuitousArpRequest,
            };
            (arp.sender_mac, arp.eth_src, kind)
        }
        LanFrame::NeighborAdvertisement(na) => {
            if IpAddr::V6(na.target) != ip {
                return None;
            }
            let kind = AnnouncementKind::NeighborAdvertisement {
                solicited: na.solicited,
            };
            (na.claimed_mac(), na.eth_src, kind)
        }
    };
    Some(Announcement {
        seq: seen.seq,
        at: seen.at,
        mac,
        eth_src,
        kind,
    })
}

#[derive(Debug, Default)]
struct Shared {
    frames: Vec<Seen>,
    next_seq: u64,
    /// Why the reader stopped early, if it did.
    failure: Option<String>,
}

/// A running capture; stops when dropped.
#[derive(Debug)]
pub struct LanCapture {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    /// `namespace/interface`, for messages.
    place: String,
}

impl LanCapture {
    /// Captures on the cluster's LAN bridge.
    pub fn start(cluster: &Cluster) -> Result<Self> {
        Self::start_on(cluster.lan(), BRIDGE)
    }

    /// Captures on `interface` inside `netns`. Frames are kept from the
    /// moment this returns.
    pub fn start_on(netns: &Netns, interface: &str) -> Result<Self> {
        let place = format!("{}/{interface}", netns.name());
        let receiver = open_receiver(netns, interface)?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = std::thread::Builder::new()
            .name(format!("capture {interface}"))
            .spawn({
                let shared = shared.clone();
                let stop = stop.clone();
                move || read_frames(receiver, &shared, &stop)
            })
            .map_err(|e| ClusterError::io(format!("starting the capture on {place}"), e))?;
        Ok(Self {
            shared,
            stop,
            reader: Some(reader),
            place,
        })
    }

    /// Everything kept so far (since the start or the last `clear`).
    pub fn snapshot(&self) -> Captured {
        Captured {
            frames: self.lock().frames.clone(),
        }
    }

    /// The current position: [`since`](Self::since) with it shows only
    /// frames seen afterwards.
    pub fn mark(&self) -> CaptureMark {
        CaptureMark(self.lock().next_seq)
    }

    /// Frames seen after `mark` was taken.
    pub fn since(&self, mark: CaptureMark) -> Captured {
        Captured {
            frames: self
                .lock()
                .frames
                .iter()
                .filter(|seen| seen.seq >= mark.0)
                .copied()
                .collect(),
        }
    }

    /// Forgets every frame kept so far.
    pub fn clear(&self) {
        self.lock().frames.clear();
    }

    /// `snapshot().announcements(ip)`.
    pub fn announcements(&self, ip: impl Into<IpAddr>) -> Vec<Announcement> {
        self.snapshot().announcements(ip)
    }

    /// `snapshot().announcers(ip)`.
    pub fn announcers(&self, ip: impl Into<IpAddr>) -> BTreeSet<Mac> {
        self.snapshot().announcers(ip)
    }

    /// `snapshot().overlap(ip)`.
    pub fn overlap(&self, ip: impl Into<IpAddr>) -> Option<Overlap> {
        self.snapshot().overlap(ip)
    }

    /// Waits until `ready` holds for the frames seen since `mark`, and
    /// returns them; a timeout error lists what was seen. Fails at once if
    /// the reader stopped on an error.
    pub fn wait_until(
        &self,
        mark: CaptureMark,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&Captured) -> bool,
    ) -> Result<Captured> {
        let deadline = Instant::now() + timeout;
        loop {
            let captured = self.since(mark);
            if ready(&captured) {
                return Ok(captured);
            }
            if let Some(failure) = self.lock().failure.clone() {
                return Err(ClusterError::Invalid(format!(
                    "the capture on {} stopped: {failure}",
                    self.place
                )));
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("{what} (capture on {})", self.place),
                    after: timeout,
                    output: captured.describe(),
                });
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// Waits for an announcement of `ip` by `mac` after `mark`.
    pub fn wait_for_announcement(
        &self,
        mark: CaptureMark,
        ip: impl Into<IpAddr>,
        mac: Mac,
        timeout: Duration,
    ) -> Result<Announcement> {
        let ip = ip.into();
        let captured = self.wait_until(
            mark,
            &format!("an announcement of {ip} by {mac}"),
            timeout,
            |c| c.announcements(ip).iter().any(|a| a.mac == mac),
        )?;
        captured
            .announcements(ip)
            .into_iter()
            .find(|a| a.mac == mac)
            .ok_or_else(|| ClusterError::Invalid(format!("announcement of {ip} by {mac} vanished")))
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

impl Drop for LanCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            if reader.join().is_err() {
                eprintln!("gatehouse-e2e: the capture on {} panicked", self.place);
            }
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A Layer-2 channel: its two halves and the interface it is bound to.
pub(crate) struct PacketChannel {
    pub tx: Box<dyn pnet_datalink::DataLinkSender>,
    pub rx: Box<dyn DataLinkReceiver>,
    pub interface: pnet_datalink::NetworkInterface,
}

/// A Layer-2 channel on `interface`, its socket created inside `netns`.
pub(crate) fn open_channel(
    netns: &Netns,
    interface: &str,
    read_timeout: Duration,
) -> Result<PacketChannel> {
    let place = format!("{}/{interface}", netns.name());
    netns.run_inside(|| {
        // Interfaces as this thread's namespace has them.
        let found = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| {
                ClusterError::Invalid(format!("no interface {interface} in {}", netns.name()))
            })?;
        let config = Config {
            channel_type: ChannelType::Layer2,
            read_timeout: Some(read_timeout),
            write_timeout: Some(Duration::from_secs(1)),
            // Frames on a veth may be GRO-merged well past the MTU.
            read_buffer_size: 65_536,
            promiscuous: true,
            ..Config::default()
        };
        match pnet_datalink::linux::channel(&found, (&config).into()) {
            Ok(Channel::Ethernet(tx, rx)) => Ok(PacketChannel {
                tx,
                rx,
                interface: found,
            }),
            Ok(_) => Err(ClusterError::Invalid(format!(
                "{place}: pnet gave a channel that is not Ethernet"
            ))),
            Err(e) => Err(ClusterError::io(
                format!("opening a packet socket on {place}"),
                e,
            )),
        }
    })?
}

fn open_receiver(netns: &Netns, interface: &str) -> Result<Box<dyn DataLinkReceiver>> {
    open_channel(netns, interface, READ_TIMEOUT).map(|channel| channel.rx)
}

fn read_frames(mut receiver: Box<dyn DataLinkReceiver>, shared: &Mutex<Shared>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match receiver.next() {
            Ok(bytes) => {
                let at = Instant::now();
                if let Some(frame) = frames::parse(bytes) {
                    let mut shared = lock(shared);
                    let seq = shared.next_seq;
                    shared.next_seq += 1;
                    shared.frames.push(Seen { seq, at, frame });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                lock(shared).failure = Some(e.to_string());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::frames::{ArpFrame, NeighborAdvertisement};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 0xb]);
    const C: Mac = Mac([2, 0, 0, 0, 0, 0xc]);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 200);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 2);

    fn reply(mac: Mac) -> LanFrame {
        LanFrame::Arp(ArpFrame {
            eth_src: mac,
            eth_dst: Mac::BROADCAST,
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: VIP,
            target_mac: Mac::ZERO,
            target_ip: CLIENT,
        })
    }

    fn garp(mac: Mac) -> LanFrame {
        LanFrame::Arp(ArpFrame {
            op: ArpOp::Request,
            target_ip: VIP,
            ..match reply(mac) {
                LanFrame::Arp(arp) => arp,
                LanFrame::NeighborAdvertisement(_) => unreachable!(),
            }
        })
    }

    fn question(mac: Mac) -> LanFrame {
        LanFrame::Arp(ArpFrame {
            eth_src: mac,
            eth_dst: Mac::BROADCAST,
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: VIP,
            target_mac: Mac::ZERO,
            target_ip: CLIENT,
        })
    }

    fn captured(frames: &[LanFrame]) -> Captured {
        let start = Instant::now();
        Captured {
            frames: frames
                .iter()
                .zip(0u64..)
                .map(|(frame, seq)| Seen {
                    seq,
                    at: start + Duration::from_millis(seq * 10),
                    frame: *frame,
                })
                .collect(),
        }
    }

    #[test]
    fn announcements_are_claims_for_the_ip() {
        let c = captured(&[question(A), reply(A), garp(B), question(C)]);
        let kinds: Vec<_> = c
            .announcements(VIP)
            .iter()
            .map(|a| (a.mac, a.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (A, AnnouncementKind::ArpReply),
                (B, AnnouncementKind::GratuitousArpRequest)
            ]
        );
        assert_eq!(c.announcers(VIP), BTreeSet::from([A, B]));
        assert!(c.announcers(CLIENT).is_empty());
    }

    #[test]
    fn a_clean_takeover_has_no_overlap() {
        let c = captured(&[reply(A), reply(A), garp(B), reply(B), question(A)]);
        assert_eq!(c.overlap(VIP), None);
    }

    #[test]
    fn an_old_announcer_speaking_after_the_takeover_overlaps() {
        let c = captured(&[reply(A), garp(B), reply(B), reply(A)]);
        let Some(overlap) = c.overlap(VIP) else {
            panic!("no overlap in {}", c.describe());
        };
        assert_eq!((overlap.older, overlap.newer), (A, B));
        assert_eq!(overlap.after(), Duration::from_millis(20));
        // The newest newcomer is the one overlapped.
        let c = captured(&[reply(A), garp(B), garp(C), reply(B)]);
        let overlap = c.overlap(VIP).map(|o| (o.older, o.newer));
        assert_eq!(overlap, Some((B, C)));
    }

    #[test]
    fn neighbor_advertisements_count_for_ipv6() {
        let target = Ipv6Addr::new(0xfd67, 0x6768, 0, 1, 0, 0, 0, 0xc8);
        let na = LanFrame::NeighborAdvertisement(NeighborAdvertisement {
            eth_src: A,
            eth_dst: Mac::BROADCAST,
            source: target,
            destination: target,
            router: false,
            solicited: false,
            override_flag: true,
            target,
            target_mac: Some(B),
        });
        let c = captured(&[na, reply(C)]);
        let announcements = c.announcements(target);
        assert_eq!(announcements.len(), 1);
        assert_eq!((announcements[0].mac, announcements[0].eth_src), (B, A));
        assert_eq!(c.announcers(VIP), BTreeSet::from([C]));
    }
}

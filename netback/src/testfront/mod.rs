//! A frontend over [`xen::sim`] that behaves like Linux `xen-netfront`, for tests and benchmarks,
//! plus the toolstack's part of creating a vif ([`toolstack_add_vif`]).
//!
//! Like Linux it waits for the backend's InitWait, grants its own ring pages, allocates an unbound
//! event channel, writes `tx-ring-ref`, `rx-ring-ref`, `event-channel`, `request-rx-copy`,
//! `feature-rx-notify`, `feature-sg` (and with [`FrontOptions::gso`] `feature-gso-tcpv4`/`-tcpv6`,
//! `feature-ipv6-csum-offload`) in one transaction and goes straight to Connected (skipping
//! Initialised). It keeps its RX ring full of granted pages (a response's buffer is the one posted
//! at its ring position, extra-info slots included), splits frames over pages with `more_data`,
//! sends TCP segments of up to 64 KiB with a GSO extra when TSO is on, and can leave TCP/UDP
//! checksums blank (`csum_blank`) as an offloading guest does. Its rings are public so that
//! hostile tests can write arbitrary requests. `device` makes it a smoltcp `Device`, `toolstack`
//! writes a vif's xenstore directories as libxl does.

use std::collections::VecDeque;

use xen::sim::{GuestPage, SimEventChannel, SimXen};
use xen::xenstore::Xenstore;
use xen::{DomId, EventChannel, GrantRef, Port};

use crate::offload::TcpFrame;
use crate::ring::{RxFrontRing, SimGuestRing, TxFrontRing};
use crate::wire::*;

mod device;
mod toolstack;

pub use device::{FrontRxToken, FrontTxToken};
pub use toolstack::toolstack_add_vif;

/// How the test frontend behaves.
#[derive(Clone, Copy, Debug)]
pub struct FrontOptions {
    /// Send TCP/UDP frames with a blank checksum and `NETTXF_csum_blank` (checksum offload).
    pub csum_blank: bool,
    /// Offer `feature-sg` (multi-slot frames both ways).
    pub sg: bool,
    /// Offer `feature-gso-tcpv4`/`-tcpv6` and `feature-ipv6-csum-offload` as Linux netfront
    /// does (TCP segments of up to 64 KiB both ways, if the backend offers them too).
    pub gso: bool,
}

impl Default for FrontOptions {
    fn default() -> Self {
        FrontOptions {
            csum_blank: false,
            sg: true,
            gso: false,
        }
    }
}

/// The frontend's rings and buffers once connected.
pub struct FrontRings {
    /// TX ring (we produce requests).
    pub tx: TxFrontRing<SimGuestRing>,
    /// RX ring.
    pub rx: RxFrontRing<SimGuestRing>,
    /// Our event-channel port.
    pub port: Port,
    /// One granted page per TX id.
    pub tx_pages: Vec<(GuestPage, GrantRef)>,
    tx_free: Vec<u16>,
    /// One granted page per RX id.
    pub rx_pages: Vec<(GuestPage, GrantRef)>,
    rx_partial: Vec<u8>,
    rx_partial_bad: bool,
    /// Flags of the current packet's first response.
    rx_first_flags: Option<u16>,
    /// An extra-info segment is expected in the next response.
    rx_extra_next: bool,
    /// GSO sizes of the received frames with a GSO extra, oldest first.
    rx_gso_sizes: VecDeque<u16>,
    /// The backend offered GSO and we asked for it.
    gso: bool,
}

/// Counters of the test frontend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrontStats {
    /// TX slots answered OKAY.
    pub tx_ok: u64,
    /// TX slots answered with an error.
    pub tx_errors: u64,
    /// TX slots answered NULL (extra-info slots).
    pub tx_null: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// RX responses with an error status.
    pub rx_errors: u64,
    /// Event-channel notifications received from the backend.
    pub events: u64,
    /// Frames received with a GSO extra.
    pub rx_gso: u64,
    /// Frames received with `NETRXF_csum_blank` (partial checksums, completed for our stack).
    pub rx_csum_blank: u64,
    /// Length of the longest frame received.
    pub rx_largest: u64,
}

/// A Linux-netfront-like frontend of guest `domid`.
pub struct TestFront {
    domid: DomId,
    backend: DomId,
    path: String,
    be_path: String,
    xs: Xenstore,
    ev: SimEventChannel,
    opts: FrontOptions,
    /// The rings, once connected (public for hostile tests).
    pub rings: Option<FrontRings>,
    backend_state: Option<XenbusState>,
    /// Received frames, and whether their L4 checksum is partial (`NETRXF_csum_blank`).
    received: VecDeque<(Vec<u8>, bool)>,
    mtu: usize,
    /// Counters.
    pub stats: FrontStats,
}

impl TestFront {
    /// Probes vif `handle` of guest `domid` (whose directory the toolstack wrote): reads the
    /// backend path, watches the backend state, and sets our state to Initialising.
    pub fn new(sim: &SimXen, domid: DomId, handle: u32, opts: FrontOptions) -> xen::Result<Self> {
        let xs = sim.connect_xenstore(domid)?;
        let path = format!("/local/domain/{domid}/device/vif/{handle}");
        let be_path = xs.read_string(&format!("{path}/backend"))?;
        let backend: DomId = xs
            .read_string(&format!("{path}/backend-id"))?
            .parse()
            .map_err(|_| xen::Error::Protocol("backend-id".into()))?;
        let mtu = xs
            .read_string(&format!("{path}/mtu"))?
            .parse()
            .unwrap_or(1500);
        xs.write(&format!("{path}/state"), XenbusState::Initialising.as_str())?;
        xs.watch(&format!("{be_path}/state"), "front")?;
        let ev = sim.event_channel(domid)?;
        Ok(TestFront {
            domid,
            backend,
            path,
            be_path,
            xs,
            ev,
            opts,
            rings: None,
            backend_state: None,
            received: VecDeque::new(),
            mtu,
            stats: FrontStats::default(),
        })
    }

    /// The backend's last seen state.
    pub fn backend_state(&self) -> Option<XenbusState> {
        self.backend_state
    }

    /// Whether the backend is Connected and our rings are up.
    pub fn is_up(&self) -> bool {
        self.rings.is_some() && self.backend_state == Some(XenbusState::Connected)
    }

    /// Our xenstore connection (hostile tests write bad keys through it).
    pub fn xenstore(&self) -> &Xenstore {
        &self.xs
    }

    /// Our device directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sends an event to the backend.
    pub fn notify(&self) -> xen::Result<()> {
        match &self.rings {
            Some(r) => self.ev.notify(r.port),
            None => Ok(()),
        }
    }

    /// Starts a clean shutdown (Linux `xennet_remove`): state Closing; [`TestFront::poll`]
    /// finishes with Closed once the backend closed too.
    pub fn close(&mut self) -> xen::Result<()> {
        self.xs.write(
            &format!("{}/state", self.path),
            XenbusState::Closing.as_str(),
        )
    }

    /// Handles xenstore changes (handshake) and ring responses; call in the main loop.
    pub fn poll(&mut self, sim: &SimXen) -> xen::Result<()> {
        let mut changed = self.backend_state.is_none();
        while self.xs.try_next_watch_event()?.is_some() {
            changed = true;
        }
        if changed {
            let s = self.xs.try_read(&format!("{}/state", self.be_path))?;
            self.backend_state = s.and_then(|v| XenbusState::parse(&String::from_utf8_lossy(&v)));
            let ours = self
                .xs
                .try_read(&format!("{}/state", self.path))?
                .and_then(|v| XenbusState::parse(&String::from_utf8_lossy(&v)));
            match self.backend_state {
                Some(XenbusState::InitWait) if ours == Some(XenbusState::Initialising) => {
                    self.connect(sim)?
                }
                Some(XenbusState::Closing) | Some(XenbusState::Closed)
                    if ours != Some(XenbusState::Closed) =>
                {
                    // Linux netfront: the backend went away; close our end.
                    self.rings = None;
                    self.xs.write(
                        &format!("{}/state", self.path),
                        XenbusState::Closed.as_str(),
                    )?;
                }
                _ => {}
            }
        }
        let mut ports = Vec::new();
        self.ev.pending(&mut ports)?;
        for p in ports {
            self.stats.events += 1;
            self.ev.unmask(p)?;
        }
        self.process_responses()
    }

    fn connect(&mut self, sim: &SimXen) -> xen::Result<()> {
        let feature = |k: &str| -> xen::Result<bool> {
            Ok(self
                .xs
                .try_read(&format!("{}/{k}", self.be_path))?
                .as_deref()
                == Some(b"1"))
        };
        if !feature("feature-rx-copy")? {
            return Err(xen::Error::Protocol("backend lacks feature-rx-copy".into()));
        }
        let sg = self.opts.sg && feature("feature-sg")?;
        let gso = sg && self.opts.gso && feature("feature-gso-tcpv4")?;
        let page = |sim: &SimXen| -> xen::Result<(GuestPage, GrantRef)> {
            let p = sim.alloc_page(self.domid)?;
            let g = sim.grant_access(self.domid, &p, self.backend, false)?;
            Ok((p, g))
        };
        let (txp, tx_ref) = page(sim)?;
        let (rxp, rx_ref) = page(sim)?;
        let ring_err = |e: crate::ring::RingError| xen::Error::Protocol(e.to_string());
        let tx = TxFrontRing::init(SimGuestRing(txp)).map_err(ring_err)?;
        let mut rx = RxFrontRing::init(SimGuestRing(rxp)).map_err(ring_err)?;
        let port = self.ev.alloc_unbound(self.backend)?;
        let tx_pages = (0..TX_RING_SIZE)
            .map(|_| page(sim))
            .collect::<xen::Result<Vec<_>>>()?;
        let rx_pages = (0..RX_RING_SIZE)
            .map(|_| page(sim))
            .collect::<xen::Result<Vec<_>>>()?;
        for (id, (_, gref)) in rx_pages.iter().enumerate() {
            rx.put_request(
                RxRequest {
                    id: id as u16,
                    gref: *gref,
                }
                .to_words(),
            );
        }
        rx.push_requests_and_check_notify();
        let path = self.path.clone();
        let opts = self.opts;
        self.xs.transaction(|t| {
            t.write(&format!("{path}/tx-ring-ref"), tx_ref.to_string())?;
            t.write(&format!("{path}/rx-ring-ref"), rx_ref.to_string())?;
            t.write(&format!("{path}/event-channel"), port.to_string())?;
            t.write(&format!("{path}/request-rx-copy"), "1")?;
            t.write(&format!("{path}/feature-rx-notify"), "1")?;
            t.write(&format!("{path}/feature-sg"), if sg { "1" } else { "0" })?;
            if opts.gso {
                for k in [
                    "feature-gso-tcpv4",
                    "feature-gso-tcpv6",
                    "feature-ipv6-csum-offload",
                ] {
                    t.write(&format!("{path}/{k}"), "1")?;
                }
            }
            t.write(&format!("{path}/state"), XenbusState::Connected.as_str())
        })?;
        self.rings = Some(FrontRings {
            tx,
            rx,
            port,
            tx_pages,
            tx_free: (0..TX_RING_SIZE as u16).rev().collect(),
            rx_pages,
            rx_partial: Vec::new(),
            rx_partial_bad: false,
            rx_first_flags: None,
            rx_extra_next: false,
            rx_gso_sizes: VecDeque::new(),
            gso,
        });
        Ok(())
    }

    fn process_responses(&mut self) -> xen::Result<()> {
        let Some(r) = self.rings.as_mut() else {
            return Ok(());
        };
        loop {
            while r.tx.unconsumed_responses() > 0 {
                let rsp = TxResponse::from_word(r.tx.take_response()[0]);
                match rsp.status {
                    NETIF_RSP_NULL => self.stats.tx_null += 1,
                    s => {
                        if s == NETIF_RSP_OKAY {
                            self.stats.tx_ok += 1;
                        } else {
                            self.stats.tx_errors += 1;
                        }
                        if usize::from(rsp.id) < r.tx_pages.len() && !r.tx_free.contains(&rsp.id) {
                            r.tx_free.push(rsp.id);
                        }
                    }
                }
            }
            if !r.tx.final_check_for_responses() {
                break;
            }
        }
        let mut reposted = false;
        loop {
            while r.rx.unconsumed_responses() > 0 {
                // As Linux netfront: the buffer of a response is the one posted at its ring
                // position (ids are positions), which also covers extra-info responses.
                let id = (r.rx.rsp_cons() % RX_RING_SIZE) as u16;
                let words = r.rx.take_response();
                let (page, gref) = &r.rx_pages[usize::from(id)];
                if std::mem::take(&mut r.rx_extra_next) {
                    let extra = ExtraInfo::from_words(words[0], words[1]);
                    if extra.ty == XEN_NETIF_EXTRA_TYPE_GSO && extra.gso_size() > 0 {
                        r.rx_gso_sizes.push_back(extra.gso_size());
                    } else {
                        r.rx_partial_bad = true;
                    }
                    r.rx_extra_next = extra.more();
                } else {
                    let rsp = RxResponse::from_words(words);
                    if r.rx_first_flags.is_none() {
                        r.rx_first_flags = Some(rsp.flags);
                        r.rx_extra_next = rsp.flags & NETRXF_EXTRA_INFO != 0;
                    }
                    if rsp.id != id
                        || rsp.status < 0
                        || usize::from(rsp.offset) + rsp.status as usize > PAGE_SIZE
                    {
                        self.stats.rx_errors += 1;
                        r.rx_partial_bad = true;
                    } else {
                        let start = r.rx_partial.len();
                        r.rx_partial.resize(start + rsp.status as usize, 0);
                        page.read(usize::from(rsp.offset), &mut r.rx_partial[start..])?;
                    }
                    if rsp.flags & NETRXF_MORE_DATA == 0 {
                        let frame = std::mem::take(&mut r.rx_partial);
                        let flags = r.rx_first_flags.take().unwrap_or(0);
                        let gso = flags & NETRXF_EXTRA_INFO != 0;
                        let partial = flags & NETRXF_CSUM_BLANK != 0;
                        if !std::mem::take(&mut r.rx_partial_bad) {
                            self.stats.rx_frames += 1;
                            self.stats.rx_largest = self.stats.rx_largest.max(frame.len() as u64);
                            self.stats.rx_gso += u64::from(gso);
                            self.stats.rx_csum_blank += u64::from(flags & NETRXF_CSUM_BLANK != 0);
                            self.received.push_back((frame, partial));
                        } else if gso {
                            r.rx_gso_sizes.pop_back();
                        }
                    }
                }
                r.rx.put_request(RxRequest { id, gref: *gref }.to_words());
                reposted = true;
            }
            if !r.rx.final_check_for_responses() {
                break;
            }
        }
        if reposted && r.rx.push_requests_and_check_notify() {
            self.ev.notify(r.port)?;
        }
        Ok(())
    }

    /// Takes the next received frame as it arrived: with `NETRXF_csum_blank` its TCP checksum
    /// is partial (Linux takes such a frame as `CHECKSUM_PARTIAL`, valid as it is).
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        self.received.pop_front().map(|(f, _)| f)
    }

    /// Queues a frame on the TX ring and notifies the backend if it asked; false if the ring has
    /// no room (or we are not connected).
    pub fn send(&mut self, frame: &[u8]) -> xen::Result<bool> {
        self.send_gso(frame, None)
    }

    /// [`TestFront::send`] for a TCP segment of up to 64 KiB to be cut into `gso` payload bytes
    /// per segment: its first slot is followed by a GSO extra (as Linux netfront with TSO).
    pub fn send_gso(&mut self, frame: &[u8], gso: Option<u16>) -> xen::Result<bool> {
        let sg = self.opts.sg;
        let csum = self.opts.csum_blank;
        let Some(r) = self.rings.as_mut() else {
            return Ok(false);
        };
        let n = frame.len().div_ceil(PAGE_SIZE).max(1);
        if frame.is_empty() || frame.len() > MAX_TX_SIZE || (n > 1 && !sg) {
            return Ok(false);
        }
        let extra = gso.map(|mss| {
            let ty = if frame.get(12..14) == Some(&[0x86, 0xdd]) {
                XEN_NETIF_GSO_TYPE_TCPV6
            } else {
                XEN_NETIF_GSO_TYPE_TCPV4
            };
            ExtraInfo::gso(mss, ty)
        });
        let slots = n + usize::from(extra.is_some());
        if r.tx_free.len() < n || (r.tx.free_requests() as usize) < slots {
            return Ok(false);
        }
        // The checksum field to rewrite (in the guest's pages, not in a copy of the frame).
        let mut flags = 0;
        let mut patch = None;
        if let (Some(_), Some(t)) = (gso, TcpFrame::parse(frame)) {
            // Linux TSO: a GSO segment always has a partial checksum.
            let mut headers = frame[..t.payload].to_vec();
            t.write_partial_csum(&mut headers);
            let off = t.l4 + 16;
            patch = Some((off, [headers[off], headers[off + 1]]));
            flags = NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED;
        } else if csum {
            if let Some(off) = l4_csum_offset(frame) {
                patch = Some((off, [0, 0]));
                flags = NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED;
            }
        }
        for (k, chunk) in frame.chunks(PAGE_SIZE).enumerate() {
            let id = r.tx_free.pop().expect("checked room");
            let (page, gref) = &r.tx_pages[usize::from(id)];
            page.write(0, chunk)?;
            if let Some((off, bytes)) = patch {
                for (i, b) in bytes.iter().enumerate() {
                    if (off + i) / PAGE_SIZE == k {
                        page.write((off + i) % PAGE_SIZE, &[*b])?;
                    }
                }
            }
            let more = if k + 1 < n { NETTXF_MORE_DATA } else { 0 };
            let (size, f) = match (k, extra) {
                (0, Some(_)) => (frame.len(), flags | more | NETTXF_EXTRA_INFO),
                (0, None) => (frame.len(), flags | more),
                _ => (chunk.len(), more),
            };
            r.tx.put_request(
                TxRequest {
                    gref: *gref,
                    offset: 0,
                    flags: f,
                    id,
                    size: size as u16,
                }
                .to_words(),
            );
            if let (0, Some(e)) = (k, extra) {
                let w = e.to_words();
                r.tx.put_request([w[0], w[1], 0]);
            }
        }
        if r.tx.push_requests_and_check_notify() {
            self.ev.notify(r.port)?;
        }
        Ok(true)
    }

    /// The GSO sizes of the frames received with a GSO extra, oldest first.
    pub fn rx_gso_sizes(&self) -> Vec<u16> {
        self.rings
            .as_ref()
            .map_or(Vec::new(), |r| r.rx_gso_sizes.iter().copied().collect())
    }

    /// Whether TSO is on: we asked for GSO and the backend offers it.
    pub fn tso(&self) -> bool {
        self.rings.as_ref().is_some_and(|r| r.gso)
    }

    /// TX slots in flight (sent, not yet answered).
    pub fn tx_in_flight(&self) -> usize {
        self.rings
            .as_ref()
            .map_or(0, |r| r.tx_pages.len() - r.tx_free.len())
    }
}

/// Offset of the TCP/UDP checksum in an untagged IPv4/IPv6 Ethernet frame.
fn l4_csum_offset(f: &[u8]) -> Option<usize> {
    let (proto, l4) = match f.get(12..14)? {
        [0x08, 0x00] => (*f.get(23)?, 14 + usize::from(f.get(14)? & 0xf) * 4),
        [0x86, 0xdd] => (*f.get(20)?, 54),
        _ => return None,
    };
    let off = l4
        + match proto {
            6 => 16,
            17 => 6,
            _ => return None,
        };
    (off + 2 <= f.len()).then_some(off)
}

//! The smoltcp [`Device`] of a vif: frames from the guest are received, transmitted frames are
//! queued for the guest.
//!
//! Offload as on a TAP link with a virtio-net header: TCP checksums are neither verified on
//! receive (a guest's GSO frames keep their partial checksum) nor computed by the stack on send
//! (the vif completes them as the frontend wants), and the stack sends IPv4 TCP segments of up
//! to 64 KiB that the vif hands to the guest whole or cut ([`crate::offload`]).

use std::num::{NonZeroU16, NonZeroUsize};

use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium, PacketMeta};

use super::{Vif, BUDGET};
use crate::ring::SharedPage;
use crate::wire::{ETH_HLEN, MAX_TX_SIZE};

/// smoltcp receive token: one frame the guest sent.
pub struct VifRxToken(Vec<u8>);

impl smoltcp::phy::RxToken for VifRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// smoltcp transmit token: queues one frame (or TCP segment) for the guest.
pub struct VifTxToken<'a, M>(&'a mut Vif<M>, PacketMeta);

impl<M: SharedPage> smoltcp::phy::TxToken for VifTxToken<'_, M> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        let gso = self.1.segmentation_offload_size.map(NonZeroU16::get);
        self.0.send_from_stack(frame, gso);
        r
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.1 = meta;
    }
}

impl<M: SharedPage> Device for Vif<M> {
    type RxToken<'a>
        = VifRxToken
    where
        Self: 'a;
    type TxToken<'a>
        = VifTxToken<'a, M>
    where
        Self: 'a;

    fn receive(
        &mut self,
        _t: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.recv_frame()?;
        Some((VifRxToken(frame), VifTxToken(self, PacketMeta::default())))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(VifTxToken(self, PacketMeta::default()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = capabilities((self.mtu + ETH_HLEN).min(self.max_frame()));
        caps.max_burst_size = Some(BUDGET);
        caps
    }
}

/// The capabilities of a vif whose frames are at most `max_frame` bytes (its MTU with the
/// Ethernet header). An owner that creates its smoltcp `Interface` before the vif connects
/// (smoltcp keeps the capabilities it was created with) uses these.
pub fn capabilities(max_frame: usize) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ethernet;
    caps.max_transmission_unit = max_frame;
    caps.checksum.tcp = Checksum::None;
    // smoltcp cuts IPv6 segments at the MTU itself (it cannot offload them).
    caps.segmentation.tcpv4 = NonZeroUsize::new(MAX_TX_SIZE);
    caps
}

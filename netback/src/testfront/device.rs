//! The test frontend as a smoltcp [`Device`]: TSO on when GSO was negotiated (the stack then
//! leaves TCP checksums to the device), partial checksums of received frames completed for the
//! stack, which verifies them.

use smoltcp::phy::{Device, DeviceCapabilities, Medium};

use super::TestFront;
use crate::offload::TcpFrame;
use crate::wire::*;

/// smoltcp receive token of the test frontend.
pub struct FrontRxToken(Vec<u8>);

impl smoltcp::phy::RxToken for FrontRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// smoltcp transmit token of the test frontend.
pub struct FrontTxToken<'a>(&'a mut TestFront, Option<u16>);

impl smoltcp::phy::TxToken for FrontTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if self.0.tso() && self.1.is_none() {
            // With TSO on the stack leaves TCP checksums to the device.
            if let Some(t) = TcpFrame::parse(&frame) {
                t.write_full_csum(&mut frame);
            }
        }
        if !matches!(self.0.send_gso(&frame, self.1), Ok(true)) {
            log::debug!("test frontend: tx ring full, frame dropped");
        }
        r
    }

    fn set_meta(&mut self, meta: smoltcp::phy::PacketMeta) {
        self.1 = meta
            .segmentation_offload_size
            .map(std::num::NonZeroU16::get);
    }
}

impl Device for TestFront {
    type RxToken<'a> = FrontRxToken;
    type TxToken<'a> = FrontTxToken<'a>;

    fn receive(
        &mut self,
        _t: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // Our stack verifies checksums: complete a partial one (a frame whose checksum cannot
        // be completed is dropped).
        let f = loop {
            let (mut f, partial) = self.received.pop_front()?;
            if !partial || crate::csum::fill_l4_checksum(&mut f).is_ok() {
                break f;
            }
            self.stats.rx_errors += 1;
        };
        Some((FrontRxToken(f), FrontTxToken(self, None)))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        let free = self
            .rings
            .as_ref()
            .is_some_and(|r| r.tx_free.len() >= 17 && r.tx.free_requests() >= 17);
        free.then_some(FrontTxToken(self, None))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HLEN;
        if self.tso() {
            // TSO on, as Linux netfront with a backend offering `feature-gso-tcpv4`: the
            // device completes TCP checksums (smoltcp requires it with segmentation offload).
            caps.segmentation.tcpv4 = std::num::NonZeroUsize::new(MAX_TX_SIZE);
            caps.checksum.tcp = smoltcp::phy::Checksum::Rx;
        }
        caps
    }
}

//! The smoltcp [`Device`] of a vif: frames from the guest are received, transmitted frames are
//! queued for the guest.

use smoltcp::phy::{Device, DeviceCapabilities, Medium};

use super::{Vif, BUDGET};
use crate::ring::SharedPage;
use crate::wire::ETH_HLEN;

/// smoltcp receive token: one frame the guest sent.
pub struct VifRxToken(Vec<u8>);

impl smoltcp::phy::RxToken for VifRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// smoltcp transmit token: queues one frame for the guest.
pub struct VifTxToken<'a, M>(&'a mut Vif<M>);

impl<M: SharedPage> smoltcp::phy::TxToken for VifTxToken<'_, M> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.send_frame(frame);
        r
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
        let frame = self.to_stack.pop_front()?;
        Some((VifRxToken(frame), VifTxToken(self)))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(VifTxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = (self.mtu + ETH_HLEN).min(self.max_frame());
        caps.max_burst_size = Some(BUDGET);
        caps
    }
}

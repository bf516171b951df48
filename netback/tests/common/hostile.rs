//! The two-guest setup of the hostile-frontend tests: a good guest and one driven by hand with
//! raw ring requests.

use netback::testfront::{FrontOptions, TestFront};
use netback::wire::*;
use xen::DomId;

use super::World;

/// Two guests with connected test netfronts: `good` behaves, `bad` is driven by hand.
pub struct Setup {
    pub w: World,
    pub good: DomId,
    pub gf: TestFront,
    pub bad: DomId,
    pub bf: TestFront,
}

/// A world with a good and a (to be) hostile guest, both connected.
pub fn setup() -> Setup {
    let mut w = World::new();
    let (good, mut gf) = w.add_guest(1500, FrontOptions::default());
    let (bad, mut bf) = w.add_guest(1500, FrontOptions::default());
    assert!(w.pump_until(&mut [&mut gf, &mut bf], |_, fs| fs
        .iter()
        .all(|f| f.is_up())));
    Setup {
        w,
        good,
        gf,
        bad,
        bf,
    }
}

/// A test frame of `len` bytes (EtherType 0x88b5, local experimental).
pub fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
    f[12] = 0x88;
    f[13] = 0xb5;
    f
}

/// Writes raw requests on the hostile frontend's TX ring and notifies.
pub fn inject(f: &mut TestFront, reqs: &[[u32; 3]]) {
    let r = f.rings.as_mut().expect("connected");
    for q in reqs {
        r.tx.put_request(*q);
    }
    r.tx.push_requests_and_check_notify();
    f.notify().unwrap();
}

/// The grant of the frontend's TX page `i`.
pub fn tx_gref(f: &TestFront, i: usize) -> u32 {
    f.rings.as_ref().unwrap().tx_pages[i].1
}

/// A raw TX request.
pub fn req(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> [u32; 3] {
    TxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    }
    .to_words()
}

impl Setup {
    /// One round of the NV main loop and both frontends.
    pub fn pump(&mut self) {
        self.w.pump(&mut [&mut self.gf, &mut self.bf]);
    }

    /// Asserts that the hostile vif is disabled under `rule`, Closing, and the good one works.
    pub fn assert_disabled(&mut self, rule: u8) {
        let bad = self.bad;
        let ok = self
            .w
            .pump_until(&mut [&mut self.gf, &mut self.bf], |w, _| {
                w.nb.vif_by_handle(bad, 0)
                    .is_some_and(|v| v.disabled().is_some())
            });
        assert!(ok, "hostile vif was not disabled");
        let vif = self.w.nb.vif_by_handle(bad, 0).unwrap();
        assert_eq!(vif.disabled().unwrap().rule(), rule, "{:?}", vif.disabled());
        assert!(!vif.is_connected());
        assert_eq!(
            self.w.backend_state(bad),
            "5",
            "backend of the rogue vif goes to Closing"
        );
        self.assert_good_vif_works();
    }

    /// Asserts that the hostile vif is still up.
    pub fn assert_not_disabled(&mut self) {
        let v = self.w.nb.vif_by_handle(self.bad, 0).unwrap();
        assert!(v.disabled().is_none() && v.is_connected());
    }

    /// Asserts that a frame goes each way on the good vif.
    pub fn assert_good_vif_works(&mut self) {
        let name = format!("vif{}.0", self.good);
        let f = frame(1000, 0x5a);
        assert!(self.gf.send(&f).unwrap());
        let mut got = None;
        assert!(self
            .w
            .pump_until(&mut [&mut self.gf, &mut self.bf], |w, _| {
                got = w.nb.vif_mut(&name).unwrap().recv_frame();
                got.is_some()
            }));
        assert_eq!(got.unwrap(), f);
        assert!(self.w.nb.vif_mut(&name).unwrap().send_frame(f.clone()));
        let mut got = None;
        assert!(self
            .w
            .pump_until(&mut [&mut self.gf, &mut self.bf], |_, fs| {
                got = fs[0].recv();
                got.is_some()
            }));
        assert_eq!(got.unwrap(), f);
    }
}

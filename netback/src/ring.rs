//! Accessors for a shared I/O ring page (`xen/io/ring.h`), back and front ends.
//!
//! This is the only module of the crate with `unsafe` code: it turns a mapped page into a slice of
//! `AtomicU32` once, after which every access is an atomic load or store of one aligned word. The
//! other side of the ring is hostile and may change any word at any time, so callers read each slot
//! once into a local copy ([`BackRing::take_request`]) and validate only that copy.
//!
//! Memory ordering follows `ring.h`: a producer index is stored with `Release` after the entries it
//! publishes (`xen_wmb`), read with `Acquire` before the entries it covers (`xen_rmb`), and the
//! event checks use a `SeqCst` fence (`xen_mb`).

use std::sync::atomic::{fence, AtomicU32, Ordering};

use crate::wire::{PAGE_SIZE, SRING_HEADER};

/// Memory holding one shared ring page.
///
/// # Safety
/// `page_ptr()` must return a pointer that is non-null, 4-byte aligned and valid for reads and
/// writes of `page_len()` bytes for as long as the value lives, and both must return the same
/// values every time.
pub unsafe trait SharedPage {
    /// Start of the page.
    fn page_ptr(&self) -> *mut u8;
    /// Length of the memory at [`SharedPage::page_ptr`].
    fn page_len(&self) -> usize;
}

// SAFETY: `xen::GrantMapping` promises that `as_ptr()` is valid for `len()` bytes for the mapping's
// lifetime (it unmaps on drop); grant mappings are page-aligned.
unsafe impl<M: xen::GrantMapping> SharedPage for M {
    fn page_ptr(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn page_len(&self) -> usize {
        self.len()
    }
}

/// A simulated guest's own page used as a ring by a frontend in the simulator (the test netfront);
/// the guest grants `page()` to the backend.
pub struct SimGuestRing(pub xen::sim::GuestPage);

// SAFETY: a GuestPage is a live one-page MAP_SHARED mapping (page-aligned) until it is dropped.
unsafe impl SharedPage for SimGuestRing {
    fn page_ptr(&self) -> *mut u8 {
        self.0.as_ptr()
    }
    fn page_len(&self) -> usize {
        PAGE_SIZE
    }
}

/// A zeroed, heap-allocated page, for rings that live in this process (tests, benchmarks).
pub struct HeapPage(Box<[AtomicU32; PAGE_SIZE / 4]>);

impl HeapPage {
    /// Allocates a zeroed page.
    pub fn new() -> Self {
        HeapPage(Box::new(std::array::from_fn(|_| AtomicU32::new(0))))
    }
}

impl Default for HeapPage {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: the box owns PAGE_SIZE bytes of AtomicU32 (4-byte aligned) that live as long as `self`.
unsafe impl SharedPage for HeapPage {
    fn page_ptr(&self) -> *mut u8 {
        self.0.as_ptr() as *mut u8
    }
    fn page_len(&self) -> usize {
        PAGE_SIZE
    }
}

/// Errors of ring attachment and index checks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// The memory is not a whole, aligned page.
    #[error("ring memory is not a 4-byte aligned page")]
    BadPage,
    /// The other end published an impossible producer index (rule 2, XSA-39).
    #[error("impossible ring indices: producer {prod}, consumer {cons}, ring size {size}")]
    Overflow {
        /// The producer index read from shared memory.
        prod: u32,
        /// Our consumer index.
        cons: u32,
        /// Entries in the ring.
        size: u32,
    },
}

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 1;
const RSP_PROD: usize = 2;
const RSP_EVENT: usize = 3;

/// The page as words; all shared-memory access goes through here.
struct Words<P> {
    page: P,
}

impl<P: SharedPage> Words<P> {
    fn new(page: P) -> Result<Self, RingError> {
        let ptr = page.page_ptr();
        if ptr.is_null() || !(ptr as usize).is_multiple_of(4) || page.page_len() < PAGE_SIZE {
            return Err(RingError::BadPage);
        }
        Ok(Words { page })
    }

    fn words(&self) -> &[AtomicU32] {
        // SAFETY: `new` checked the pointer is non-null, 4-byte aligned and (by the SharedPage
        // contract) valid for PAGE_SIZE bytes while `self.page` lives; AtomicU32 has the size and
        // alignment of u32, and all access is atomic, so concurrent writes by the guest are not a
        // data race in the Rust model.
        unsafe {
            std::slice::from_raw_parts(self.page.page_ptr() as *const AtomicU32, PAGE_SIZE / 4)
        }
    }

    fn load(&self, i: usize) -> u32 {
        self.words()[i].load(Ordering::Acquire)
    }

    fn store(&self, i: usize, v: u32) {
        self.words()[i].store(v, Ordering::Release)
    }

    fn read_entry<const W: usize>(&self, size: u32, idx: u32) -> [u32; W] {
        let base = SRING_HEADER / 4 + (idx & (size - 1)) as usize * W;
        let w = self.words();
        std::array::from_fn(|k| w[base + k].load(Ordering::Relaxed))
    }

    fn write_entry<const W: usize>(&self, size: u32, idx: u32, v: [u32; W]) {
        let base = SRING_HEADER / 4 + (idx & (size - 1)) as usize * W;
        let w = self.words();
        for (k, x) in v.into_iter().enumerate() {
            w[base + k].store(x, Ordering::Relaxed);
        }
    }
}

/// The backend's end of a ring with `SIZE` entries of `W` words each (TX: 256 x 3, RX: 256 x 2).
pub struct BackRing<P, const W: usize, const SIZE: u32> {
    mem: Words<P>,
    req_cons: u32,
    rsp_prod_pvt: u32,
}

/// The backend end of a TX ring.
pub type TxBackRing<P> = BackRing<P, 3, { crate::wire::TX_RING_SIZE }>;
/// The backend end of an RX ring.
pub type RxBackRing<P> = BackRing<P, 2, { crate::wire::RX_RING_SIZE }>;

impl<P: SharedPage, const W: usize, const SIZE: u32> BackRing<P, W, SIZE> {
    /// Attaches to a ring the frontend initialised (`BACK_RING_ATTACH` at the current `rsp_prod`,
    /// so a reconnecting frontend may start at any index). Rejects a ring whose published requests
    /// exceed its size (rule 2, XSA-39).
    pub fn attach(page: P) -> Result<Self, RingError> {
        let mem = Words::new(page)?;
        let rsp_prod = mem.load(RSP_PROD);
        let req_prod = mem.load(REQ_PROD);
        if req_prod.wrapping_sub(rsp_prod) > SIZE {
            return Err(RingError::Overflow {
                prod: req_prod,
                cons: rsp_prod,
                size: SIZE,
            });
        }
        Ok(BackRing {
            mem,
            req_cons: rsp_prod,
            rsp_prod_pvt: rsp_prod,
        })
    }

    /// Requests published but not yet taken; an impossible count is an error (rule 2, XSA-39).
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let prod = self.mem.load(REQ_PROD);
        let n = prod.wrapping_sub(self.req_cons);
        // Also bound by the responses still owed: the frontend may never have more than SIZE
        // requests outstanding.
        if n > SIZE || prod.wrapping_sub(self.rsp_prod_pvt) > SIZE {
            return Err(RingError::Overflow {
                prod,
                cons: self.req_cons,
                size: SIZE,
            });
        }
        Ok(n)
    }

    /// Our consumer index (the next request slot to take).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Our private response producer index (the next response slot to fill).
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Copies the request at `req_cons` out of shared memory, once, and advances `req_cons`.
    /// The caller must have seen it published with [`BackRing::unconsumed_requests`].
    pub fn take_request(&mut self) -> [u32; W] {
        let v = self.mem.read_entry::<W>(SIZE, self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        v
    }

    /// Writes a response at `rsp_prod_pvt` and advances it; never past `req_cons`, so every taken
    /// slot gets at most one response. Returns false (writing nothing) if no slot is owed one.
    pub fn put_response(&mut self, v: [u32; W]) -> bool {
        if self.rsp_prod_pvt == self.req_cons {
            return false;
        }
        self.mem.write_entry::<W>(SIZE, self.rsp_prod_pvt, v);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the responses written so far; returns whether the frontend asked to be notified
    /// (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.mem.load(RSP_PROD);
        let new = self.rsp_prod_pvt;
        self.mem.store(RSP_PROD, new);
        fence(Ordering::SeqCst);
        let event = self.mem.load(RSP_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: if nothing is pending, asks for an event on the next
    /// request and checks again; returns whether there is work.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.mem.store(REQ_EVENT, self.req_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_requests()? > 0)
    }

    /// Asks for an event once `needed` requests beyond `req_cons` are published, and checks again
    /// (used by RX when a packet needs several slots); returns whether they already are.
    pub fn wait_for_requests(&mut self, needed: u32) -> Result<bool, RingError> {
        if self.unconsumed_requests()? >= needed {
            return Ok(true);
        }
        self.mem
            .store(REQ_EVENT, self.req_cons.wrapping_add(needed));
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_requests()? >= needed)
    }
}

/// The frontend's end of a ring (used by the test netfront and benchmarks).
pub struct FrontRing<P, const W: usize, const SIZE: u32> {
    mem: Words<P>,
    req_prod_pvt: u32,
    rsp_cons: u32,
}

/// The frontend end of a TX ring.
pub type TxFrontRing<P> = FrontRing<P, 3, { crate::wire::TX_RING_SIZE }>;
/// The frontend end of an RX ring.
pub type RxFrontRing<P> = FrontRing<P, 2, { crate::wire::RX_RING_SIZE }>;

impl<P: SharedPage, const W: usize, const SIZE: u32> FrontRing<P, W, SIZE> {
    /// Initialises the shared page (`SHARED_RING_INIT` + `FRONT_RING_INIT`).
    pub fn init(page: P) -> Result<Self, RingError> {
        let mem = Words::new(page)?;
        for i in 0..SRING_HEADER / 4 {
            mem.store(i, 0);
        }
        mem.store(REQ_EVENT, 1);
        mem.store(RSP_EVENT, 1);
        Ok(FrontRing {
            mem,
            req_prod_pvt: 0,
            rsp_cons: 0,
        })
    }

    /// Request slots the frontend may still fill (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        SIZE - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Writes a request at `req_prod_pvt` and advances it (not yet visible to the backend).
    pub fn put_request(&mut self, v: [u32; W]) {
        self.mem.write_entry::<W>(SIZE, self.req_prod_pvt, v);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
    }

    /// Publishes requests; returns whether the backend asked to be notified
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.mem.load(REQ_PROD);
        let new = self.req_prod_pvt;
        self.mem.store(REQ_PROD, new);
        fence(Ordering::SeqCst);
        let event = self.mem.load(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Stores an arbitrary shared `req_prod` (hostile frontends in tests).
    pub fn set_shared_req_prod(&mut self, v: u32) {
        self.mem.store(REQ_PROD, v);
    }

    /// Responses published but not yet taken.
    pub fn unconsumed_responses(&self) -> u32 {
        self.mem.load(RSP_PROD).wrapping_sub(self.rsp_cons)
    }

    /// Copies the response at `rsp_cons` and advances it.
    pub fn take_response(&mut self) -> [u32; W] {
        let v = self.mem.read_entry::<W>(SIZE, self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        v
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: returns whether responses are pending, after asking for
    /// an event on the next one.
    pub fn final_check_for_responses(&mut self) -> bool {
        if self.unconsumed_responses() > 0 {
            return true;
        }
        self.mem.store(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        self.unconsumed_responses() > 0
    }

    /// The next request index this frontend will fill.
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The index of the next response this frontend will take.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Two views of one page, as the two domains have.
    #[derive(Clone)]
    struct Shared(Arc<HeapPage>);
    // SAFETY: delegates to the HeapPage, which lives as long as any clone of the Arc.
    unsafe impl SharedPage for Shared {
        fn page_ptr(&self) -> *mut u8 {
            self.0.page_ptr()
        }
        fn page_len(&self) -> usize {
            self.0.page_len()
        }
    }

    fn pair() -> (TxFrontRing<Shared>, TxBackRing<Shared>) {
        let p = Shared(Arc::new(HeapPage::new()));
        let f = TxFrontRing::init(p.clone()).unwrap();
        let b = TxBackRing::attach(p).unwrap();
        (f, b)
    }

    #[test]
    fn requests_and_responses_flow_with_notification_suppression() {
        let (mut f, mut b) = pair();
        assert_eq!(f.free_requests(), 256);
        f.put_request([1, 2, 3]);
        f.put_request([4, 5, 6]);
        // req_event starts at 1, so the first push notifies.
        assert!(f.push_requests_and_check_notify());
        assert_eq!(b.unconsumed_requests(), Ok(2));
        assert_eq!(b.take_request(), [1, 2, 3]);
        assert_eq!(b.take_request(), [4, 5, 6]);
        assert!(!b.final_check_for_requests().unwrap());
        // The backend asked for req_cons + 1: the next push notifies, the one after does not.
        f.put_request([7, 8, 9]);
        assert!(f.push_requests_and_check_notify());
        f.put_request([7, 8, 9]);
        assert!(!f.push_requests_and_check_notify());
        assert!(b.put_response([10, 0, 0]));
        assert!(b.put_response([11, 0, 0]));
        assert!(b.push_responses_and_check_notify());
        assert_eq!(f.unconsumed_responses(), 2);
        assert_eq!(f.take_response()[0], 10);
        assert_eq!(f.take_response()[0], 11);
        assert!(!f.final_check_for_responses());
        assert_eq!(f.free_requests(), 254);
    }

    #[test]
    fn never_more_responses_than_requests_taken() {
        let (_f, mut b) = pair();
        assert!(!b.put_response([1, 0, 0]));
        assert_eq!(b.rsp_prod_pvt(), 0);
    }

    /// Rule 2 (XSA-39): an impossible producer index is an error, both at attach and later.
    #[test]
    fn rule2_xsa39_impossible_req_prod_is_rejected() {
        let (mut f, mut b) = pair();
        f.set_shared_req_prod(257);
        assert_eq!(
            b.unconsumed_requests(),
            Err(RingError::Overflow {
                prod: 257,
                cons: 0,
                size: 256
            })
        );
        assert!(b.final_check_for_requests().is_err());
        let p = Shared(Arc::new(HeapPage::new()));
        let mut f2 = TxFrontRing::init(p.clone()).unwrap();
        f2.set_shared_req_prod(u32::MAX);
        assert!(TxBackRing::attach(p).is_err());
    }

    #[test]
    fn indices_wrap_around_u32() {
        let p = Shared(Arc::new(HeapPage::new()));
        let mut f = RxFrontRing::init(p.clone()).unwrap();
        // Start both ends near the wrap point, as after a long uptime.
        f.req_prod_pvt = u32::MAX - 1;
        f.rsp_cons = u32::MAX - 1;
        f.set_shared_req_prod(u32::MAX - 1);
        f.mem.store(RSP_PROD, u32::MAX - 1);
        let mut b = RxBackRing::attach(p).unwrap();
        for i in 0..4 {
            f.put_request([i, 100 + i]);
        }
        f.push_requests_and_check_notify();
        assert_eq!(b.unconsumed_requests(), Ok(4));
        for i in 0..4 {
            assert_eq!(b.take_request(), [i, 100 + i]);
            assert!(b.put_response([i, 0]));
        }
        b.push_responses_and_check_notify();
        assert_eq!(f.unconsumed_responses(), 4);
        assert_eq!(b.req_cons(), 2);
    }
}

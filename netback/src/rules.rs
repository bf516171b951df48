//! The robustness rules against a malicious frontend (see `shared/reference/netback.md`), as the
//! errors that disable a vif. Every fatal check in the crate returns one of these; the vif layer
//! logs it with its rule and XSA and takes the vif down in one place ([`crate::vif`]).

/// A frontend misbehaviour that disables its vif.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Rule 2 (XSA-39): the frontend published more requests than the ring holds.
    #[error("rule 2 (XSA-39): impossible ring indices: producer {prod}, consumer {cons}")]
    RingIndex {
        /// Producer index read from the ring.
        prod: u32,
        /// Our consumer index.
        cons: u32,
    },
    /// Rule 3: a packet uses at least [`crate::wire::FATAL_SLOTS`] slots.
    #[error("rule 3: packet uses {0} slots (fatal at 20)")]
    TooManySlots(usize),
    /// Rule 3: a packet's chain runs past the requests the frontend published.
    #[error("rule 3: packet chain runs past the published requests")]
    ChainPastProducer,
    /// Rule 4 (XSA-448): a slot's data crosses its page.
    #[error("rule 4 (XSA-448): slot offset {offset} + size {size} crosses the page")]
    CrossPage {
        /// The slot's offset.
        offset: u16,
        /// The slot's size.
        size: usize,
    },
    /// Rule 6: an extra-info segment is announced but not published.
    #[error("rule 6: missing extra-info segment")]
    ExtraMissing,
    /// Rule 6: an extra-info segment of an invalid type.
    #[error("rule 6: invalid extra-info type {0}")]
    ExtraType(u8),
    /// Rule 6: a chain of more extra-info segments than there are types.
    #[error("rule 6: extra-info chain overrun")]
    ExtraOverrun,
    /// Rule 6: a GSO extra with size 0 or an unknown GSO type.
    #[error("rule 6: bad GSO extra (size {size}, type {ty})")]
    Gso {
        /// `u.gso.size`.
        size: u16,
        /// `u.gso.type`.
        ty: u8,
    },
    /// Rule 10 (XSA-270/90): invalid xenstore input from the frontend.
    #[error("rule 10: invalid frontend xenstore key {key}: {reason}")]
    Xenstore {
        /// The offending key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// Rule 10 (XSA-374): a grant or event-channel operation on frontend-provided values failed.
    #[error("rule 10: {op} failed: {reason}")]
    GrantOp {
        /// The operation.
        op: &'static str,
        /// The error.
        reason: String,
    },
}

impl Violation {
    /// The rule number in the reference (1..=10).
    pub fn rule(&self) -> u8 {
        match self {
            Violation::RingIndex { .. } => 2,
            Violation::TooManySlots(_) | Violation::ChainPastProducer => 3,
            Violation::CrossPage { .. } => 4,
            Violation::ExtraMissing
            | Violation::ExtraType(_)
            | Violation::ExtraOverrun
            | Violation::Gso { .. } => 6,
            Violation::Xenstore { .. } | Violation::GrantOp { .. } => 10,
        }
    }
}

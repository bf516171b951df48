//! A vif's counters: what it moved each way, how (GSO frames, ring slots, grant-copy calls and
//! segments, notifications) and what it dropped, by reason; as a log line and by name.

/// Counters of one vif.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifStats {
    /// Frames received from the guest and queued for the stack.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Guest packets answered with an error (bad chain, copy or checksum failure).
    pub tx_errors: u64,
    /// Frames received from the guest and dropped because the stack's queue was full.
    pub tx_dropped: u64,
    /// Frames delivered into the guest.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames for the guest that were dropped (queue bound, expiry, too big, copy failure).
    pub rx_dropped: u64,
    /// Event-channel notifications from the guest handled.
    pub events: u64,
    /// Grant-copy calls issued.
    pub copy_calls: u64,
    /// Grant-copy segments issued.
    pub copy_segments: u64,
    /// Ring slots of the frames received from the guest (data and extra-info slots).
    pub tx_slots: u64,
    /// Frames received from the guest as GSO segments (with a GSO extra).
    pub tx_gso_frames: u64,
    /// Ring slots filled for the guest (data and extra-info slots).
    pub rx_slots: u64,
    /// Frames delivered to the guest as GSO segments (with a GSO extra).
    pub rx_gso_frames: u64,
    /// Segments from the stack cut into MTU-sized frames here (the frontend has no GSO).
    pub rx_segmented: u64,
    /// Event-channel notifications sent to the guest.
    pub notifies: u64,
    /// Guest packets dropped by rules 3 and 4 (too many slots, bad slot sizes).
    pub tx_drop_chain: u64,
    /// Guest frames over the MTU without a GSO extra.
    pub tx_drop_over_mtu: u64,
    /// Guest GSO frames whose extra does not match the frame (not TCP of that IP version).
    pub tx_drop_gso: u64,
    /// Guest packets whose grant copy failed.
    pub tx_drop_copy: u64,
    /// Guest `csum_blank` frames whose checksum could not be filled in.
    pub tx_drop_csum: u64,
    /// Frames for the guest refused at the queue (full, stalled, expired, too big).
    pub rx_drop_queue: u64,
    /// Frames for the guest whose grant copy failed.
    pub rx_drop_copy: u64,
}

impl VifStats {
    /// Every counter with its kebab-case name (the keys of a vif in domain-nv's status).
    pub fn named(&self) -> [(&'static str, u64); 23] {
        [
            ("tx-frames", self.tx_frames),
            ("tx-bytes", self.tx_bytes),
            ("tx-gso-frames", self.tx_gso_frames),
            ("tx-slots", self.tx_slots),
            ("tx-errors", self.tx_errors),
            ("tx-dropped", self.tx_dropped),
            ("tx-drop-chain", self.tx_drop_chain),
            ("tx-drop-over-mtu", self.tx_drop_over_mtu),
            ("tx-drop-gso", self.tx_drop_gso),
            ("tx-drop-copy", self.tx_drop_copy),
            ("tx-drop-csum", self.tx_drop_csum),
            ("rx-frames", self.rx_frames),
            ("rx-bytes", self.rx_bytes),
            ("rx-gso-frames", self.rx_gso_frames),
            ("rx-segmented", self.rx_segmented),
            ("rx-slots", self.rx_slots),
            ("rx-dropped", self.rx_dropped),
            ("rx-drop-queue", self.rx_drop_queue),
            ("rx-drop-copy", self.rx_drop_copy),
            ("copy-calls", self.copy_calls),
            ("copy-segments", self.copy_segments),
            ("events", self.events),
            ("notifies", self.notifies),
        ]
    }
}

/// A vif's counters as one log line: frames, bytes, GSO frames and slots per frame each way,
/// drops by reason, grant-copy calls with segments per call, notifications each way.
pub struct StatsLine<'a>(pub &'a VifStats);

impl std::fmt::Display for StatsLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        let per = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        write!(
            f,
            "from guest {} frames {} bytes {} gso {:.1} slots/frame, {} errors (chain {} mtu {} gso {} copy {} csum {}) {} dropped; \
             to guest {} frames {} bytes {} gso {} cut {:.1} slots/frame, {} dropped (queue {} copy {}); \
             {} copy calls {:.1} segs/call; events {} in {} out",
            s.tx_frames, s.tx_bytes, s.tx_gso_frames, per(s.tx_slots, s.tx_frames + s.tx_errors + s.tx_dropped),
            s.tx_errors, s.tx_drop_chain, s.tx_drop_over_mtu, s.tx_drop_gso, s.tx_drop_copy, s.tx_drop_csum, s.tx_dropped,
            s.rx_frames, s.rx_bytes, s.rx_gso_frames, s.rx_segmented, per(s.rx_slots, s.rx_frames + s.rx_drop_copy),
            s.rx_dropped, s.rx_drop_queue, s.rx_drop_copy,
            s.copy_calls, per(s.copy_segments, s.copy_calls), s.events, s.notifies
        )
    }
}

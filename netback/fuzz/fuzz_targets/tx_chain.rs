//! Fuzzes TX request-chain validation: arbitrary bytes become ring slots (12 bytes each) and are
//! taken packet by packet. Validation must never panic, never take more slots than published,
//! answer exactly the slots it took, and only produce buffers that stay within their page and
//! add up to the packet's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netback::tx::{take_packet, SliceSource, SlotSource, TxOutcome};
use netback::wire::{FATAL_SLOTS, PAGE_SIZE};

fuzz_target!(|data: &[u8]| {
    let slots: Vec<[u32; 3]> = data
        .chunks_exact(12)
        .map(|c| {
            let w = |i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            [w(0), w(4), w(8)]
        })
        .collect();
    let mut src = SliceSource::new(&slots);
    while src.remaining() > 0 {
        let before = src.taken();
        match take_packet(&mut src) {
            TxOutcome::Packet(p) => {
                assert_eq!(p.answers.len(), src.taken() - before);
                assert!(p.answers.len() < FATAL_SLOTS + 4);
                assert_eq!(
                    p.frags.iter().map(|f| usize::from(f.len)).sum::<usize>(),
                    p.len
                );
                for f in &p.frags {
                    assert!(usize::from(f.offset) + usize::from(f.len) <= PAGE_SIZE);
                }
            }
            TxOutcome::Drop { answers, .. } | TxOutcome::Control { answers } => {
                assert_eq!(answers.len(), src.taken() - before)
            }
            TxOutcome::Fatal(v) => {
                assert!((2..=10).contains(&v.rule()));
                break;
            }
        }
        assert!(src.taken() <= slots.len());
    }
});

//! Unit tests of the sequencer: the conflict relation, admission, FIFO among conflicting
//! requests, cut-off replicas, closing, the in-flight bound.

use super::*;

fn keys(k: &[&str]) -> Vec<Vec<u8>> {
    k.iter().map(|k| k.as_bytes().to_vec()).collect()
}
fn read(k: &[&str]) -> Access {
    Access::Read(keys(k))
}
fn write(k: &[&str]) -> Access {
    Access::Write(keys(k))
}

#[test]
fn the_conflict_relation() {
    let cases = [
        (Access::Nothing, Access::All, false),
        (Access::Nothing, write(&["a"]), false),
        (Access::All, read(&["a"]), true),
        (Access::All, Access::All, true),
        (read(&["a"]), read(&["a"]), false),
        (read(&["a"]), write(&["a"]), true),
        (read(&["a"]), write(&["b"]), false),
        (write(&["a", "b"]), write(&["c", "b"]), true),
        (write(&["a"]), write(&["b"]), false),
        (write(&[]), Access::All, true),
    ];
    for (a, b, want) in cases {
        assert_eq!(conflicts(&a, &b), want, "{a:?} vs {b:?}");
        assert_eq!(conflicts(&b, &a), want, "{b:?} vs {a:?}");
    }
}

#[test]
fn a_conflicting_write_waits_for_every_replica_reply() {
    let mut s = Sequencer::new();
    s.open(1, 3);
    s.open(2, 3);
    assert_eq!(s.submit(1, write(&["k"])), Ok(0));
    assert_eq!(s.admitted(1), 1);
    assert_eq!(s.submit(2, write(&["k"])), Ok(0));
    assert_eq!(
        s.admitted(2),
        0,
        "conflicts with connection 1's unanswered write"
    );
    s.replied(1, 0, 1);
    s.replied(1, 1, 1);
    assert_eq!(s.admitted(2), 0, "replica 2 has not answered yet");
    s.replied(1, 2, 1);
    assert_eq!(s.admitted(2), 1);
    assert_eq!(s.in_flight(), 1);
}

#[test]
fn reads_and_other_keys_go_through_together() {
    let mut s = Sequencer::new();
    for c in 1..=4 {
        s.open(c, 2);
    }
    s.submit(1, read(&["k"])).unwrap();
    s.submit(2, read(&["k"])).unwrap();
    s.submit(3, write(&["other"])).unwrap();
    s.submit(4, Access::Nothing).unwrap();
    assert_eq!((1..=4).map(|c| s.admitted(c)).sum::<u64>(), 4);
}

#[test]
fn a_connection_never_waits_for_itself() {
    let mut s = Sequencer::new();
    s.open(1, 3);
    for i in 0..10 {
        assert_eq!(s.submit(1, Access::All), Ok(i));
    }
    assert_eq!(s.admitted(1), 10);
}

#[test]
fn conflicting_requests_are_served_first_come_first_served() {
    let mut s = Sequencer::new();
    for c in 1..=3 {
        s.open(c, 1);
    }
    s.submit(1, read(&["k"])).unwrap();
    s.submit(2, write(&["k"])).unwrap();
    s.submit(3, read(&["k"])).unwrap();
    assert_eq!(
        (s.admitted(2), s.admitted(3)),
        (0, 0),
        "the read queues behind the write"
    );
    s.replied(1, 0, 1);
    assert_eq!((s.admitted(2), s.admitted(3)), (1, 0));
    s.replied(2, 0, 1);
    assert_eq!(s.admitted(3), 1);
}

#[test]
fn a_waiting_request_does_not_hold_back_what_it_does_not_conflict_with() {
    let mut s = Sequencer::new();
    for c in 1..=3 {
        s.open(c, 1);
    }
    s.submit(1, write(&["a"])).unwrap();
    s.submit(2, write(&["a"])).unwrap();
    s.submit(3, write(&["b"])).unwrap();
    assert_eq!((s.admitted(2), s.admitted(3)), (0, 1));
}

#[test]
fn a_cut_off_replica_is_not_waited_for() {
    let mut s = Sequencer::new();
    s.open(1, 3);
    s.open(2, 3);
    s.submit(1, Access::All).unwrap();
    s.submit(2, Access::All).unwrap();
    s.replied(1, 0, 1);
    s.replied(1, 1, 1);
    s.cut_off(1, 2);
    assert_eq!(s.admitted(2), 1);
}

#[test]
fn a_connection_with_every_replica_cut_off_holds_nobody_back() {
    let mut s = Sequencer::new();
    s.open(1, 2);
    s.open(2, 2);
    s.cut_off(1, 0);
    s.cut_off(1, 1);
    s.submit(1, Access::All).unwrap();
    s.submit(2, Access::All).unwrap();
    assert_eq!((s.admitted(1), s.admitted(2)), (1, 1));
    assert_eq!(s.in_flight(), 1);
}

#[test]
fn closing_a_connection_releases_its_waiters() {
    let mut s = Sequencer::new();
    s.open(1, 1);
    s.open(2, 1);
    s.submit(1, Access::All).unwrap();
    s.submit(2, write(&["x"])).unwrap();
    s.close(1);
    assert_eq!(s.admitted(2), 1);
    assert_eq!(
        s.submit(1, Access::All),
        Err(SubmitError::UnknownConnection)
    );
}

#[test]
fn one_waiting_request_per_connection_and_a_bounded_number_in_flight() {
    let mut s = Sequencer::new();
    s.open(1, 1);
    s.open(2, 1);
    s.submit(1, Access::All).unwrap();
    s.submit(2, Access::All).unwrap();
    assert!(!s.can_submit(2));
    assert_eq!(s.submit(2, Access::All), Err(SubmitError::Busy));
    s.close(1);
    for _ in 1..MAX_IN_FLIGHT {
        s.submit(2, Access::Nothing).unwrap();
    }
    assert_eq!(s.submit(2, Access::Nothing), Err(SubmitError::Busy));
    s.replied(2, 0, 1);
    assert!(s.can_submit(2));
}

mod ahead {
    use super::super::*;
    use proptest::prelude::*;

    fn access() -> impl Strategy<Value = Access> {
        let keys = || prop::collection::vec(prop::collection::vec(0u8..3, 1..2), 0..3);
        prop_oneof![
            Just(Access::Nothing),
            Just(Access::All),
            keys().prop_map(Access::Read),
            keys().prop_map(Access::Write),
        ]
    }

    proptest! {
        /// The one-pass summary of fingerprinted keys holds a request back exactly when a
        /// request ahead of another connection conflicts with it pairwise.
        #[test]
        fn the_summary_agrees_with_the_pairwise_relation(
            queue in prop::collection::vec((0u64..3, access()), 0..8),
            conn in 0u64..3,
            next in access(),
        ) {
            let prints = RandomState::new();
            let footprint = |a: &Access| Footprint::of(a.clone(), &prints);
            let mut ahead = Ahead::default();
            for (c, a) in &queue {
                ahead.add(*c, &footprint(a));
            }
            let pairwise = queue.iter().any(|(c, a)| *c != conn && conflicts(a, &next));
            prop_assert_eq!(ahead.holds(conn, &footprint(&next)), pairwise);
        }
    }
}

#[test]
fn the_in_flight_bound_counts_only_unanswered_requests() {
    let mut s = Sequencer::new();
    // ids far apart, as the appliance may number connections
    let (a, b) = (7, 7 + (1 << 40));
    s.open(a, 2);
    s.open(b, 2);
    for _ in 0..MAX_IN_FLIGHT {
        s.submit(a, Access::Nothing).unwrap();
    }
    assert!(!s.can_submit(a));
    s.replied(a, 0, MAX_IN_FLIGHT - 1);
    assert!(!s.can_submit(a), "replica 1 has answered none");
    s.cut_off(a, 1);
    assert!(
        s.can_submit(a),
        "all but one answered by every replica left"
    );
    assert_eq!(s.in_flight(), 1);
    s.replied(a, 0, 1);
    assert_eq!(s.in_flight(), 0);
    s.submit(b, Access::All).unwrap();
    assert_eq!(s.admitted(b), 1);
    s.close(a);
    assert!(!s.can_submit(a));
    assert_eq!(s.in_flight(), 1);
}

//! Item 9 of issue 16: a guest that sends bad packets on purpose gets at most one log line per
//! vif per interval, with a count of the errors held back (its own test binary: it installs a
//! logger that records every line).

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::hostile::{inject, req, setup, tx_gref};
use netback::guestlog::GUEST_LOG_INTERVAL;

/// Records every log line.
struct Recorder(Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", r.level(), r.args()));
    }
    fn flush(&self) {}
}

static LINES: Recorder = Recorder(Mutex::new(Vec::new()));

/// Warnings and errors that name the vif `name`.
fn lines_about(name: &str) -> Vec<String> {
    LINES
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| (l.starts_with("WARN") || l.starts_with("ERROR")) && l.contains(name))
        .cloned()
        .collect()
}

#[test]
fn guest_errors_are_logged_once_per_interval_with_a_count() {
    log::set_logger(&LINES).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let mut s = setup();
    let name = format!("vif{}.0", s.bad);
    let g = tx_gref(&s.bf, 0);
    // 200 packets whose first slot is shorter than an Ethernet header: each is dropped.
    let bad: Vec<[u32; 3]> = (0..200).map(|i| req(g, 0, 0, i, 10)).collect();
    inject(&mut s.bf, &bad);
    assert!(s
        .w
        .pump_until(&mut [&mut s.gf, &mut s.bf], |_, fs| fs[1].stats.tx_errors
            == 200));
    let lines = lines_about(&name);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    s.assert_not_disabled();
    // After the interval, the held-back errors are reported in one line.
    s.w.now += GUEST_LOG_INTERVAL + Duration::from_secs(1);
    s.pump();
    let lines = lines_about(&name);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].contains("199 more guest errors"), "{}", lines[1]);
}

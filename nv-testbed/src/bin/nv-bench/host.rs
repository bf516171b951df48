//! What the kernel says about the machine during a run: a process's CPU seconds
//! (`/proc/<pid>/stat`) and memory (`/proc/<pid>/status`), and the load average
//! (`/proc/loadavg`). Parsers apart from the reads.

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds from the text of `/proc/<pid>/stat`.
pub fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// The CPU seconds process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_seconds(&stat).with_context(|| format!("cannot parse {path}: {stat}"))
}

/// A `kB` field (e.g. `VmRSS`, `VmHWM`) from the text of `/proc/<pid>/status`, in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// A `kB` field of process `pid`'s `/proc/<pid>/status`, in MiB.
pub fn status_mib(pid: u32, field: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib = parse_status_kib(&text, field).with_context(|| format!("no {field} in {path}"))?;
    Ok(kib as f64 / 1024.0)
}

/// Whether a spell with these 1-minute load averages at its start and end ran on a busy
/// machine: load above the number of cores.
pub fn busy(load1_start: f64, load1_end: f64, cores: usize) -> bool {
    load1_start.max(load1_end) > cores as f64
}

/// Warns on standard error that a round ran on a busy machine (see [`busy`]).
pub fn warn_if_busy(load1_start: f64, load1_end: f64, cores: usize) {
    if busy(load1_start, load1_end, cores) {
        eprintln!(
            "   WARNING: load {load1_start:.2} -> {load1_end:.2} on {cores} cores: busy machine"
        );
    }
}

/// A report's load section: each round's 1-minute load average at its start and end, with a
/// warning for a round on a busy machine.
pub fn write_loads(
    t: &mut String,
    loads: impl IntoIterator<Item = (f64, f64)>,
    cores: usize,
) -> std::fmt::Result {
    use std::fmt::Write as _;
    writeln!(
        t,
        "\nload (1-minute average, start -> end of round; {cores} cores):"
    )?;
    for (i, (start, end)) in loads.into_iter().enumerate() {
        let warn = if busy(start, end, cores) {
            "  WARNING: busy machine, this round's figures are suspect"
        } else {
            ""
        };
        writeln!(t, "  round {}: {start:.2} -> {end:.2}{warn}", i + 1)?;
    }
    Ok(())
}

/// The 1-minute load average from the text of `/proc/loadavg`.
pub fn parse_load1(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// The machine's 1-minute load average now.
pub fn load1() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    parse_load1(&text).with_context(|| format!("cannot parse /proc/loadavg: {text}"))
}

/// The number of CPUs this process may run on (the "busy machine" threshold for load1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_utime_plus_stime() {
        let stat = "4242 (domain nv) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 130 0 0 20 0 3 0 1000 1 1 ...";
        assert_eq!(parse_cpu_seconds(stat), Some(3.8));
        assert_eq!(parse_cpu_seconds("4242 (x) S 1"), None);
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tdomain-nv\nVmHWM:\t   42316 kB\nVmRSS:\t    6656 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(6656));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(42316));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib("VmRSS:\tlots\n", "VmRSS"), None);
    }

    #[test]
    fn a_spell_is_busy_when_its_load_exceeds_the_cores() {
        assert!(!busy(0.5, 2.0, 2));
        assert!(busy(2.5, 1.0, 2));
        assert!(busy(0.1, 2.1, 2));
    }

    #[test]
    fn load1_is_the_first_field() {
        assert_eq!(parse_load1("0.70 1.16 2.02 1/87 11366\n"), Some(0.7));
        assert_eq!(parse_load1(""), None);
    }
}

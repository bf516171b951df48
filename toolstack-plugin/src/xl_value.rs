//! The grammars of values that reach an xl config. A rendered config quotes its strings, but xl
//! lists hold comma-separated `key=value` items inside quotes (`vif = [ 'bridge=…,mac=…' ]`,
//! `disk = [ '…,target=…' ]`), so a value is only safe if it cannot end its quote, its item or
//! its line. Each check here accepts exactly the values of one kind and says what is wrong
//! otherwise; the spec ([`crate::spec`]) and the command line (`--image`) use them.

/// Longest kernel command line of a PV guest: `MAX_GUEST_CMDLINE` (1024) of Xen's public
/// `xen.h`, less the terminating NUL. The `ip=` nvctl appends to a replica's `extra` counts.
pub const CMDLINE_MAX: usize = 1023;

/// Most memory nvctl gives one domain, MiB (1 TiB).
pub const MEMORY_MAX_MIB: u32 = 1 << 20;

/// Most virtual CPUs nvctl gives one domain (`HVM_MAX_VCPUS` of Xen, which bounds PVH guests).
pub const VCPUS_MAX: u32 = 128;

/// Longest Linux interface name (`IFNAMSIZ` less the NUL).
const IFNAME_MAX: usize = 15;

/// A Dom0 path for xl (`kernel`, `ramdisk`, a disk `target`): absolute, without quotes,
/// backslashes, commas, `=`, control characters or `.`/`..` parts.
pub fn check_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("{s:?} is not an absolute path"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("{s:?} contains a control character ({c:?})"));
    }
    for (c, what) in [
        ('\'', "a quote"),
        ('"', "a quote"),
        ('\\', "a backslash"),
        (',', "a comma"),
        ('=', "`=`"),
    ] {
        if s.contains(c) {
            return Err(format!(
                "{s:?} contains {what}, which xl configs cannot hold in a path"
            ));
        }
    }
    if s.split('/').any(|p| p == ".." || p == ".") {
        return Err(format!(
            "{s:?} has a `.` or `..` part (give the plain path)"
        ));
    }
    Ok(())
}

/// A Dom0 bridge: a Linux interface name: 1..=15 of letters, digits, `-`, `_`, `.`, not `.`
/// or `..`.
pub fn check_bridge(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= IFNAME_MAX
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an interface name (1..={IFNAME_MAX} letters, digits, -, _, .)"
        ))
    }
}

/// A vif MAC: `xx:xx:xx:xx:xx:xx`, unicast, not all zero.
pub fn check_mac(s: &str) -> Result<(), String> {
    let bytes: Vec<Option<u8>> = s
        .split(':')
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect();
    let bytes: Option<Vec<u8>> = bytes.into_iter().collect();
    match bytes {
        Some(b) if b.len() == 6 && b[0] & 1 != 0 => Err(format!(
            "{s:?} is a multicast MAC (want unicast xx:xx:xx:xx:xx:xx)"
        )),
        Some(b) if b.len() == 6 && b.iter().all(|&x| x == 0) => {
            Err(format!("{s:?} is the zero MAC"))
        }
        Some(b) if b.len() == 6 => Ok(()),
        _ => Err(format!("bad MAC {s:?} (want unicast xx:xx:xx:xx:xx:xx)")),
    }
}

/// A kernel command line of at most `max` bytes: printable ASCII without `"` and `\` (xl
/// quotes it as a string).
pub fn check_cmdline(s: &str, max: usize) -> Result<(), String> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("contains a control character ({c:?})"));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
        return Err(format!("contains {c:?} (printable ASCII only)"));
    }
    if s.contains('"') || s.contains('\\') {
        return Err(
            "contains a double quote or a backslash, which xl would have to unquote".into(),
        );
    }
    if s.len() > max {
        return Err(format!(
            "a {}-byte kernel command line is longer than the {max} bytes Xen passes to a PV guest",
            s.len()
        ));
    }
    Ok(())
}

/// Memory of a domain: 1..=[`MEMORY_MAX_MIB`] MiB.
pub fn check_memory(mib: u32) -> Result<(), String> {
    match mib {
        0 => Err("must be > 0 MiB".into()),
        m if m > MEMORY_MAX_MIB => Err(format!("{m} MiB: at most {MEMORY_MAX_MIB} MiB")),
        _ => Ok(()),
    }
}

/// Virtual CPUs of a domain: 1..=[`VCPUS_MAX`].
pub fn check_vcpus(n: u32) -> Result<(), String> {
    match n {
        0 => Err("must be > 0".into()),
        n if n > VCPUS_MAX => Err(format!("{n}: at most {VCPUS_MAX}")),
        _ => Ok(()),
    }
}

/// Highest physical CPU number a `cpus` list may name (Xen's `NR_CPUS` default is 4096).
pub const CPU_MAX: u32 = 4095;

/// Longest XSM security label nvctl accepts.
const SECLABEL_MAX: usize = 255;

/// A list of physical CPUs for xl's `cpus=`: comma-separated numbers `N` and ranges `N-M`
/// (`N <= M`), each at most [`CPU_MAX`]; returns the CPUs it names.
pub fn parse_cpus(s: &str) -> Result<std::collections::BTreeSet<u32>, String> {
    let bad = || format!("{s:?} is not a CPU list (want e.g. `2`, `4-7` or `0,2-3`)");
    let num = |p: &str| -> Result<u32, String> {
        if p.is_empty() || p.len() > 4 || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = p.parse().map_err(|_| bad())?;
        if n > CPU_MAX {
            return Err(format!("CPU {n} in {s:?}: at most {CPU_MAX}"));
        }
        Ok(n)
    };
    let mut set = std::collections::BTreeSet::new();
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("range {part:?} in {s:?} runs backwards"));
        }
        set.extend(lo..=hi);
    }
    Ok(set)
}

/// An XSM (FLASK) security label for xl's `seclabel=`: `user:role:type` or
/// `user:role:type:level`, each part 1 or more letters, digits, `_`, `.`, `-`; at most 255 bytes.
pub fn check_seclabel(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let ok = s.len() <= SECLABEL_MAX
        && (3..=4).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a security label (want user:role:type[:level] of letters, digits, _, ., -)"
        ))
    }
}

/// A vif rate limit for the `rate=` item of an xl vif: `<n><unit>/s` with unit one of `B`,
/// `b` and an optional `K`, `M` or `G` before it, then optionally `@<n>` and `s`, `ms` or `us`
/// (the replenishment interval), as `10Mb/s` or `250KB/s@20ms`.
pub fn check_rate(s: &str) -> Result<(), String> {
    fn number_then<'a>(s: &'a str, units: &[&str]) -> Option<&'a str> {
        let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 12 {
            return None;
        }
        let rest = &s[digits..];
        units.iter().find_map(|u| rest.strip_prefix(u))
    }
    let (rate, interval) = match s.split_once('@') {
        Some((r, i)) => (r, Some(i)),
        None => (s, None),
    };
    let rate_units = ["KB/s", "Kb/s", "MB/s", "Mb/s", "GB/s", "Gb/s", "B/s", "b/s"];
    let rate_ok = number_then(rate, &rate_units) == Some("");
    let interval_ok = interval.is_none_or(|i| number_then(i, &["ms", "us", "s"]) == Some(""));
    if rate_ok && interval_ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a vif rate (want e.g. `10Mb/s` or `250KB/s@20ms`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(check_path("/srv/nv/debian/redis-7.2.img").is_ok());
        assert!(check_path("/srv/with space/ok.img").is_ok());
        for bad in [
            "srv/x",
            "",
            "/a/../b",
            "/a/./b",
            "/a'b",
            "/a\"b",
            "/a,b",
            "/a=b",
            "/a\\b",
            "/a\nb",
            "/a\u{9b}b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn interface_names_macs_cmdlines_and_sizes() {
        assert!(check_bridge("xenbr0").is_ok() && check_bridge("vlan.10").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "br,script=x",
            "br 0",
            "a/b",
            "sixteen-chars-xx",
        ] {
            assert!(check_bridge(bad).is_err(), "{bad:?}");
        }
        assert!(check_mac("00:16:3e:c0:00:0A").is_ok());
        for bad in [
            "00:00:00:00:00:00",
            "01:00:5e:00:00:01",
            "00:16:3e:c0:00",
            "00:16:3e:c0:00:0g",
        ] {
            assert!(check_mac(bad).is_err(), "{bad:?}");
        }
        assert!(check_cmdline("console=hvc0 root=/dev/xvda ro", 1023).is_ok());
        assert!(check_cmdline("a\nb", 1023).is_err());
        assert!(check_cmdline("a\"b", 1023).is_err());
        assert!(check_cmdline(&"x".repeat(1024), 1023).is_err());
        assert!(check_cmdline(&"x".repeat(1023), 1023).is_ok());
        assert!(check_memory(0).is_err() && check_memory(MEMORY_MAX_MIB + 1).is_err());
        assert!(check_vcpus(0).is_err() && check_vcpus(VCPUS_MAX + 1).is_err());
        assert!(check_memory(256).is_ok() && check_vcpus(VCPUS_MAX).is_ok());
    }

    #[test]
    fn cpu_lists_seclabels_and_rates() {
        assert_eq!(
            parse_cpus("0,2-3").unwrap().into_iter().collect::<Vec<_>>(),
            [0, 2, 3]
        );
        assert_eq!(parse_cpus("7").unwrap().len(), 1);
        for bad in [
            "", "all", "1,", "3-1", "-1", "1-", "0x1", "4096", "1 2", "1\n", "^1", "node:0",
        ] {
            assert!(parse_cpus(bad).is_err(), "{bad:?}");
        }
        assert!(check_seclabel("system_u:system_r:domU_t").is_ok());
        assert!(check_seclabel("system_u:system_r:domU_t:s0").is_ok());
        for bad in [
            "",
            "domU_t",
            "a:b",
            "a::c",
            "a:b:c:d:e",
            "a:b:c,d",
            "a:b:c\"",
            "a:b:c d",
        ] {
            assert!(check_seclabel(bad).is_err(), "{bad:?}");
        }
        for good in [
            "10Mb/s",
            "250KB/s@20ms",
            "1000000B/s",
            "1Gb/s@1s",
            "5Kb/s@50us",
        ] {
            assert!(check_rate(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "10",
            "10Mb",
            "Mb/s",
            "10Mb/s@",
            "10Mb/s@20",
            "10Mb/s,script=x",
            "10Tb/s",
            "1 Mb/s",
        ] {
            assert!(check_rate(bad).is_err(), "{bad:?}");
        }
    }
}

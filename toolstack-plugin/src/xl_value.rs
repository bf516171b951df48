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
}

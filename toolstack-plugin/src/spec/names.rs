//! The grammars of names, MACs and PCI addresses in a spec.

use crate::xl_value;
use nv_schema::name::check_name;

/// True if `s` is a unicast, non-zero MAC `xx:xx:xx:xx:xx:xx` ([`xl_value::check_mac`]).
pub fn valid_mac(s: &str) -> bool {
    xl_value::check_mac(s).is_ok()
}

/// Longest group, domain, replica or port name in a spec (leaves room for `<group>-` and
/// `-g<generation>` within the domain-nv config's limit).
pub const SPEC_NAME_MAX: usize = 48;

/// True if `s` is a valid group / domain / replica name: a domain-nv config name (letters,
/// digits, `-`, `_`) of 1..=[`SPEC_NAME_MAX`] chars, not starting with `-` (it is also a
/// command-line argument).
pub fn valid_name(s: &str) -> bool {
    check_name(s, SPEC_NAME_MAX).is_ok() && !s.starts_with('-')
}

/// True if `s` ends like a replacement instance name (`-g<digits>`), reserved for nvctl.
pub(super) fn generation_suffix(s: &str) -> bool {
    s.rsplit_once("-g")
        .is_some_and(|(_, d)| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

/// True if `s` is a PCI BDF `dddd:bb:dd.f`.
pub(super) fn valid_bdf(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && hex(0..4)
        && hex(5..7)
        && hex(8..10)
        && (b'0'..=b'7').contains(&b[11])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{mac_for, majority_quorum};
    use std::net::Ipv4Addr;

    #[test]
    fn names_macs_and_bdfs() {
        assert!(valid_name("web-1") && !valid_name("-x") && !valid_name("a b") && !valid_name(""));
        assert!(
            generation_suffix("r0-g12") && !generation_suffix("r0-g") && !generation_suffix("big")
        );
        assert!(
            valid_mac("00:16:3e:aa:bb:cc")
                && !valid_mac("01:16:3e:aa:bb:cc")
                && !valid_mac("00:16:3e:aa:bb")
        );
        assert!(valid_bdf("0000:03:00.0") && !valid_bdf("0000:03:00.8") && !valid_bdf("03:00.0"));
        assert_eq!(mac_for(Ipv4Addr::new(10, 77, 1, 2)), "00:16:3e:4d:01:02");
        assert_eq!(majority_quorum(3), 2);
        assert_eq!(majority_quorum(4), 3);
    }
}

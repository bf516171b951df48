//! Names checked in one place: replica and service names (they become xenstore path segments,
//! vif names and domain names) and network interface names.

/// Longest replica or service name in a domain-nv config.
pub const CONFIG_NAME_MAX: usize = 64;
/// Longest network interface name Linux accepts (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;

/// Checks that `name` is 1..=`max_len` characters of `[A-Za-z0-9_-]`; the error says so.
pub fn check_name(name: &str, max_len: usize) -> Result<(), String> {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.len() > max_len || !chars_ok {
        return Err(format!(
            "{name:?} must be 1..={max_len} characters of [A-Za-z0-9_-]"
        ));
    }
    Ok(())
}

/// Checks that `name` can name a network interface: 1..=[`IFNAME_MAX`] bytes without '/'.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > IFNAME_MAX || name.contains('/') {
        return Err(format!(
            "interface name {name:?} must be 1..={IFNAME_MAX} bytes without '/'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_interface_names() {
        assert!(check_name("r0-g1_x", CONFIG_NAME_MAX).is_ok());
        assert!(check_name("", CONFIG_NAME_MAX).is_err());
        assert!(check_name("a b", CONFIG_NAME_MAX).is_err());
        assert!(check_name(&"x".repeat(65), CONFIG_NAME_MAX).is_err());
        assert!(check_name(&"x".repeat(48), 48).is_ok());
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("this-name-is-too-long").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("").is_err());
    }
}

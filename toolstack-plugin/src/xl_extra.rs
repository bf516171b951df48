//! `xl-extra`: other xl.cfg keys a spec passes through to a domain's config. Only the keys of
//! [`ALLOWED`] are accepted, each with the grammar of its value ([`Grammar`]): numbers within
//! bounds, a word from a fixed set, a boolean. Keys nvctl renders itself (name, kernel, memory,
//! vif, disk, pci, ...) and keys that name devices, scripts or files are not in the list. The
//! three lifecycle actions (`on_poweroff`, `on_reboot`, `on_crash`) are the exception: nvctl
//! renders them with defaults, which `xl-extra` replaces.

use crate::xl_value::MEMORY_MAX_MIB;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A value of an `xl-extra` key as written in the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum XlScalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Any other scalar.
    Text(String),
}

impl fmt::Display for XlScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XlScalar::Bool(b) => write!(f, "{b}"),
            XlScalar::Int(n) => write!(f, "{n}"),
            XlScalar::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The `xl-extra` map of one domain: xl key -> value.
pub type XlExtra = BTreeMap<String, XlScalar>;

/// The grammar of one key's value.
#[derive(Debug, Clone, Copy)]
pub enum Grammar {
    /// An integer in `min..=max`, rendered bare.
    Number {
        /// Least value.
        min: i64,
        /// Greatest value.
        max: i64,
    },
    /// One of a fixed set of words, rendered quoted.
    Word(&'static [&'static str]),
    /// `true`/`false` (or 1/0), rendered as 1/0.
    Bool,
}

/// An xl.cfg key `xl-extra` may set, and its grammar.
#[derive(Debug, Clone, Copy)]
pub struct ExtraKey {
    /// The xl.cfg key.
    pub name: &'static str,
    /// Its value's grammar.
    pub grammar: Grammar,
}

/// What xl does when a domain powers off, reboots or crashes (xl.cfg `on_*`).
const ACTIONS: &[&str] = &[
    "destroy",
    "restart",
    "rename-restart",
    "preserve",
    "coredump-destroy",
    "coredump-restart",
    "soft-reset",
];

const fn number(name: &'static str, min: i64, max: i64) -> ExtraKey {
    ExtraKey {
        name,
        grammar: Grammar::Number { min, max },
    }
}

const fn word(name: &'static str, words: &'static [&'static str]) -> ExtraKey {
    ExtraKey {
        name,
        grammar: Grammar::Word(words),
    }
}

/// The keys `xl-extra` may set.
pub const ALLOWED: &[ExtraKey] = &[
    word("on_poweroff", ACTIONS),
    word("on_reboot", ACTIONS),
    word("on_crash", ACTIONS),
    word("on_watchdog", ACTIONS),
    number("cpu_weight", 1, 65535),
    number("cap", 0, 12800),
    number("maxmem", 1, MEMORY_MAX_MIB as i64),
    number("max_grant_frames", 1, 4096),
    number("max_maptrack_frames", 0, 1 << 20),
    word(
        "tsc_mode",
        &["default", "always_emulate", "native", "native_paravirt"],
    ),
    ExtraKey {
        name: "localtime",
        grammar: Grammar::Bool,
    },
    number("rtc_timeoffset", -(1 << 31) + 1, (1 << 31) - 1),
];

/// The lifecycle actions nvctl renders itself, with their defaults; `xl-extra` replaces them.
pub const ACTION_DEFAULTS: [(&str, &str); 3] = [
    ("on_poweroff", "destroy"),
    ("on_reboot", "restart"),
    ("on_crash", "preserve"),
];

/// The value of `key` as it goes into an xl config (`256`, `"destroy"`, `1`), or why `key` or
/// its value is refused.
pub fn render_value(key: &str, value: &XlScalar) -> Result<String, String> {
    let Some(k) = ALLOWED.iter().find(|k| k.name == key) else {
        let names: Vec<&str> = ALLOWED.iter().map(|k| k.name).collect();
        return Err(format!(
            "{key:?} is not an xl key nvctl passes through (allowed: {})",
            names.join(", ")
        ));
    };
    match (k.grammar, value) {
        // xl's syntax has no sign on bare numbers; xl reads a quoted one as well
        (Grammar::Number { min, max }, XlScalar::Int(n)) if (min..=max).contains(n) => {
            Ok(if *n < 0 {
                format!("\"{n}\"")
            } else {
                n.to_string()
            })
        }
        (Grammar::Number { min, max }, v) => Err(format!("{v} is not an integer in {min}..={max}")),
        (Grammar::Word(words), XlScalar::Text(w)) if words.contains(&w.as_str()) => {
            Ok(format!("\"{w}\""))
        }
        (Grammar::Word(words), v) => Err(format!("{v} is not one of {}", words.join(", "))),
        (Grammar::Bool, XlScalar::Bool(b)) => Ok(u8::from(*b).to_string()),
        (Grammar::Bool, XlScalar::Int(n @ (0 | 1))) => Ok(n.to_string()),
        (Grammar::Bool, v) => Err(format!("{v} is not true or false")),
    }
}

/// The `key = value` lines of `extra` but the lifecycle actions, in key order (keys and values
/// already checked by [`render_value`]; a refused one is left out).
pub fn other_lines(extra: &XlExtra) -> String {
    extra
        .iter()
        .filter(|(k, _)| !ACTION_DEFAULTS.iter().any(|(a, _)| a == k))
        .filter_map(|(k, v)| render_value(k, v).ok().map(|v| format!("{k} = {v}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of the lifecycle action `key` (`on_crash`): `extra`'s if set, else the default.
pub fn action(extra: &XlExtra, key: &str) -> String {
    extra
        .get(key)
        .and_then(|v| render_value(key, v).ok())
        .or_else(|| {
            ACTION_DEFAULTS
                .iter()
                .find(|(a, _)| *a == key)
                .map(|(_, d)| format!("\"{d}\""))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_follow_their_grammars() {
        let w = |s: &str| XlScalar::Text(s.into());
        assert_eq!(
            render_value("cpu_weight", &XlScalar::Int(512)),
            Ok("512".into())
        );
        assert!(render_value("cpu_weight", &XlScalar::Int(0)).is_err());
        assert!(render_value("cpu_weight", &w("512")).is_err());
        assert_eq!(
            render_value("on_crash", &w("destroy")),
            Ok("\"destroy\"".into())
        );
        assert!(render_value("on_crash", &w("destroy\"\nvif = [")).is_err());
        assert_eq!(
            render_value("localtime", &XlScalar::Bool(true)),
            Ok("1".into())
        );
        assert_eq!(
            render_value("rtc_timeoffset", &XlScalar::Int(-3600)),
            Ok("\"-3600\"".into())
        );
        for refused in [
            "name",
            "kernel",
            "vif",
            "disk",
            "pci",
            "bootloader",
            "device_model_override",
            "script",
        ] {
            assert!(render_value(refused, &w("x")).is_err(), "{refused}");
        }
        let mut extra = XlExtra::new();
        extra.insert("on_reboot".into(), w("destroy"));
        extra.insert("cap".into(), XlScalar::Int(50));
        assert_eq!(other_lines(&extra), "cap = 50");
        assert_eq!(action(&extra, "on_reboot"), "\"destroy\"");
        assert_eq!(action(&extra, "on_crash"), "\"preserve\"");
    }
}

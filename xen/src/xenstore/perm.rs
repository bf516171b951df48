//! Xenstore permissions: [`Perm`] (a domain and its [`Access`]) and their text form.

use std::fmt;
use std::str::FromStr;

use crate::{DomId, Error, Result};

/// The access a [`Perm`] grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// True if reading is allowed.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// True if writing is allowed.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One node permission as xenstored spells it: a letter then a domid (`"n0"`, `"r1"`, `"b2"`).
/// In a node's permission list the first entry names the owner (full access) and the access of
/// every domain not listed; later entries give specific domains their access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: DomId,
    /// Its access.
    pub access: Access,
}

impl Perm {
    /// A permission entry.
    pub fn new(domid: DomId, access: Access) -> Perm {
        Perm { domid, access }
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        };
        write!(f, "{c}{}", self.domid)
    }
}

impl FromStr for Perm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Perm> {
        let bad = || Error::InvalidArgument(format!("bad permission {s:?}"));
        let mut chars = s.chars();
        let access = match chars.next() {
            Some('n') => Access::None,
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('b') => Access::Both,
            _ => return Err(bad()),
        };
        let rest = chars.as_str();
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let domid = rest.parse::<DomId>().map_err(|_| bad())?;
        Ok(Perm { domid, access })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_strings() {
        assert_eq!("r1".parse::<Perm>().unwrap(), Perm::new(1, Access::Read));
        assert_eq!("b65535".parse::<Perm>().unwrap().to_string(), "b65535");
        for bad in ["", "x1", "r", "r-1", "r65536", "rr1", "n 1"] {
            assert!(bad.parse::<Perm>().is_err(), "{bad}");
        }
    }
}

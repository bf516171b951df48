//! The error names xenstored sends in an `XS_ERROR` reply (`xsd_errors` of `xs_wire.h`), as
//! one enum shared by the client ([`crate::Error::Xenstore`]) and the simulated xenstored.

use std::fmt;

/// An error xenstored reports: one entry of `xsd_errors`, or [`XsErrno::Unknown`] for a name
/// that is not in the table (libxenstore reads such a name as `EINVAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XsErrno {
    /// `EINVAL`: malformed request (bad path, bad argument).
    Einval,
    /// `EACCES`: the node's permissions forbid the access.
    Eacces,
    /// `EEXIST`: already exists (e.g. the same watch registered twice).
    Eexist,
    /// `EISDIR`: is a directory.
    Eisdir,
    /// `ENOENT`: no such node (or transaction, or watch).
    Enoent,
    /// `ENOMEM`: out of memory.
    Enomem,
    /// `ENOSPC`: no space (a quota is reached).
    Enospc,
    /// `EIO`: I/O error.
    Eio,
    /// `ENOTEMPTY`: directory not empty.
    Enotempty,
    /// `ENOSYS`: the message type is not implemented.
    Enosys,
    /// `EROFS`: read-only.
    Erofs,
    /// `EBUSY`: busy (e.g. a transaction started inside a transaction).
    Ebusy,
    /// `EAGAIN`: the transaction conflicted; run it again.
    Eagain,
    /// `EISCONN`: already connected.
    Eisconn,
    /// `E2BIG`: too big (e.g. too many nodes in a transaction).
    E2big,
    /// `EPERM`: operation not permitted.
    Eperm,
    /// A name that is not in `xsd_errors`.
    Unknown,
}

impl XsErrno {
    /// Every entry of `xsd_errors`, in the header's order ([`XsErrno::Unknown`] is not one).
    pub const ALL: [XsErrno; 16] = [
        XsErrno::Einval,
        XsErrno::Eacces,
        XsErrno::Eexist,
        XsErrno::Eisdir,
        XsErrno::Enoent,
        XsErrno::Enomem,
        XsErrno::Enospc,
        XsErrno::Eio,
        XsErrno::Enotempty,
        XsErrno::Enosys,
        XsErrno::Erofs,
        XsErrno::Ebusy,
        XsErrno::Eagain,
        XsErrno::Eisconn,
        XsErrno::E2big,
        XsErrno::Eperm,
    ];

    /// The name on the wire (`"ENOENT"`, ...); `"EUNKNOWN"` for [`XsErrno::Unknown`], a name
    /// no xenstored sends.
    pub fn as_str(self) -> &'static str {
        match self {
            XsErrno::Einval => "EINVAL",
            XsErrno::Eacces => "EACCES",
            XsErrno::Eexist => "EEXIST",
            XsErrno::Eisdir => "EISDIR",
            XsErrno::Enoent => "ENOENT",
            XsErrno::Enomem => "ENOMEM",
            XsErrno::Enospc => "ENOSPC",
            XsErrno::Eio => "EIO",
            XsErrno::Enotempty => "ENOTEMPTY",
            XsErrno::Enosys => "ENOSYS",
            XsErrno::Erofs => "EROFS",
            XsErrno::Ebusy => "EBUSY",
            XsErrno::Eagain => "EAGAIN",
            XsErrno::Eisconn => "EISCONN",
            XsErrno::E2big => "E2BIG",
            XsErrno::Eperm => "EPERM",
            XsErrno::Unknown => "EUNKNOWN",
        }
    }

    /// The entry named `name` on the wire; [`XsErrno::Unknown`] if `xsd_errors` has none.
    pub fn from_wire(name: &str) -> XsErrno {
        XsErrno::ALL
            .into_iter()
            .find(|e| e.as_str() == name)
            .unwrap_or(XsErrno::Unknown)
    }
}

impl fmt::Display for XsErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_unknown_names_are_named() {
        for e in XsErrno::ALL {
            assert_eq!(XsErrno::from_wire(e.as_str()), e);
        }
        assert_eq!(XsErrno::from_wire("EWHATEVER"), XsErrno::Unknown);
        assert_eq!(XsErrno::from_wire("EUNKNOWN"), XsErrno::Unknown);
        assert_eq!(XsErrno::from_wire(""), XsErrno::Unknown);
        assert_eq!(XsErrno::Enoent.to_string(), "ENOENT");
    }
}

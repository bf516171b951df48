//! Why a command failed, as far as automation cares: an invalid spec or command-line value, a
//! failing `xl`, a wait that timed out, a group/replica/domain that does not exist. Each kind
//! has its own exit status ([`Failure::exit_code`]); any other error exits with 1 and a usage
//! error (clap) with 2.
//!
//! An error of a kind is a [`Failed`] somewhere in the `anyhow` chain: context added on the way
//! up keeps it, [`reword`] carries it over to a re-worded error.

use std::fmt;

/// A kind of failure with its own exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The spec or a command-line value is invalid (exit 3).
    Invalid,
    /// `xl` failed or could not be run (exit 4).
    Xl,
    /// A bounded wait timed out (exit 5).
    Timeout,
    /// The group, replica or NV domain does not exist (exit 6).
    NotFound,
}

impl Failure {
    /// The process exit status of this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::Invalid => 3,
            Failure::Xl => 4,
            Failure::Timeout => 5,
            Failure::NotFound => 6,
        }
    }

    /// An error of this kind saying `message`.
    pub fn error(self, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failed {
            kind: self,
            message: message.into(),
        })
    }

    /// The kind of `e`: that of the outermost [`Failed`] in its chain, if any.
    pub fn of(e: &anyhow::Error) -> Option<Failure> {
        e.chain()
            .find_map(|c| c.downcast_ref::<Failed>())
            .map(|f| f.kind)
    }
}

/// An error of a known [`Failure`] kind.
#[derive(Debug)]
pub struct Failed {
    /// Its kind.
    pub kind: Failure,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// `e` re-worded as `message` (which should tell what `e` said), keeping its kind.
pub fn reword(e: &anyhow::Error, message: String) -> anyhow::Error {
    match Failure::of(e) {
        Some(k) => k.error(message),
        None => anyhow::Error::msg(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kinds_survive_context_and_rewording() {
        let e = Failure::Timeout.error("timed out");
        let e = Err::<(), _>(e).context("replacing r1").unwrap_err();
        assert_eq!(Failure::of(&e), Some(Failure::Timeout));
        assert_eq!(format!("{e:#}"), "replacing r1: timed out");
        let r = reword(&e, format!("patch stopped at r1: {e:#}"));
        assert_eq!(Failure::of(&r), Some(Failure::Timeout));
        assert_eq!(Failure::of(&anyhow::anyhow!("plain")), None);
        let codes: Vec<i32> = [
            Failure::Invalid,
            Failure::Xl,
            Failure::Timeout,
            Failure::NotFound,
        ]
        .iter()
        .map(|k| k.exit_code())
        .collect();
        assert_eq!(codes, [3, 4, 5, 6]);
    }
}

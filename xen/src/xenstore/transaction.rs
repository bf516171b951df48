//! Transactions: [`Transaction`], and [`Xenstore::transaction`], which retries on a conflict.

use std::time::Duration;

use super::{to_string, unexpected, Perm, TxId, Xenstore, NO_TX, TRANSACTION_RETRIES};
use crate::xs_wire::{self, MsgType, Reply};
use crate::{Error, Result, XsErrno};

impl Xenstore {
    /// Starts a transaction by hand; prefer [`Xenstore::transaction`], which retries.
    pub fn transaction_start(&self) -> Result<Transaction<'_>> {
        let id = match self.request(MsgType::TransactionStart, NO_TX, b"\0".to_vec())? {
            Reply::Text(s) => s
                .parse::<u32>()
                .map_err(|_| Error::Protocol(format!("bad tx id {s:?}")))?,
            r => return Err(unexpected(r)),
        };
        if id == 0 {
            return Err(Error::Protocol("transaction id 0".into()));
        }
        Ok(Transaction {
            xs: self,
            id: TxId(id),
        })
    }

    /// Runs `f` inside a transaction and commits; on a conflict (`EAGAIN` at commit or from any
    /// operation inside) runs `f` again, at most [`TRANSACTION_RETRIES`] times. An error from
    /// `f` aborts the transaction and is returned.
    pub fn transaction<T>(&self, mut f: impl FnMut(&Transaction<'_>) -> Result<T>) -> Result<T> {
        for attempt in 0..TRANSACTION_RETRIES {
            let tx = self.transaction_start()?;
            let outcome = f(&tx);
            let end = match outcome {
                Ok(v) => tx.commit().map(|()| v),
                Err(e) => {
                    // Abort; the conflict (if any) is reported by `e` itself.
                    let _ = tx.abort();
                    Err(e)
                }
            };
            match end {
                Err(e) if e.xenstore_errno() == Some(XsErrno::Eagain) => backoff(attempt),
                other => return other,
            }
        }
        Err(Error::TooManyRetries(TRANSACTION_RETRIES))
    }
}

/// Short randomised pause between transaction attempts, so contending writers spread out.
fn backoff(attempt: u32) {
    // The clock's nanoseconds are jitter enough to separate two contending clients.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let nanos = now.subsec_nanos() ^ std::process::id().rotate_left(attempt);
    let cap_us = 50u64 << attempt.min(6);
    std::thread::sleep(Duration::from_micros(u64::from(nanos) % cap_us));
}

/// An open transaction; operations see a private snapshot until commit.
pub struct Transaction<'a> {
    xs: &'a Xenstore,
    id: TxId,
}

impl Transaction<'_> {
    /// The transaction id xenstored assigned.
    pub fn id(&self) -> u32 {
        self.id.0
    }

    /// [`Xenstore::read`] inside the transaction.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.xs.op_read(self.id, path)
    }

    /// [`Xenstore::read_string`] inside the transaction.
    pub fn read_string(&self, path: &str) -> Result<String> {
        to_string(self.read(path)?)
    }

    /// [`Xenstore::try_read`] inside the transaction.
    pub fn try_read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.xs.op_try_read(self.id, path)
    }

    /// [`Xenstore::write`] inside the transaction.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.xs.op_write(self.id, path, value.as_ref())
    }

    /// [`Xenstore::mkdir`] inside the transaction.
    pub fn mkdir(&self, path: &str) -> Result<()> {
        self.xs
            .expect_ok(MsgType::Mkdir, self.id, xs_wire::join_strings(&[path]))
    }

    /// [`Xenstore::rm`] inside the transaction.
    pub fn rm(&self, path: &str) -> Result<()> {
        self.xs
            .expect_ok(MsgType::Rm, self.id, xs_wire::join_strings(&[path]))
    }

    /// [`Xenstore::directory`] inside the transaction.
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.xs.op_list(MsgType::Directory, self.id, path)
    }

    /// [`Xenstore::get_perms`] inside the transaction.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>> {
        self.xs.op_get_perms(self.id, path)
    }

    /// [`Xenstore::set_perms`] inside the transaction.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<()> {
        self.xs.op_set_perms(self.id, path, perms)
    }

    /// Commits; `Err(Error::Xenstore(XsErrno::Eagain))` on a conflict.
    pub fn commit(self) -> Result<()> {
        self.xs
            .expect_ok(MsgType::TransactionEnd, self.id, b"T\0".to_vec())
    }

    /// Abandons the transaction's changes.
    pub fn abort(self) -> Result<()> {
        self.xs
            .expect_ok(MsgType::TransactionEnd, self.id, b"F\0".to_vec())
    }
}

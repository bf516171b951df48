//! Netback's xenstore connection, counting the requests it sends, so that the xenstore work a
//! watch event costs stays measurable (one guest's key changes must not cost a round trip per
//! vif: see [`crate::backend`]).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use xen::xenstore::{Transaction, WatchEvent, Xenstore};

/// A [`Xenstore`] that counts its requests (a transaction counts its start and its commit).
pub struct Store {
    xs: Xenstore,
    requests: AtomicU64,
}

impl Store {
    /// Wraps a connection.
    pub fn new(xs: Xenstore) -> Self {
        Store {
            xs,
            requests: AtomicU64::new(0),
        }
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// [`Xenstore::get_domain_path`].
    pub fn get_domain_path(&self, domid: xen::DomId) -> xen::Result<String> {
        self.count();
        self.xs.get_domain_path(domid)
    }

    /// [`Xenstore::try_read`].
    pub fn try_read(&self, path: &str) -> xen::Result<Option<Vec<u8>>> {
        self.count();
        self.xs.try_read(path)
    }

    /// [`Xenstore::write`].
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> xen::Result<()> {
        self.count();
        self.xs.write(path, value)
    }

    /// [`Xenstore::rm`].
    pub fn rm(&self, path: &str) -> xen::Result<()> {
        self.count();
        self.xs.rm(path)
    }

    /// [`Xenstore::directory`].
    pub fn directory(&self, path: &str) -> xen::Result<Vec<String>> {
        self.count();
        self.xs.directory(path)
    }

    /// [`Xenstore::watch`].
    pub fn watch(&self, path: &str, token: &str) -> xen::Result<()> {
        self.count();
        self.xs.watch(path, token)
    }

    /// [`Xenstore::unwatch`].
    pub fn unwatch(&self, path: &str, token: &str) -> xen::Result<()> {
        self.count();
        self.xs.unwatch(path, token)
    }

    /// [`Xenstore::transaction`] (its start and commit counted, not the operations inside).
    pub fn transaction<T>(
        &self,
        f: impl FnMut(&Transaction<'_>) -> xen::Result<T>,
    ) -> xen::Result<T> {
        self.count();
        self.count();
        self.xs.transaction(f)
    }

    /// [`Xenstore::try_next_watch_event`] (a local queue: no request).
    pub fn try_next_watch_event(&self) -> xen::Result<Option<WatchEvent>> {
        self.xs.try_next_watch_event()
    }
}

impl AsFd for Store {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.xs.as_fd()
    }
}

//! The xenstore as nvctl needs it: a small [`Store`] trait, implemented by the real client
//! [`xen::xenstore::Xenstore`] and by an in-memory [`MemStore`] (unit tests), and chunked values
//! for texts above the xenstore payload limit.
//!
//! Chunk layout (used for the domain-nv config at `/local/domain/<nv-domid>/data/domain-nv-config`
//! and for nvctl's copy of the group spec). A xenstore message carries at most 4096 bytes
//! (`XENSTORE_PAYLOAD_MAX`), and a write's payload is the path, a NUL and the value. So:
//! - if `path + NUL + text` fits in 4096 bytes, the text is the node's value itself;
//! - otherwise the text is cut (at UTF-8 boundaries) into pieces of at most [`nv_schema::handoff::CHUNK_SIZE`] bytes,
//!   written to `<path>/chunk/0`, `<path>/chunk/1`, ...; then, last, `<path>` gets the header
//!   `#nvctl-chunked <count> <total-bytes>`; then chunks left over from a longer old text are
//!   removed.
//!
//! A reader watches `<path>`; when the value starts with [`nv_schema::handoff::CHUNK_HEADER`] it concatenates
//! `chunk/0..count` and checks the length against `total-bytes` (on a mismatch the writer is
//! still at work: wait for the next watch event and read again). `#` starts a YAML comment, so
//! a header can never be mistaken for a config.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use xen::xenstore::Xenstore;

/// `XENSTORE_PAYLOAD_MAX`: the largest payload of one xenstore message.
pub const PAYLOAD_MAX: usize = 4096;

/// The xenstore operations nvctl uses. Paths are absolute (`/local/domain/5/...`).
pub trait Store {
    /// The value of a node, None if it does not exist.
    fn read(&self, path: &str) -> Result<Option<String>>;
    /// Write a node (creating parents).
    fn write(&self, path: &str, value: &str) -> Result<()>;
    /// Names of a node's children (empty if it has none or does not exist).
    fn directory(&self, path: &str) -> Result<Vec<String>>;
    /// Remove a node and everything below it (no error if absent).
    fn rm(&self, path: &str) -> Result<()>;
    /// Block until a node at or below `path` changes or `timeout` passes; false only if nothing
    /// changed (true may be spurious: callers re-check their condition).
    fn watch(&self, path: &str, timeout: Duration) -> Result<bool>;
}

/// An in-memory store (for tests): nodes by path, and a log of changed paths that wakes
/// watchers.
#[derive(Default)]
pub struct MemStore {
    state: Mutex<MemState>,
    changed: Condvar,
}

#[derive(Default)]
struct MemState {
    /// Value of every node written (parents exist implicitly).
    nodes: BTreeMap<String, String>,
    /// Recent changes as (sequence number, path), oldest first.
    log: Vec<(u64, String)>,
    /// Sequence number of the last change.
    seq: u64,
}

impl MemState {
    fn touch(&mut self, path: &str) {
        self.seq += 1;
        self.log.push((self.seq, path.to_string()));
        if self.log.len() > 4096 {
            self.log.drain(..2048);
        }
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn below(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
        || prefix == "/"
}

impl Store for MemStore {
    fn read(&self, path: &str) -> Result<Option<String>> {
        let g = self.lock();
        Ok(g.nodes
            .get(path)
            .cloned()
            .or_else(|| g.nodes.keys().any(|k| below(k, path)).then(String::new)))
    }

    fn write(&self, path: &str, value: &str) -> Result<()> {
        let mut g = self.lock();
        g.nodes.insert(path.to_string(), value.to_string());
        g.touch(path);
        self.changed.notify_all();
        Ok(())
    }

    fn directory(&self, path: &str) -> Result<Vec<String>> {
        let g = self.lock();
        let pre = format!("{}/", path.trim_end_matches('/'));
        let v: std::collections::BTreeSet<String> = g
            .nodes
            .keys()
            .filter_map(|k| k.strip_prefix(&pre))
            .map(|r| r.split('/').next().unwrap_or(r).to_string())
            .collect();
        Ok(v.into_iter().collect())
    }

    fn rm(&self, path: &str) -> Result<()> {
        let mut g = self.lock();
        g.nodes.retain(|k, _| !below(k, path));
        g.touch(path);
        self.changed.notify_all();
        Ok(())
    }

    fn watch(&self, path: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        let start = g.seq;
        loop {
            if g.log
                .iter()
                .any(|(n, p)| *n > start && (below(p, path) || below(path, p)))
            {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            g = self
                .changed
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Tokens of [`Store::watch`] on a real xenstore, unique per process.
static WATCH_TOKEN: AtomicU64 = AtomicU64::new(0);

/// The real xenstore (and the simulated xenstored of [`xen::sim::SimXen`]).
impl Store for Xenstore {
    fn read(&self, path: &str) -> Result<Option<String>> {
        let v = Xenstore::try_read(self, path).with_context(|| format!("xenstore read {path}"))?;
        Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    fn write(&self, path: &str, value: &str) -> Result<()> {
        Xenstore::write(self, path, value).with_context(|| format!("xenstore write {path}"))
    }

    fn directory(&self, path: &str) -> Result<Vec<String>> {
        match Xenstore::directory(self, path) {
            Err(e) if e.is_enoent() => Ok(Vec::new()),
            r => r.with_context(|| format!("xenstore directory {path}")),
        }
    }

    fn rm(&self, path: &str) -> Result<()> {
        match Xenstore::rm(self, path) {
            Err(e) if e.is_enoent() => Ok(()),
            r => r.with_context(|| format!("xenstore rm {path}")),
        }
    }

    /// Registers a watch with a fresh token, skips the event xenstored fires on registration,
    /// waits for the next one (events of other tokens are dropped), then unregisters.
    fn watch(&self, path: &str, timeout: Duration) -> Result<bool> {
        let token = format!(
            "nvctl-{}-{}",
            std::process::id(),
            WATCH_TOKEN.fetch_add(1, Ordering::Relaxed)
        );
        Xenstore::watch(self, path, &token).with_context(|| format!("xenstore watch {path}"))?;
        let deadline = Instant::now() + timeout;
        let mut registered = false;
        let changed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wait_watch_event(left) {
                Err(e) => return Err(e).context("xenstore watch"),
                Ok(None) => break false,
                Ok(Some(ev)) if ev.token != token => continue,
                Ok(Some(_)) if !registered => registered = true,
                Ok(Some(_)) => break true,
            }
        };
        Xenstore::unwatch(self, path, &token)
            .with_context(|| format!("xenstore unwatch {path}"))?;
        Ok(changed)
    }
}

/// Write `text` at `path`, chunked if it does not fit in one write (layout in the module docs).
pub fn write_blob(store: &dyn Store, path: &str, text: &str) -> Result<()> {
    let chunks = format!("{path}/chunk");
    if path.len() + 1 + text.len() <= PAYLOAD_MAX {
        store.write(path, text)?;
        return store.rm(&chunks);
    }
    let pieces = nv_schema::handoff::split_chunks(text);
    for (i, p) in pieces.iter().enumerate() {
        store.write(&format!("{chunks}/{i}"), p)?;
    }
    store.write(
        path,
        &nv_schema::handoff::chunk_header(pieces.len(), text.len()),
    )?;
    for stale in store.directory(&chunks)? {
        if stale.parse::<usize>().map_or(true, |i| i >= pieces.len()) {
            store.rm(&format!("{chunks}/{stale}"))?;
        }
    }
    Ok(())
}

/// Read a text written by [`write_blob`]; None if `path` does not exist.
pub fn read_blob(store: &dyn Store, path: &str) -> Result<Option<String>> {
    let Some(v) = store.read(path)? else {
        return Ok(None);
    };
    let Some((count, total)) =
        nv_schema::handoff::parse_chunk_header(&v).with_context(|| path.to_string())?
    else {
        return Ok(Some(v));
    };
    let mut out = String::with_capacity(total);
    for i in 0..count {
        let p = format!("{path}/chunk/{i}");
        out.push_str(
            &store
                .read(&p)?
                .with_context(|| format!("{p}: missing chunk"))?,
        );
    }
    if out.len() != total {
        bail!(
            "{path}: chunks hold {} bytes, header says {total}",
            out.len()
        );
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_blob_is_inline() {
        let s = MemStore::new();
        write_blob(&s, "/a/cfg", "x: 1\n").unwrap();
        assert_eq!(s.read("/a/cfg").unwrap().as_deref(), Some("x: 1\n"));
        assert_eq!(read_blob(&s, "/a/cfg").unwrap().as_deref(), Some("x: 1\n"));
    }

    #[test]
    fn inline_up_to_the_payload_limit() {
        let s = MemStore::new();
        let path = "/local/domain/7/data/domain-nv-config";
        let fits = "x".repeat(PAYLOAD_MAX - path.len() - 1);
        write_blob(&s, path, &fits).unwrap();
        assert_eq!(s.read(path).unwrap().unwrap(), fits);
        let over = format!("{fits}x");
        write_blob(&s, path, &over).unwrap();
        assert!(s
            .read(path)
            .unwrap()
            .unwrap()
            .starts_with(nv_schema::handoff::CHUNK_HEADER));
        assert_eq!(read_blob(&s, path).unwrap().unwrap(), over);
    }

    #[test]
    fn directory_lists_each_child_once() {
        let s = MemStore::new();
        for k in ["/p/a/b", "/p/a-c", "/p/a/d", "/p/a"] {
            s.write(k, "1").unwrap();
        }
        assert_eq!(s.directory("/p").unwrap(), vec!["a", "a-c"]);
        assert_eq!(s.read("/p").unwrap().as_deref(), Some(""));
        assert_eq!(s.read("/q").unwrap(), None);
    }

    #[test]
    fn long_blob_is_chunked_and_reassembled() {
        let s = MemStore::new();
        let text: String = (0..2000).map(|i| format!("é{i}\n")).collect();
        write_blob(&s, "/a/cfg", &text).unwrap();
        let header = s.read("/a/cfg").unwrap().unwrap();
        assert!(
            header.starts_with(nv_schema::handoff::CHUNK_HEADER),
            "{header}"
        );
        let n = s.directory("/a/cfg/chunk").unwrap().len();
        assert!(n >= 3, "{n}");
        for c in s.directory("/a/cfg/chunk").unwrap() {
            assert!(
                s.read(&format!("/a/cfg/chunk/{c}")).unwrap().unwrap().len()
                    <= nv_schema::handoff::CHUNK_SIZE
            );
        }
        assert_eq!(read_blob(&s, "/a/cfg").unwrap().unwrap(), text);
        // a shorter chunked text drops the chunks it does not use
        let shorter: String = "y".repeat(PAYLOAD_MAX + 10);
        write_blob(&s, "/a/cfg", &shorter).unwrap();
        assert_eq!(s.directory("/a/cfg/chunk").unwrap(), vec!["0", "1"]);
        assert_eq!(read_blob(&s, "/a/cfg").unwrap().unwrap(), shorter);
        // a torn read (chunks of another text) is detected
        s.write("/a/cfg/chunk/1", "yy").unwrap();
        assert!(read_blob(&s, "/a/cfg")
            .unwrap_err()
            .to_string()
            .contains("header says"));
        // rewriting a short text drops the old chunks
        write_blob(&s, "/a/cfg", "short").unwrap();
        assert!(s.directory("/a/cfg/chunk").unwrap().is_empty());
        assert_eq!(read_blob(&s, "/a/cfg").unwrap().as_deref(), Some("short"));
    }

    #[test]
    fn watch_sees_writes_below_and_times_out() {
        let s = MemStore::new();
        assert!(!s.watch("/x", Duration::from_millis(10)).unwrap());
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    s.write("/x/y/z", "1").unwrap();
                    s.watch("/never", Duration::from_millis(1)).unwrap();
                }
            });
            assert!(s.watch("/x", Duration::from_secs(10)).unwrap());
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        // writes elsewhere do not fire a watch on /x
        s.write("/other", "1").unwrap();
        assert!(!s.watch("/x", Duration::from_millis(10)).unwrap());
    }
}

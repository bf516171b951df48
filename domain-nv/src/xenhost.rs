//! Driver-domain mode: the config comes from xenstore (nvctl writes it to the NV domain's
//! `data/domain-nv-config`, chunked when long), the status goes back to `data/domain-nv` for the
//! Dom0 CLI, and `vif` links are served by netback. Paths are relative to the domain's home
//! (`/local/domain/<domid>`), as xenstored resolves them for the connection's own domain.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use nv_schema::handoff::{parse_chunk_header, DRAIN_REQUEST, XS_CONFIG, XS_CONTROL};
use nv_schema::status::{Status, XS_BASE};
use xen::xenstore::Xenstore;
use xen::DomId;

/// Watch token for the config node.
const CONFIG_TOKEN: &str = "domain-nv-config";
/// Watch token for the control node.
const CONTROL_TOKEN: &str = "domain-nv-control";

/// This domain's id, from its `domid` key (written by the toolstack).
pub fn own_domid(xs: &Xenstore) -> Result<DomId> {
    let v = xs
        .read_string("domid")
        .context("reading own xenstore key `domid`")?;
    v.trim()
        .parse()
        .with_context(|| format!("own `domid` key holds {v:?}"))
}

/// The config text if present and complete (a chunked value whose pieces do not add up yet is
/// `None`: the writer is still at work).
pub fn read_config(xs: &Xenstore) -> Result<Option<String>> {
    let Some(raw) = xs.try_read(XS_CONFIG)? else {
        return Ok(None);
    };
    let value = String::from_utf8(raw).context("config is not UTF-8")?;
    let Some((count, total)) = parse_chunk_header(&value)? else {
        return Ok(Some(value));
    };
    let mut text = String::with_capacity(total);
    for i in 0..count {
        match xs.try_read(&format!("{XS_CONFIG}/chunk/{i}"))? {
            Some(piece) => {
                text.push_str(&String::from_utf8(piece).context("config chunk is not UTF-8")?)
            }
            None => return Ok(None),
        }
    }
    Ok((text.len() == total).then_some(text))
}

/// Starts watching the config node and the control node ([`XS_CONTROL`], where nvctl asks
/// for a drain) for changes (events come through `xs`'s descriptor).
pub fn watch_config(xs: &Xenstore) -> Result<()> {
    xs.watch(XS_CONFIG, CONFIG_TOKEN)?;
    xs.watch(XS_CONTROL, CONTROL_TOKEN)?;
    Ok(())
}

/// What the watched nodes ask for after the queued watch events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The new config text, if the config node now holds a complete config different from the
    /// one running.
    pub config: Option<String>,
    /// The control node holds [`DRAIN_REQUEST`]: nvctl asks to drain and exit.
    pub drain: bool,
}

/// Drains queued watch events and reads each node that fired: the new config text if the
/// config node now holds a complete config different from `current`, and whether the control
/// node asks for a drain.
pub fn watched_changes(xs: &Xenstore, current: &str) -> Result<Changes> {
    let (mut config_fired, mut control_fired) = (false, false);
    while let Some(event) = xs.try_next_watch_event()? {
        match event.token.as_str() {
            CONTROL_TOKEN => control_fired = true,
            _ => config_fired = true,
        }
    }
    let mut changes = Changes::default();
    if config_fired {
        changes.config = read_config(xs)?.filter(|text| text != current);
    }
    if control_fired {
        let value = xs.try_read(XS_CONTROL)?.unwrap_or_default();
        changes.drain = value.trim_ascii() == DRAIN_REQUEST.as_bytes();
    }
    Ok(changes)
}

/// Waits until a complete config is in xenstore (watching the node; `timeout` bounds the wait,
/// `None` waits as long as it takes, as the NV domain's init does).
pub fn wait_config(xs: &Xenstore, timeout: Option<Duration>) -> Result<String> {
    xs.watch(XS_CONFIG, CONFIG_TOKEN)?;
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let result = loop {
        if let Some(text) = read_config(xs)? {
            break Ok(text);
        }
        let step = match deadline {
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) => left.min(Duration::from_secs(5)),
                None => break Err(anyhow::anyhow!("no config at {XS_CONFIG} in xenstore")),
            },
            None => Duration::from_secs(5),
        };
        let _ = xs.wait_watch_event(step)?;
    };
    xs.unwatch(XS_CONFIG, CONFIG_TOKEN)?;
    result
}

/// Publishes `status` under `data/domain-nv` in one transaction, replacing what was there.
pub fn publish_status(xs: &Xenstore, status: &Status) -> Result<()> {
    let pairs = status.to_xenstore();
    xs.transaction(|t| {
        if t.try_read(XS_BASE)?.is_some() {
            t.rm(XS_BASE)?;
        }
        for (k, v) in &pairs {
            t.write(k, v)?;
        }
        Ok(())
    })
    .context("publishing the status to xenstore")?;
    Ok(())
}

/// Kernel modules the NV domain's `/init` loads, in file-name order (`NN-name.ko`): Debian's
/// kernel has xen-evtchn, xen-gntdev, xenfs, xen-netfront... as modules.
pub const INIT_MODULES_DIR: &str = "/lib/modules/domain-nv";

/// Loads every `*.ko` in `dir` in file-name order; one already loaded is fine.
pub fn load_modules(dir: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    paths.sort();
    for p in paths {
        let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
        match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => log::info!("loaded {}", p.display()),
            Err(e) => bail!("loading {}: {e}", p.display()),
        }
    }
    Ok(())
}

/// Powers the domain off (what pid 1 does instead of exiting, which would panic the kernel).
pub fn power_off() -> ! {
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // reboot(2) does not return on success; if it failed there is nothing left to do but wait.
    loop {
        std::thread::park();
    }
}

/// Mounts what a driver domain's `/init` needs: /proc, /sys, /dev, /run, /tmp.
pub fn init_mounts() -> Result<()> {
    use nix::mount::{mount, MsFlags};
    for (src, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/run", "tmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ] {
        std::fs::create_dir_all(target).with_context(|| format!("mkdir {target}"))?;
        match mount(
            Some(src),
            target,
            Some(fstype),
            MsFlags::MS_NOSUID,
            None::<&str>,
        ) {
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => bail!("mount {fstype} on {target}: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_schema::handoff::{chunk_header, split_chunks};
    use xen::sim::SimXen;

    #[test]
    fn config_is_read_plain_and_chunked_and_status_published() {
        let sim = SimXen::new().unwrap();
        let nv = sim.create_domain().unwrap();
        let dom0 = sim.connect_xenstore(0).unwrap();
        let home = dom0.get_domain_path(nv).unwrap();
        dom0.write(&format!("{home}/domid"), nv.to_string())
            .unwrap();
        let xs = sim.connect_xenstore(nv).unwrap();
        assert_eq!(own_domid(&xs).unwrap(), nv);
        assert!(
            wait_config(&xs, Some(Duration::from_millis(50))).is_err(),
            "no config yet"
        );

        dom0.write(&format!("{home}/{XS_CONFIG}"), "policy: majority\n")
            .unwrap();
        assert_eq!(
            read_config(&xs).unwrap().as_deref(),
            Some("policy: majority\n")
        );

        let long = "# padding\n".repeat(1000);
        let pieces = split_chunks(&long);
        dom0.write(
            &format!("{home}/{XS_CONFIG}"),
            chunk_header(pieces.len(), long.len()),
        )
        .unwrap();
        assert_eq!(
            read_config(&xs).unwrap(),
            None,
            "pieces missing: not complete yet"
        );
        for (i, p) in pieces.iter().enumerate() {
            dom0.write(&format!("{home}/{XS_CONFIG}/chunk/{i}"), p)
                .unwrap();
        }
        assert_eq!(
            wait_config(&xs, Some(Duration::from_secs(5))).unwrap(),
            long
        );

        // A rewritten config is noticed through the watch; an unchanged one is not a change.
        watch_config(&xs).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while xs.try_next_watch_event().unwrap().is_none() {
            assert!(std::time::Instant::now() < end, "no event on registration");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(watched_changes(&xs, &long).unwrap(), Changes::default());
        dom0.write(&format!("{home}/{XS_CONFIG}"), "policy: unanimous\n")
            .unwrap();
        let mut changed = None;
        while changed.is_none() {
            assert!(std::time::Instant::now() < end, "rewrite not noticed");
            let changes = watched_changes(&xs, &long).unwrap();
            assert!(!changes.drain, "a config change is no drain request");
            changed = changes.config;
        }
        assert_eq!(changed.as_deref(), Some("policy: unanimous\n"));

        // nvctl down asks for a drain through the control node; another value asks nothing.
        dom0.write(&format!("{home}/{XS_CONTROL}"), "nonsense")
            .unwrap();
        dom0.write(&format!("{home}/{XS_CONTROL}"), DRAIN_REQUEST)
            .unwrap();
        let mut changes = Changes::default();
        while !changes.drain {
            assert!(std::time::Instant::now() < end, "drain request not noticed");
            changes = watched_changes(&xs, "policy: unanimous\n").unwrap();
            assert_eq!(changes.config, None, "the config did not change");
        }

        // The guest may write its own data/ subtree; dom0 (nvctl) reads it back.
        let text = "{\"version\":1,\"ready\":true,\"updated_ms\":5,\"services\":[{\"name\":\"redis\",\"listen\":\"10.0.0.1:6379\",\"active\":1,\"total\":9}],\
            \"replicas\":[{\"name\":\"r1\",\"state\":\"faulty\",\"link\":\"up\",\"connections\":1,\"bytes_voted\":42,\
            \"faults\":[{\"time_ms\":7,\"kind\":\"value-mismatch\",\"service\":\"redis\",\"connection\":3,\"detail\":\"output differs\"}]}]}";
        let status = Status::from_json(text).unwrap();
        let mut older = status.clone();
        let extra = older.replicas[0].faults[0].clone();
        older.replicas[0].faults.push(extra);
        publish_status(&xs, &older).unwrap();
        publish_status(&xs, &status).unwrap();
        let back = Status::from_xenstore(
            &mut |k| {
                dom0.try_read(&format!("{home}/{k}"))
                    .unwrap()
                    .map(|b| String::from_utf8(b).unwrap())
            },
            &mut |k| dom0.directory(&format!("{home}/{k}")).unwrap_or_default(),
        )
        .unwrap();
        assert_eq!(
            back, status,
            "published status reads back exactly (stale faults removed)"
        );
    }
}

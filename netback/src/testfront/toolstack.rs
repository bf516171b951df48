//! The toolstack's part of creating a vif (what libxl writes), for the simulated host.

use xen::xenstore::{Access, Perm, Xenstore};
use xen::DomId;

/// Writes the backend and frontend directories of vif `handle` of guest `guest`, served by
/// `backend`, as libxl does (permissions included); `xs` is dom0's connection. `hotplug` creates
/// an empty `hotplug-status` key that a hotplug script would later set to `connected`.
pub fn toolstack_add_vif(
    xs: &Xenstore,
    backend: DomId,
    guest: DomId,
    handle: u32,
    mac: [u8; 6],
    mtu: usize,
    hotplug: bool,
) -> xen::Result<()> {
    let be = format!("/local/domain/{backend}/backend/vif/{guest}/{handle}");
    let fe = format!("/local/domain/{guest}/device/vif/{handle}");
    let mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    xs.transaction(|t| {
        for p in [
            format!("/local/domain/{backend}/backend"),
            format!("/local/domain/{backend}/backend/vif"),
        ] {
            if t.try_read(&p)?.is_none() {
                t.mkdir(&p)?;
                t.set_perms(&p, &[Perm::new(backend, Access::None)])?;
            }
        }
        t.mkdir(&be)?;
        t.set_perms(
            &be,
            &[
                Perm::new(backend, Access::None),
                Perm::new(guest, Access::Read),
            ],
        )?;
        t.mkdir(&fe)?;
        t.set_perms(
            &fe,
            &[
                Perm::new(guest, Access::None),
                Perm::new(backend, Access::Read),
            ],
        )?;
        let be_keys = [
            ("frontend", fe.clone()),
            ("frontend-id", guest.to_string()),
            ("online", "1".into()),
            ("state", "1".into()),
            ("script", "vif-route".into()),
            ("mac", mac.clone()),
            ("handle", handle.to_string()),
            ("type", "vif".into()),
        ];
        for (k, v) in be_keys {
            t.write(&format!("{be}/{k}"), v)?;
        }
        if hotplug {
            t.write(&format!("{be}/hotplug-status"), "")?;
        }
        let fe_keys = [
            ("backend", be.clone()),
            ("backend-id", backend.to_string()),
            ("state", "1".into()),
            ("handle", handle.to_string()),
            ("mac", mac.clone()),
            ("mtu", mtu.to_string()),
        ];
        for (k, v) in fe_keys {
            t.write(&format!("{fe}/{k}"), v)?;
        }
        Ok(())
    })
}

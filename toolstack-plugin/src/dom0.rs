//! The Dom0 resources a rendered xl config names: files (kernels, initramfs, disk images), the
//! bridge of the external vif and passed-through PCI devices. [`Dom0`] answers whether one
//! exists; [`needs_of_nv`] and [`needs_of_replica`] list what a config needs, each with the
//! spec field it comes from; [`check`] reports every missing one at once, before anything is
//! created.

use crate::render::Instance;
use crate::spec::{locate, GroupSpec, Replica, SpecError, SpecErrors};
use std::path::{Path, PathBuf};

/// Whether the resources a config names exist in Dom0.
pub trait Dom0 {
    /// The file (or block device) at the absolute `path` exists.
    fn file_exists(&self, path: &str) -> bool;
    /// The network interface `bridge` exists (`/sys/class/net/<bridge>`).
    fn bridge_exists(&self, bridge: &str) -> bool;
    /// The PCI device `bdf` (`dddd:bb:dd.f`) exists (`/sys/bus/pci/devices/<bdf>`).
    fn pci_device_exists(&self, bdf: &str) -> bool;
}

/// The real Dom0: every lookup below `root` (`/`, or a copy of Dom0's tree for tests).
pub struct HostDom0 {
    /// Prefix of every lookup.
    pub root: PathBuf,
}

impl HostDom0 {
    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Dom0 for HostDom0 {
    fn file_exists(&self, path: &str) -> bool {
        std::fs::metadata(self.at(path)).is_ok_and(|m| !m.is_dir())
    }

    fn bridge_exists(&self, bridge: &str) -> bool {
        self.at(&format!("sys/class/net/{bridge}")).exists()
    }

    fn pci_device_exists(&self, bdf: &str) -> bool {
        let p = format!("sys/bus/pci/devices/{}", bdf.to_ascii_lowercase());
        Path::exists(&self.at(&p))
    }
}

/// A kind of Dom0 resource, with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A file: kernel, initramfs or disk image.
    File(String),
    /// The bridge of a vif.
    Bridge(String),
    /// A passed-through PCI device.
    PciDevice(String),
}

/// A resource a rendered config needs, and the spec field (or option) it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Field path (`replicas[1].image`) or command-line option (`--image`).
    pub field: String,
    /// What must exist.
    pub resource: Resource,
}

fn need(field: impl Into<String>, resource: Resource) -> Need {
    Need {
        field: field.into(),
        resource,
    }
}

/// What the NV domain's config needs: kernel, initramfs, the bridge or the PCI devices.
pub fn needs_of_nv(spec: &GroupSpec) -> Vec<Need> {
    let nv = &spec.nv_domain;
    let mut out = vec![
        need("nv-domain.kernel", Resource::File(nv.kernel.clone())),
        need("nv-domain.initramfs", Resource::File(nv.initramfs.clone())),
    ];
    if let Some(b) = &nv.external.bridge {
        out.push(need(
            "nv-domain.external.bridge",
            Resource::Bridge(b.clone()),
        ));
    }
    for (i, p) in nv.external.pci.iter().enumerate() {
        out.push(need(
            format!("nv-domain.external.pci[{i}]"),
            Resource::PciDevice(p.clone()),
        ));
    }
    out
}

/// What the config of instance `inst` of replica `r` needs: kernel, initramfs and its image,
/// whose field is `image_field` when it is not the spec's (`--image`).
pub fn needs_of_replica(
    spec: &GroupSpec,
    r: &Replica,
    inst: &Instance,
    image_field: &str,
) -> Vec<Need> {
    let k = spec
        .replicas
        .iter()
        .position(|x| x.name == r.name)
        .unwrap_or_default();
    let f = |key: &str| format!("replicas[{k}].{key}");
    let mut out = vec![need(f("kernel"), Resource::File(r.kernel.clone()))];
    if let Some(p) = &r.initramfs {
        out.push(need(f("initramfs"), Resource::File(p.clone())));
    }
    if let Some(p) = &inst.image {
        let field = if r.image.as_ref() == Some(p) {
            f("image")
        } else {
            image_field.to_string()
        };
        out.push(need(field, Resource::File(p.clone())));
    }
    out
}

/// Every need in `needs` that Dom0 lacks, as one error each (field, line in the spec `text`);
/// a resource named twice is reported once.
pub fn check(dom0: &dyn Dom0, needs: &[Need], text: &str) -> Result<(), SpecErrors> {
    let mut errors: Vec<SpecError> = Vec::new();
    let mut seen: Vec<&Need> = Vec::new();
    for n in needs {
        if seen.contains(&n) {
            continue;
        }
        seen.push(n);
        let missing = match &n.resource {
            Resource::File(p) if !dom0.file_exists(p) => format!("no file {p} in Dom0"),
            Resource::Bridge(b) if !dom0.bridge_exists(b) => {
                format!("no bridge {b} in Dom0 (/sys/class/net/{b})")
            }
            Resource::PciDevice(d) if !dom0.pci_device_exists(d) => {
                format!("no PCI device {d} in Dom0 (/sys/bus/pci/devices/{d})")
            }
            _ => continue,
        };
        errors.push(SpecError {
            line: locate(text, &n.field),
            field: n.field.clone(),
            message: missing,
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_go_below_the_root() {
        let root = std::env::temp_dir().join(format!("nvctl-dom0-{}", std::process::id()));
        let net = root.join("sys/class/net/xenbr0");
        let pci = root.join("sys/bus/pci/devices/0000:0a:00.0");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::create_dir_all(&pci).unwrap();
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::write(root.join("boot/vmlinuz"), "").unwrap();
        let d = HostDom0 { root: root.clone() };
        assert!(d.file_exists("/boot/vmlinuz") && !d.file_exists("/boot/initrd"));
        assert!(!d.file_exists("/boot"), "a directory is not a file");
        assert!(d.bridge_exists("xenbr0") && !d.bridge_exists("xenbr1"));
        assert!(d.pci_device_exists("0000:0a:00.0") && d.pci_device_exists("0000:0A:00.0"));
        assert!(!d.pci_device_exists("0000:04:00.0"));
        std::fs::remove_dir_all(root).unwrap();
    }
}

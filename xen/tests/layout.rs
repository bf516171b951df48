//! Checks every ioctl number, struct size/offset and wire constant the crate compiled in
//! against the C headers (<xen/gntdev.h>, <xen/evtchn.h> from linux-libc-dev, <xen/io/xs_wire.h>
//! and <xen/grant_table.h> from libxen-dev): a tiny C probe is compiled with gcc and run.

use std::collections::HashMap;
use std::process::Command;

/// (name printed, C expression) for every value `xen::layout::rust_values` lists.
const PROBES: &[(&str, &str)] = &[
    ("IOCTL_GNTDEV_MAP_GRANT_REF", "IOCTL_GNTDEV_MAP_GRANT_REF"),
    (
        "IOCTL_GNTDEV_UNMAP_GRANT_REF",
        "IOCTL_GNTDEV_UNMAP_GRANT_REF",
    ),
    (
        "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
        "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
    ),
    ("IOCTL_GNTDEV_GRANT_COPY", "IOCTL_GNTDEV_GRANT_COPY"),
    (
        "IOCTL_EVTCHN_BIND_INTERDOMAIN",
        "IOCTL_EVTCHN_BIND_INTERDOMAIN",
    ),
    (
        "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
        "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
    ),
    ("IOCTL_EVTCHN_UNBIND", "IOCTL_EVTCHN_UNBIND"),
    ("IOCTL_EVTCHN_NOTIFY", "IOCTL_EVTCHN_NOTIFY"),
    ("UNMAP_NOTIFY_CLEAR_BYTE", "UNMAP_NOTIFY_CLEAR_BYTE"),
    ("UNMAP_NOTIFY_SEND_EVENT", "UNMAP_NOTIFY_SEND_EVENT"),
    ("GNTCOPY_source_gref", "GNTCOPY_source_gref"),
    ("GNTCOPY_dest_gref", "GNTCOPY_dest_gref"),
    (
        "sizeof_ioctl_gntdev_grant_ref",
        "sizeof(struct ioctl_gntdev_grant_ref)",
    ),
    (
        "offsetof_ioctl_gntdev_grant_ref_ref",
        "offsetof(struct ioctl_gntdev_grant_ref, ref)",
    ),
    (
        "sizeof_ioctl_gntdev_map_grant_ref",
        "sizeof(struct ioctl_gntdev_map_grant_ref)",
    ),
    (
        "offsetof_ioctl_gntdev_map_grant_ref_index",
        "offsetof(struct ioctl_gntdev_map_grant_ref, index)",
    ),
    (
        "offsetof_ioctl_gntdev_map_grant_ref_refs",
        "offsetof(struct ioctl_gntdev_map_grant_ref, refs)",
    ),
    (
        "sizeof_ioctl_gntdev_unmap_grant_ref",
        "sizeof(struct ioctl_gntdev_unmap_grant_ref)",
    ),
    (
        "offsetof_ioctl_gntdev_unmap_grant_ref_count",
        "offsetof(struct ioctl_gntdev_unmap_grant_ref, count)",
    ),
    (
        "sizeof_ioctl_gntdev_unmap_notify",
        "sizeof(struct ioctl_gntdev_unmap_notify)",
    ),
    (
        "offsetof_ioctl_gntdev_unmap_notify_action",
        "offsetof(struct ioctl_gntdev_unmap_notify, action)",
    ),
    (
        "offsetof_ioctl_gntdev_unmap_notify_event_channel_port",
        "offsetof(struct ioctl_gntdev_unmap_notify, event_channel_port)",
    ),
    (
        "sizeof_gntdev_grant_copy_segment",
        "sizeof(struct gntdev_grant_copy_segment)",
    ),
    (
        "offsetof_gntdev_grant_copy_segment_dest",
        "offsetof(struct gntdev_grant_copy_segment, dest)",
    ),
    (
        "offsetof_gntdev_grant_copy_segment_len",
        "offsetof(struct gntdev_grant_copy_segment, len)",
    ),
    (
        "offsetof_gntdev_grant_copy_segment_flags",
        "offsetof(struct gntdev_grant_copy_segment, flags)",
    ),
    (
        "offsetof_gntdev_grant_copy_segment_status",
        "offsetof(struct gntdev_grant_copy_segment, status)",
    ),
    (
        "offsetof_foreign_offset",
        "offsetof(struct gntdev_grant_copy_segment, source.foreign.offset)",
    ),
    (
        "offsetof_foreign_domid",
        "offsetof(struct gntdev_grant_copy_segment, source.foreign.domid)",
    ),
    (
        "sizeof_ioctl_gntdev_grant_copy",
        "sizeof(struct ioctl_gntdev_grant_copy)",
    ),
    (
        "offsetof_ioctl_gntdev_grant_copy_segments",
        "offsetof(struct ioctl_gntdev_grant_copy, segments)",
    ),
    (
        "sizeof_ioctl_evtchn_bind_interdomain",
        "sizeof(struct ioctl_evtchn_bind_interdomain)",
    ),
    (
        "sizeof_ioctl_evtchn_notify",
        "sizeof(struct ioctl_evtchn_notify)",
    ),
    ("sizeof_xsd_sockmsg", "sizeof(struct xsd_sockmsg)"),
    ("GNTST_okay", "GNTST_okay"),
    ("GNTST_general_error", "GNTST_general_error"),
    ("GNTST_bad_domain", "GNTST_bad_domain"),
    ("GNTST_bad_gntref", "GNTST_bad_gntref"),
    ("GNTST_bad_handle", "GNTST_bad_handle"),
    ("GNTST_bad_virt_addr", "GNTST_bad_virt_addr"),
    ("GNTST_bad_dev_addr", "GNTST_bad_dev_addr"),
    ("GNTST_no_device_space", "GNTST_no_device_space"),
    ("GNTST_permission_denied", "GNTST_permission_denied"),
    ("GNTST_bad_page", "GNTST_bad_page"),
    ("GNTST_bad_copy_arg", "GNTST_bad_copy_arg"),
    ("GNTST_address_too_big", "GNTST_address_too_big"),
    ("GNTST_eagain", "GNTST_eagain"),
    ("XENSTORE_PAYLOAD_MAX", "XENSTORE_PAYLOAD_MAX"),
    ("XENSTORE_ABS_PATH_MAX", "XENSTORE_ABS_PATH_MAX"),
    ("XENSTORE_REL_PATH_MAX", "XENSTORE_REL_PATH_MAX"),
    ("XS_CONTROL", "XS_CONTROL"),
    ("XS_DIRECTORY", "XS_DIRECTORY"),
    ("XS_READ", "XS_READ"),
    ("XS_GET_PERMS", "XS_GET_PERMS"),
    ("XS_WATCH", "XS_WATCH"),
    ("XS_UNWATCH", "XS_UNWATCH"),
    ("XS_TRANSACTION_START", "XS_TRANSACTION_START"),
    ("XS_TRANSACTION_END", "XS_TRANSACTION_END"),
    ("XS_INTRODUCE", "XS_INTRODUCE"),
    ("XS_RELEASE", "XS_RELEASE"),
    ("XS_GET_DOMAIN_PATH", "XS_GET_DOMAIN_PATH"),
    ("XS_WRITE", "XS_WRITE"),
    ("XS_MKDIR", "XS_MKDIR"),
    ("XS_RM", "XS_RM"),
    ("XS_SET_PERMS", "XS_SET_PERMS"),
    ("XS_WATCH_EVENT", "XS_WATCH_EVENT"),
    ("XS_ERROR", "XS_ERROR"),
    ("XS_IS_DOMAIN_INTRODUCED", "XS_IS_DOMAIN_INTRODUCED"),
    ("XS_RESUME", "XS_RESUME"),
    ("XS_SET_TARGET", "XS_SET_TARGET"),
    ("XS_RESET_WATCHES", "XS_RESET_WATCHES"),
    ("XS_DIRECTORY_PART", "XS_DIRECTORY_PART"),
    ("sizeof_virtio_net_hdr", "sizeof(struct virtio_net_hdr)"),
    ("IFF_VNET_HDR", "IFF_VNET_HDR"),
    ("TUNSETVNETHDRSZ", "TUNSETVNETHDRSZ"),
    ("TUNSETVNETLE", "TUNSETVNETLE"),
    ("TUNSETOFFLOAD", "TUNSETOFFLOAD"),
    ("TUN_F_CSUM", "TUN_F_CSUM"),
    ("TUN_F_TSO4", "TUN_F_TSO4"),
    ("TUN_F_TSO6", "TUN_F_TSO6"),
];

fn probe_source() -> String {
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <errno.h>\n\
         #include <sys/ioctl.h>\n#include <xen/xen.h>\n#include <xen/grant_table.h>\n\
         #include <xen/gntdev.h>\n#include <xen/evtchn.h>\n#include <xen/io/xs_wire.h>\n\
         #include <linux/if_tun.h>\n#include <linux/virtio_net.h>\n\
         #define P(name, expr) printf(\"%s %llu\\n\", name, (unsigned long long)(long long)(expr))\n\
         int main(void) {\n",
    );
    for (name, expr) in PROBES {
        c.push_str(&format!("    P(\"{name}\", {expr});\n"));
    }
    // The xs_wire error table, to check ours name for name.
    c.push_str(
        "    for (unsigned i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)\n\
         \x20       printf(\"xsd_error_%u %s\\n\", i, xsd_errors[i].errstring);\n    return 0;\n}\n",
    );
    c
}

#[test]
fn ioctl_numbers_and_layouts_match_the_c_headers() {
    let dir = std::env::temp_dir().join(format!("xen-layout-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    let exe = dir.join("probe");
    std::fs::write(&src, probe_source()).unwrap();
    let cc = Command::new("gcc").arg("-Wall").arg("-o").arg(&exe).arg(&src).output().expect(
        "gcc not found: run `apt-get install -y gcc libxen-dev linux-libc-dev` (make deps does)",
    );
    assert!(
        cc.status.success(),
        "probe does not compile (need libxen-dev and linux-libc-dev):\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let c_values: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    let rust = xen::layout::rust_values();
    assert_eq!(rust.len(), PROBES.len(), "every Rust value has a C probe");
    for (name, value) in &rust {
        let c = c_values
            .get(name)
            .unwrap_or_else(|| panic!("probe did not print {name}"));
        assert_eq!(
            c.parse::<u64>().unwrap(),
            *value,
            "{name}: C says {c}, Rust has {value:#x}"
        );
    }
    let c_errors: Vec<&str> = (0..)
        .map_while(|i| c_values.get(format!("xsd_error_{i}").as_str()).copied())
        .collect();
    let rust_errors: Vec<&str> = xen::XsErrno::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(c_errors, rust_errors);
    std::fs::remove_dir_all(&dir).unwrap();
}

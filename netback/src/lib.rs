//! User-space Xen PV network backend.

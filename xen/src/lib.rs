//! Thin, safe layer over Linux's Xen devices, and a simulated Xen for machines without one.

pub mod hostnet;

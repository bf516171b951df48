//! nvctl: the Dom0 admin CLI for domain-nv replica groups.
fn main() {
    eprintln!("nvctl: not built yet (toolstack-plugin issue)");
    std::process::exit(1);
}

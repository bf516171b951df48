//! The text form of a [`Report`], as `nvctl reliability` prints it.

use super::model::{Verdict, Voting};
use super::report::{Component, Condition, Report};
use super::MAX_N;
use std::fmt::Write;

/// The policy's name in the text report.
fn label(v: Voting) -> &'static str {
    match v {
        Voting::Any => "1-out-of-n (seed)",
        Voting::Majority => "majority voting",
        Voting::Unanimous => "unanimous voting",
    }
}

/// The policy's `P_n` as a formula, for n replicas.
fn formula(v: Voting, n: u32) -> String {
    match v {
        Voting::Any => "1-(1-R_vm)^n".into(),
        Voting::Majority => format!("sum_{{k>={}}} C(n,k)R_vm^k(1-R_vm)^(n-k)", n / 2 + 1),
        Voting::Unanimous => "R_vm^n".into(),
    }
}

/// An input as given: the number, or the number with the rate it came from.
fn input(c: &Component, hours: Option<f64>) -> String {
    match (c.failure_rate_per_hour, hours) {
        (Some(rate), Some(h)) => format!("{:.6} (exp(-{rate}/h * {h} h))", c.reliability),
        _ => format!("{}", c.reliability),
    }
}

/// A set of n as runs: `3, 5-99`, or per parity when that is shorter (`odd 3-99; even 8-98`).
pub fn describe_ns(ns: &[u32]) -> String {
    fn runs(ns: &[u32], step: u32) -> Vec<String> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for &n in ns {
            match out.last_mut() {
                Some((_, end)) if *end + step == n => *end = n,
                _ => out.push((n, n)),
            }
        }
        out.iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect()
    }
    let plain = runs(ns, 1);
    if plain.len() <= 4 {
        return plain.join(", ");
    }
    let parity =
        |odd: bool| -> Vec<u32> { ns.iter().copied().filter(|n| (n % 2 == 1) == odd).collect() };
    let mut parts = Vec::new();
    for (name, odd) in [("odd", true), ("even", false)] {
        let set = parity(odd);
        if !set.is_empty() {
            parts.push(format!("{name} {}", runs(&set, 2).join(", ")));
        }
    }
    parts.join("; ")
}

/// `; holds for n = …`, and where the two are equal within rounding.
fn over_n(c: &Condition, what: &str) -> String {
    let mut s = if c.holds_for_n.is_empty() {
        format!("; {what} for no n <= {MAX_N}")
    } else {
        format!("; {what} for n = {}", describe_ns(&c.holds_for_n))
    };
    if !c.equal_for_n.is_empty() {
        let _ = write!(
            s,
            " (equal within rounding for n = {})",
            describe_ns(&c.equal_for_n)
        );
    }
    s
}

/// The verdict of a condition whose threshold is on `term`.
fn verdict(c: &Condition, better: &str, worse: &str, term: &str) -> String {
    match c.at_n.verdict {
        Verdict::Better => format!("holds: {better}"),
        Verdict::Equal => "equal within rounding: no gain".into(),
        Verdict::Worse if c.threshold > 1.0 => {
            format!("does NOT hold for any {term} (threshold > 1)")
        }
        Verdict::Worse => format!("does NOT hold: {worse}"),
    }
}

/// The report as text.
pub fn format_text(r: &Report) -> String {
    let i = &r.inputs;
    let n = i.n;
    let h = i.mission_hours;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "inputs: R_vm (one replica) = {}, R_hv (hypervisor) = {}, R_node (hardware) = {}, n = {n}",
        input(&i.vm, h),
        input(&i.hv, h),
        input(&i.node, h)
    );
    let _ = writeln!(
        o,
        "        R_nv (NV domain) = {}, R_dom0 (Dom0) = {}, R_f (voter inside a replica) = {}",
        input(&i.nv, h),
        input(&i.dom0, h),
        input(&i.voter_in_vm, h)
    );
    if let Some(h) = h {
        let _ = writeln!(
            o,
            "        mission time {h} h: R = exp(-lambda*t) for components given a failure rate"
        );
    }
    let _ = writeln!(
        o,
        "\nreplica layer: P_n = probability that enough of the n replicas are correct"
    );
    for p in &r.policies {
        let _ = writeln!(
            o,
            "  {:<18} needs {:>2} of {n}  P_n = {:<42} = {:.6}",
            label(p.policy),
            p.needed,
            formula(p.policy, n),
            p.replica_layer
        );
    }
    let _ = writeln!(o);
    let mut line = |name: String, formula: &str, value: f64| {
        let _ = writeln!(o, "{name:<34} {formula:<50} = {value:.6}");
    };
    line("non-virtualised node".into(), "R_node*R_vm", r.plain_node);
    line("one VM on Xen".into(), "R_node*R_hv*R_dom0*R_vm", r.one_vm);
    for p in &r.policies {
        line(
            format!("{n} replicas, {}", label(p.policy)),
            "R_node*R_hv*R_dom0*R_nv*P_n",
            p.group,
        );
    }
    for p in &r.policies {
        line(
            format!("in-VM voting, {}", label(p.policy)),
            "R_node*R_hv*R_dom0*P_n(R_f*R_vm)",
            p.in_vm_voting,
        );
    }
    let _ = writeln!(
        o,
        "\ncondition (A), replicas more reliable than the plain node: R_hv >= R_vm / (P_n*R_dom0*R_nv)"
    );
    for p in &r.policies {
        let c = &p.vs_plain_node;
        let _ = writeln!(
            o,
            "  {:<18} R_hv >= {:.6}: {}",
            label(p.policy),
            c.threshold,
            verdict(
                c,
                "the replicated node is more reliable",
                "the plain node is more reliable",
                "hypervisor"
            )
        );
    }
    o.push_str("\nboundary conditions (seed 002):\n");
    o.push_str("  n = 1 never satisfies (A): P_1 = R_vm, so at best (R_hv*R_dom0*R_nv = 1) the two are equal\n");
    let _ = writeln!(
        o,
        "  the hypervisor must be more reliable than a replica (R_hv*R_dom0*R_nv > R_vm): {}",
        match r.layers_vs_replica.verdict {
            Verdict::Better => "yes",
            Verdict::Equal => "NO (equal within rounding)",
            Verdict::Worse => "NO",
        }
    );
    o.push_str(
        "  the fewer replicas, the more reliable the hypervisor must be; with majority voting only\n  \
         among odd n and among even n: an even n needs more than the odd n below it\n",
    );
    for p in &r.policies {
        let c = &p.vs_plain_node;
        let name = label(p.policy);
        match c.least_n {
            Some(m) => {
                let _ = writeln!(
                    o,
                    "  least n for which (A) holds at this R_hv, {name}: {m}{}",
                    over_n(c, "it holds")
                );
            }
            None => {
                let _ = writeln!(o, "  (A) holds for no n <= {MAX_N} at this R_hv, {name}");
            }
        }
    }
    o.push_str("\nmoving the voter out of the replicas into the NV domain (seed's condition (B), R_F = R_nv):\n");
    o.push_str("  against one VM on Xen: R_nv >= R_vm / P_n\n");
    for p in &r.policies {
        let c = &p.vs_one_vm;
        let _ = writeln!(
            o,
            "    {:<18} R_nv >= {:.6}: {}{}",
            label(p.policy),
            c.threshold,
            verdict(
                c,
                "the group is more reliable",
                "one VM is more reliable",
                "NV domain"
            ),
            over_n(c, "holds")
        );
    }
    o.push_str("  against voting inside the replicas: R_nv >= P_n(R_f*R_vm) / P_n(R_vm)\n");
    for p in &r.policies {
        let c = &p.vs_in_vm_voting;
        let _ = writeln!(
            o,
            "    {:<18} R_nv >= {:.6}: {}{}",
            label(p.policy),
            c.threshold,
            verdict(
                c,
                "voting in the NV domain is more reliable",
                "voting inside the replicas is more reliable",
                "NV domain"
            ),
            over_n(c, "holds")
        );
    }
    o.push_str(
        "\n\"holds\" means more reliable by more than a bound of the f64 rounding error of the margin\n\
         (see --json: margin, bound); within the bound the two count as equal, which is no gain.\n",
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_of_n_by_hand() {
        assert_eq!(describe_ns(&[]), "");
        assert_eq!(describe_ns(&[2]), "2");
        assert_eq!(describe_ns(&(2..=99).collect::<Vec<_>>()), "2-99");
        let mut s = vec![3];
        s.extend(5..=99);
        assert_eq!(describe_ns(&s), "3, 5-99");
        let odd: Vec<u32> = (3..=99).step_by(2).collect();
        assert_eq!(describe_ns(&odd), "odd 3-99");
        let mut both = odd.clone();
        both.extend((8..=98).step_by(2));
        both.sort();
        assert_eq!(describe_ns(&both), "3, 5, 7-99");
        let mut both = odd.clone();
        both.extend((20..=98).step_by(2));
        both.sort();
        assert_eq!(describe_ns(&both), "odd 3-99; even 20-98");
    }
}

//! The reliability model of Ramasamy & Schunter ("Architecting Dependable Systems Using
//! Virtualization", seed 002), extended to majority voting.
//!
//! Notation: `R_vm` reliability of one replica (guest OS + service; the seed's R_M), `R_hv` of
//! the hypervisor (the seed's R_V), `R_node` of the hardware (the seed's R_H). Failures are
//! assumed independent, so every R_sys is an upper bound.
//!
//! - non-virtualised node: `R_NV = R_node · R_vm`;
//! - n replicas on one node: `R_V = R_node · R_hv · P_n`, where `P_n` is the probability that the
//!   replica layer still delivers a correct answer:
//!   - `any` (1-out-of-n, the paper's model, enough for fail-stop crashes): `P_n = 1 − (1 − R_vm)^n`;
//!   - `majority` (value faults, what domain-nv's voter masks):
//!     `P_n = Σ_{k ≥ ⌊n/2⌋+1} C(n,k) R_vm^k (1 − R_vm)^(n−k)`.
//!
//! Virtualisation pays off iff `R_V ≥ R_NV`, i.e. the paper's boundary condition (A)
//! `R_hv ≥ R_vm / P_n`. For n = 1 (either voting) `P_1 = R_vm`, so (A) needs `R_hv = 1`.

/// How the replica outputs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voting {
    /// A majority (⌊n/2⌋+1) of correct replicas is needed (value faults masked).
    Majority,
    /// One correct replica is enough (1-out-of-n; the paper's model).
    Any,
}

/// Binomial coefficient as f64 (exact for the n used here).
pub fn binomial(n: u32, k: u32) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// `P_n`: probability that the n replicas, each correct with probability `r`, deliver a correct answer.
pub fn replica_layer(r: f64, n: u32, voting: Voting) -> f64 {
    match voting {
        Voting::Any => 1.0 - (1.0 - r).powi(n as i32),
        Voting::Majority => (n / 2 + 1..=n)
            .map(|k| binomial(n, k) * r.powi(k as i32) * (1.0 - r).powi((n - k) as i32))
            .sum(),
    }
}

/// `R_NV = R_node · R_vm`.
pub fn non_virtualised(r_node: f64, r_vm: f64) -> f64 {
    r_node * r_vm
}

/// `R_V = R_node · R_hv · P_n`.
pub fn virtualised(r_node: f64, r_hv: f64, r_vm: f64, n: u32, voting: Voting) -> f64 {
    r_node * r_hv * replica_layer(r_vm, n, voting)
}

/// The least hypervisor reliability for which n replicas beat the plain node: `R_vm / P_n`
/// (> 1 means no hypervisor is reliable enough).
pub fn min_r_hv(r_vm: f64, n: u32, voting: Voting) -> f64 {
    r_vm / replica_layer(r_vm, n, voting)
}

/// The least n in `1..=max_n` for which condition (A) holds, if any.
pub fn min_n(r_hv: f64, r_vm: f64, voting: Voting, max_n: u32) -> Option<u32> {
    (1..=max_n).find(|&n| r_hv * replica_layer(r_vm, n, voting) >= r_vm)
}

/// The report `nvctl reliability` prints: R_sys of the plain node and of n replicas (1-out-of-n
/// as in the seed, and majority voting), condition (A) for both, and the seed's boundary
/// conditions evaluated for these inputs.
pub fn report(r_vm: f64, r_hv: f64, r_node: f64, n: u32) -> String {
    let nv = non_virtualised(r_node, r_vm);
    let mut o = String::new();
    o.push_str(&format!("inputs: R_vm (one replica) = {r_vm}, R_hv (hypervisor) = {r_hv}, R_node (hardware) = {r_node}, n = {n}\n\n"));
    o.push_str(&format!(
        "{:<34} {:<50} = {nv:.6}\n",
        "non-virtualised node", "R_node*R_vm"
    ));
    let models = [
        (
            Voting::Any,
            "1-out-of-n (seed)",
            "R_node*R_hv*[1-(1-R_vm)^n]".to_string(),
        ),
        (
            Voting::Majority,
            "majority voting",
            format!(
                "R_node*R_hv*sum_{{k>={}}} C(n,k)R_vm^k(1-R_vm)^(n-k)",
                n / 2 + 1
            ),
        ),
    ];
    for (v, name, formula) in &models {
        o.push_str(&format!(
            "{:<34} {formula:<50} = {:.6}\n",
            format!("{n} replicas, {name}"),
            virtualised(r_node, r_hv, r_vm, n, *v)
        ));
    }
    o.push_str(
        "\ncondition (A), replicas at least as reliable as the plain node: R_hv >= R_vm / P_n\n",
    );
    for (v, name, _) in &models {
        let thr = min_r_hv(r_vm, n, *v);
        let holds = virtualised(r_node, r_hv, r_vm, n, *v) >= nv;
        let verdict = if holds {
            "holds: the replicated node is at least as reliable"
        } else if thr > 1.0 {
            "does NOT hold for any hypervisor (R_vm / P_n > 1)"
        } else {
            "does NOT hold: the plain node is more reliable"
        };
        o.push_str(&format!("  {name:<18} R_hv >= {thr:.6}: {verdict}\n"));
    }
    o.push_str("\nboundary conditions (seed 002):\n");
    o.push_str("  n = 1 never satisfies (A) unless R_hv = 1\n");
    o.push_str(&format!(
        "  the hypervisor must be more reliable than a replica (R_hv > R_vm): {}\n",
        if r_hv > r_vm { "yes" } else { "NO" }
    ));
    o.push_str("  the fewer replicas, the more reliable the hypervisor must be\n");
    for (v, name, _) in &models {
        match min_n(r_hv, r_vm, *v, 99) {
            Some(m) => o.push_str(&format!(
                "  least n for which (A) holds at this R_hv, {name}: {m}\n"
            )),
            None => o.push_str(&format!(
                "  (A) holds for no n <= 99 at this R_hv, {name}\n"
            )),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn binomials() {
        assert_eq!(binomial(5, 2), 10.0);
        assert_eq!(binomial(7, 0), 1.0);
        assert_eq!(binomial(3, 4), 0.0);
    }

    #[test]
    fn replica_layer_by_hand() {
        // any: 1 - 0.1^3 = 0.999; majority of 3: 3*0.9^2*0.1 + 0.9^3 = 0.243 + 0.729 = 0.972
        assert!(close(replica_layer(0.9, 3, Voting::Any), 0.999));
        assert!(close(replica_layer(0.9, 3, Voting::Majority), 0.972));
        // majority of 2 needs both: 0.81; majority of 5: 10*.729*.01 + 5*.6561*.1 + .59049 = 0.99144
        assert!(close(replica_layer(0.9, 2, Voting::Majority), 0.81));
        assert!(close(replica_layer(0.9, 5, Voting::Majority), 0.99144));
        // n = 1: both are just R_vm
        assert!(close(replica_layer(0.9, 1, Voting::Any), 0.9));
        assert!(close(replica_layer(0.9, 1, Voting::Majority), 0.9));
    }

    #[test]
    fn system_reliability_by_hand() {
        assert!(close(non_virtualised(0.99, 0.9), 0.891));
        // 0.99 * 0.99 * 0.999 = 0.9791199 ; 0.99 * 0.99 * 0.972 = 0.9526572
        assert!(close(
            virtualised(0.99, 0.99, 0.9, 3, Voting::Any),
            0.9791199
        ));
        assert!(close(
            virtualised(0.99, 0.99, 0.9, 3, Voting::Majority),
            0.9526572
        ));
    }

    #[test]
    fn boundary_conditions() {
        // (A) never holds for n = 1 unless R_hv = 1
        assert!(close(min_r_hv(0.9, 1, Voting::Any), 1.0));
        assert_eq!(min_n(0.999, 0.9, Voting::Any, 99), Some(2));
        // threshold 0.9/0.972 = 0.925925...: R_hv 0.92 fails with 3 replicas, 0.93 passes
        assert!(close(min_r_hv(0.9, 3, Voting::Majority), 0.9 / 0.972));
        assert!(virtualised(1.0, 0.92, 0.9, 3, Voting::Majority) < non_virtualised(1.0, 0.9));
        assert!(virtualised(1.0, 0.93, 0.9, 3, Voting::Majority) > non_virtualised(1.0, 0.9));
        // fewer VMs need a more reliable hypervisor
        assert!(min_r_hv(0.9, 3, Voting::Majority) > min_r_hv(0.9, 5, Voting::Majority));
        // majority of replicas worse than a coin never helps
        assert_eq!(min_n(0.99, 0.4, Voting::Majority, 99), None);
    }

    #[test]
    fn report_shows_both_models_and_verdicts() {
        let r = report(0.9, 0.99, 0.99, 3);
        assert!(
            r.contains("= 0.891000") && r.contains("= 0.979120") && r.contains("= 0.952657"),
            "{r}"
        );
        assert!(r.contains("R_hv >= 0.925926: holds"), "{r}");
        assert!(
            r.contains("at this R_hv, majority voting: 3")
                && r.contains("at this R_hv, 1-out-of-n (seed): 2"),
            "{r}"
        );
        let r = report(0.9, 0.92, 1.0, 3);
        assert!(
            r.contains("R_hv >= 0.925926: does NOT hold: the plain node"),
            "{r}"
        );
        let r = report(0.4, 0.99, 1.0, 3);
        assert!(
            r.contains("does NOT hold for any hypervisor")
                && r.contains("(A) holds for no n <= 99 at this R_hv, majority voting"),
            "{r}"
        );
    }
}

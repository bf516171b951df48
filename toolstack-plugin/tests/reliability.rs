//! The reliability model against values computed by hand (in the comments), its input checks,
//! and properties: results are probabilities, and the scan over n agrees with a brute-force
//! evaluation that computes P_n another way.

use proptest::prelude::*;
use toolstack_plugin::reliability::report::{Condition, PolicyReport};
use toolstack_plugin::reliability::{
    evaluate, format_text, Component, InputError, Inputs, Report, Verdict, Voting, MAX_N,
};

fn c(r: f64) -> Component {
    Component::given(r).unwrap()
}

/// vm, hv, node; NV domain, Dom0 and in-VM voter perfect.
fn inputs(vm: f64, hv: f64, node: f64, n: u32) -> Inputs {
    Inputs {
        vm: c(vm),
        hv: c(hv),
        node: c(node),
        nv: Component::perfect(),
        dom0: Component::perfect(),
        voter_in_vm: Component::perfect(),
        n,
        mission_hours: None,
    }
}

fn report(i: &Inputs) -> Report {
    evaluate(i).unwrap()
}

fn policy(r: &Report, v: Voting) -> &PolicyReport {
    r.policies.iter().find(|p| p.policy == v).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn system_reliability_by_hand() {
    let r = report(&inputs(0.9, 0.99, 0.99, 3));
    assert!(close(r.plain_node, 0.891));
    // 0.99 * 0.99 * 0.999 = 0.9791199 ; 0.99 * 0.99 * 0.972 = 0.9526572
    assert!(close(policy(&r, Voting::Any).group, 0.9791199));
    assert!(close(policy(&r, Voting::Majority).group, 0.9526572));
    // unanimous: 0.99 * 0.99 * 0.9^3 = 0.9801 * 0.729 = 0.7144929
    assert!(close(policy(&r, Voting::Unanimous).group, 0.7144929));
    // one VM on Xen: 0.99 * 0.99 * 0.9 = 0.88209
    assert!(close(r.one_vm, 0.88209));
}

#[test]
fn nv_domain_and_dom0_are_series_terms() {
    // R_vm 0.9, R_hv 0.99, R_dom0 0.98, R_nv 0.97, n = 3, majority:
    // group = 0.99*0.98*0.97*0.972 = 0.9702*0.97*0.972 = 0.941094*0.972 = 0.914743368
    let mut i = inputs(0.9, 0.99, 1.0, 3);
    i.dom0 = c(0.98);
    i.nv = c(0.97);
    let r = report(&i);
    let m = policy(&r, Voting::Majority);
    assert!(close(m.group, 0.914743368));
    // one VM = 0.99*0.98*0.9 = 0.87318
    assert!(close(r.one_vm, 0.87318));
    // (A): 0.914743368 > 0.9; least R_hv = 0.9/(0.972*0.98*0.97) = 0.9/0.9239832 = 0.97404368...
    assert_eq!(m.vs_plain_node.at_n.verdict, Verdict::Better);
    assert!((m.vs_plain_node.threshold - 0.974_043_68).abs() < 1e-8);
    // against one VM: R_nv*P_3 = 0.97*0.972 = 0.94284 > 0.9, least R_nv = 0.9/0.972 = 0.925926
    assert_eq!(m.vs_one_vm.at_n.verdict, Verdict::Better);
    assert!(close(m.vs_one_vm.at_n.margin, 0.94284 - 0.9));
    assert!((m.vs_one_vm.threshold - 0.925_925_926).abs() < 1e-8);
    // n = 1: the group adds an NV domain of 0.97 to one VM: worse than one VM
    assert_eq!(m.vs_one_vm.holds_for_n.first(), Some(&3));
    i.n = 1;
    let r = report(&i);
    assert_eq!(
        policy(&r, Voting::Majority).vs_one_vm.at_n.verdict,
        Verdict::Worse
    );
}

#[test]
fn voter_in_the_nv_domain_against_voting_inside_the_replicas() {
    // R_vm 0.9, R_f 0.95 (so a replica with its voter: 0.855), R_nv 0.99.
    let mut i = inputs(0.9, 0.99, 1.0, 2);
    i.voter_in_vm = c(0.95);
    i.nv = c(0.99);
    let r = report(&i);
    // any, n = 2: P_2(0.9) = 0.99, P_2(0.855) = 1 - 0.145^2 = 0.978975;
    // margin = 0.99*0.99 - 0.978975 = 0.9801 - 0.978975 = 0.001125;
    // least R_nv = 0.978975/0.99 = 0.988863636...
    let a = &policy(&r, Voting::Any).vs_in_vm_voting;
    assert_eq!(a.at_n.verdict, Verdict::Better);
    assert!(close(a.at_n.margin, 0.001125));
    assert!((a.threshold - 0.988_863_636).abs() < 1e-8);
    // in-VM voting, any: 0.99 * 0.978975 = 0.96918525
    assert!(close(policy(&r, Voting::Any).in_vm_voting, 0.96918525));
    // majority, n = 3: P_3(0.9) = 0.972; P_3(0.855) = 3*0.855^2*0.145 + 0.855^3
    // = 0.317995875 + 0.625026375 = 0.94302225; margin = 0.99*0.972 - 0.94302225 = 0.01925775
    i.n = 3;
    let r = report(&i);
    let m = &policy(&r, Voting::Majority).vs_in_vm_voting;
    assert_eq!(m.at_n.verdict, Verdict::Better);
    assert!(close(m.at_n.margin, 0.01925775));
    // with a perfect in-VM voter and a perfect NV domain the two are the same system
    let r = report(&inputs(0.9, 0.99, 1.0, 3));
    for p in &r.policies {
        assert_eq!(p.vs_in_vm_voting.at_n.verdict, Verdict::Equal);
        assert_eq!(p.vs_in_vm_voting.equal_for_n.len(), MAX_N as usize);
    }
}

#[test]
fn boundary_conditions() {
    // (A) never holds for n = 1 unless R_hv = 1: least R_hv = 0.9/0.9 = 1
    let r = report(&inputs(0.9, 0.999, 1.0, 1));
    assert!(close(policy(&r, Voting::Any).vs_plain_node.threshold, 1.0));
    // R_hv 0.999, 1-out-of-n: n = 2 gives 0.999*0.99 = 0.98901 > 0.9
    assert_eq!(policy(&r, Voting::Any).vs_plain_node.least_n, Some(2));
    // threshold 0.9/0.972 = 0.925925...: R_hv 0.92 fails with 3 replicas, 0.93 passes
    let r = report(&inputs(0.9, 0.92, 1.0, 3));
    let m = policy(&r, Voting::Majority);
    assert!(close(m.vs_plain_node.threshold, 0.9 / 0.972));
    assert_eq!(m.vs_plain_node.at_n.verdict, Verdict::Worse);
    let r = report(&inputs(0.9, 0.93, 1.0, 3));
    assert_eq!(
        policy(&r, Voting::Majority).vs_plain_node.at_n.verdict,
        Verdict::Better
    );
    // fewer VMs need a more reliable hypervisor: 0.9/0.972 > 0.9/0.99144
    let five = report(&inputs(0.9, 0.93, 1.0, 5));
    assert!(
        policy(&r, Voting::Majority).vs_plain_node.threshold
            > policy(&five, Voting::Majority).vs_plain_node.threshold
    );
    // majority of replicas worse than a coin never helps
    let r = report(&inputs(0.4, 0.99, 1.0, 3));
    assert_eq!(policy(&r, Voting::Majority).vs_plain_node.least_n, None);
    // R_hv = 1, n = 1: exactly equal, reported as such (no gain)
    let r = report(&inputs(0.9, 1.0, 1.0, 1));
    assert_eq!(
        policy(&r, Voting::Any).vs_plain_node.at_n.verdict,
        Verdict::Equal
    );
}

#[test]
fn equal_hypervisor_and_replica_never_pay_off() {
    // R_hv = R_vm = 0.99: R_hv*P_n = 0.99*(1 - 0.01^n) < 0.99 for every n, although
    // 1 - 0.01^n is 1.0 in f64 from n = 9 on (the old search reported n = 9 for 1-out-of-n).
    let r = report(&inputs(0.99, 0.99, 1.0, 3));
    for p in &r.policies {
        let c = &p.vs_plain_node;
        assert_eq!(c.least_n, None, "{:?}", p.policy);
        assert!(
            c.holds_for_n.is_empty() && c.equal_for_n.is_empty(),
            "{c:?}"
        );
    }
    let text = format_text(&r);
    assert!(
        text.contains("(A) holds for no n <= 99 at this R_hv, 1-out-of-n (seed)"),
        "{text}"
    );
}

#[test]
fn majority_is_not_monotone_in_n() {
    // R_vm 0.9, R_hv 0.94, majority:
    // n=2: 0.94*0.81 = 0.7614 < 0.9;  n=3: 0.94*0.972 = 0.91368 > 0.9;
    // n=4: 0.94*(0.9^4 + 4*0.9^3*0.1) = 0.94*0.9477 = 0.890838 < 0.9;
    // n=5: 0.94*0.99144 = 0.9319536 > 0.9;  n=6: 0.94*0.98415 = 0.925101 > 0.9
    let r = report(&inputs(0.9, 0.94, 1.0, 4));
    let m = &policy(&r, Voting::Majority).vs_plain_node;
    assert_eq!(m.at_n.verdict, Verdict::Worse);
    assert_eq!(m.least_n, Some(3));
    assert_eq!(&m.holds_for_n[..4], &[3, 5, 6, 7]);
    assert!(!m.holds_for_n.contains(&4));
    let text = format_text(&r);
    assert!(
        text.contains("least n for which (A) holds at this R_hv, majority voting: 3; it holds for n = 3, 5-99"),
        "{text}"
    );
}

#[test]
fn failure_rates_over_a_mission_by_hand() {
    // lambda_vm 1e-4/h, lambda_hv 1e-6/h, 1000 h: R_vm = e^-0.1 = 0.904837418,
    // R_hv = e^-0.001 = 0.999000500; 1-out-of-2: P_2 = 1 - 0.095162582^2 = 0.990944083,
    // group = 0.999000500 * 0.990944083 = 0.989953634
    let mut i = inputs(0.5, 0.5, 1.0, 2);
    i.vm = Component::rate(1e-4, 1000.0).unwrap();
    i.hv = Component::rate(1e-6, 1000.0).unwrap();
    i.mission_hours = Some(1000.0);
    let r = report(&i);
    assert!((r.plain_node - 0.904_837_418).abs() < 1e-9);
    assert!((policy(&r, Voting::Any).group - 0.989_953_634).abs() < 1e-9);
    let text = format_text(&r);
    assert!(
        text.contains("R_vm (one replica) = 0.904837 (exp(-0.0001/h * 1000 h))"),
        "{text}"
    );
    assert!(text.contains("mission time 1000 h"), "{text}");
}

#[test]
fn degenerate_inputs_are_errors() {
    for bad in [0.0, -1.0, 1.01, f64::NAN] {
        assert!(matches!(
            Component::given(bad),
            Err(InputError::Reliability(_))
        ));
    }
    assert!(matches!(
        Component::rate(-1e-3, 10.0),
        Err(InputError::Rate(_))
    ));
    assert!(matches!(
        Component::rate(1e-3, -1.0),
        Err(InputError::Mission(_))
    ));
    assert!(matches!(
        Component::rate(1.0, 1e6),
        Err(InputError::SureFailure { .. })
    ));
    for n in [0, MAX_N + 1] {
        assert_eq!(
            evaluate(&inputs(0.9, 0.99, 1.0, n)),
            Err(InputError::Replicas(n))
        );
    }
    // R_vm = 1 is a valid corner: P_n = 1, nothing beats a perfect replica
    let r = report(&inputs(1.0, 0.99, 1.0, 3));
    for p in &r.policies {
        assert!(p.replica_layer == 1.0 && p.vs_plain_node.least_n.is_none());
    }
}

#[test]
fn report_shows_the_models_and_verdicts() {
    let r = format_text(&report(&inputs(0.9, 0.99, 0.99, 3)));
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
    let r = format_text(&report(&inputs(0.9, 0.92, 1.0, 3)));
    assert!(
        r.contains("R_hv >= 0.925926: does NOT hold: the plain node"),
        "{r}"
    );
    let r = format_text(&report(&inputs(0.4, 0.99, 1.0, 3)));
    assert!(
        r.contains("does NOT hold for any hypervisor")
            && r.contains("(A) holds for no n <= 99 at this R_hv, majority voting"),
        "{r}"
    );
}

/// P_n by dynamic programming over the replicas (the distribution of the number of correct
/// ones), independent of the binomial sum of the model.
fn p_by_dp(r: f64, n: u32, v: Voting) -> f64 {
    let mut dist = vec![1.0];
    for _ in 0..n {
        let mut next = vec![0.0; dist.len() + 1];
        for (k, p) in dist.iter().enumerate() {
            next[k] += p * (1.0 - r);
            next[k + 1] += p * r;
        }
        dist = next;
    }
    dist[v.needed(n) as usize..].iter().sum()
}

fn all_conditions(r: &Report) -> impl Iterator<Item = &Condition> {
    r.policies
        .iter()
        .flat_map(|p| [&p.vs_plain_node, &p.vs_one_vm, &p.vs_in_vm_voting])
}

fn probability() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.001f64..=1.0,
        4 => 0.9f64..=1.0,
        1 => Just(1.0),
        1 => Just(0.99),
        1 => Just(1e-9),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn results_are_probabilities(
        vm in probability(), hv in probability(), node in probability(),
        nv in probability(), dom0 in probability(), f in probability(), n in 1..=MAX_N,
    ) {
        let i = Inputs {
            nv: c(nv), dom0: c(dom0), voter_in_vm: c(f),
            ..inputs(vm, hv, node, n)
        };
        let r = report(&i);
        let mut values = vec![r.plain_node, r.one_vm];
        for p in &r.policies {
            values.extend([p.replica_layer, p.group, p.in_vm_voting]);
        }
        for v in values {
            prop_assert!((0.0..=1.0).contains(&v), "{v}");
        }
        for c in all_conditions(&r) {
            prop_assert!(c.at_n.margin.is_finite() && c.at_n.bound >= 0.0);
            prop_assert!(c.threshold >= 0.0, "{c:?}");
            prop_assert_eq!(c.least_n, c.holds_for_n.first().copied());
        }
        let [any, majority, unanimous] = [0, 1, 2].map(|k| r.policies[k].replica_layer);
        prop_assert!(any + 1e-12 >= majority && majority + 1e-12 >= unanimous);
    }

    #[test]
    fn the_scan_over_n_agrees_with_brute_force(
        vm in probability(), hv in probability(), nv in probability(), dom0 in probability(),
        n in 1..=MAX_N,
    ) {
        let i = Inputs { nv: c(nv), dom0: c(dom0), ..inputs(vm, hv, 1.0, n) };
        let r = report(&i);
        for p in &r.policies {
            let cond = &p.vs_plain_node;
            for k in 1..=MAX_N {
                // brute force: R_hv*R_dom0*R_nv*P_k against R_vm, P_k by dynamic programming
                let naive = hv * dom0 * nv * p_by_dp(vm, k, p.policy) - vm;
                let holds = cond.holds_for_n.contains(&k);
                if naive > 1e-9 {
                    prop_assert!(holds, "{:?} n = {k}: {naive}", p.policy);
                } else if naive < -1e-9 {
                    prop_assert!(!holds, "{:?} n = {k}: {naive}", p.policy);
                }
            }
            // the scan and the evaluation at n agree
            let at_n = cond.holds_for_n.contains(&n);
            prop_assert_eq!(at_n, cond.at_n.verdict == Verdict::Better);
            prop_assert_eq!(cond.equal_for_n.contains(&n), cond.at_n.verdict == Verdict::Equal);
        }
    }
}

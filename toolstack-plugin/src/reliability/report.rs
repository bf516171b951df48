//! What `nvctl reliability` evaluates: every system of the model for the given inputs, the
//! seed's conditions per voting policy, and for which n each of them holds.
//!
//! Systems (common factors cancel in every comparison, see [`super::model`]):
//! - plain node: `R_node·R_vm`;
//! - one VM on Xen: `R_node·R_hv·R_dom0·R_vm` (a Dom0 crash takes the host down);
//! - a domain-nv group: `R_node·R_hv·R_dom0·R_nv·P_n(R_vm)`;
//! - the seed's in-VM voting: n replicas each running the voter, no NV domain:
//!   `R_node·R_hv·R_dom0·P_n(R_f·R_vm)`.

use super::model::{compare, Comparison, ReplicaLayer, System, Verdict, Voting};
use super::prob::{InputError, Reliability};
use super::MAX_N;
use serde::Serialize;

/// One input of the model as the user gave it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Component {
    /// R over the mission.
    pub reliability: f64,
    /// F = 1 − R.
    pub unreliability: f64,
    /// The failure rate (per hour) R was derived from, if it was.
    pub failure_rate_per_hour: Option<f64>,
    #[serde(skip)]
    value: Reliability,
}

impl Component {
    /// A reliability given directly.
    pub fn given(r: f64) -> Result<Self, InputError> {
        Ok(Self::from(Reliability::new(r)?, None))
    }

    /// A constant failure rate (per hour) over a mission (hours): `R = exp(−rate·hours)`.
    pub fn rate(per_hour: f64, hours: f64) -> Result<Self, InputError> {
        Ok(Self::from(
            Reliability::from_rate(per_hour, hours)?,
            Some(per_hour),
        ))
    }

    /// A component that never fails (the default of the optional terms).
    pub fn perfect() -> Self {
        Self::from(Reliability::ONE, None)
    }

    fn from(value: Reliability, failure_rate_per_hour: Option<f64>) -> Self {
        Self {
            reliability: value.value(),
            unreliability: value.unreliability(),
            failure_rate_per_hour,
            value,
        }
    }
}

/// The inputs of the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Inputs {
    /// One replica: guest OS + service, without a voter (the seed's R_M').
    pub vm: Component,
    /// The hypervisor (the seed's R_V).
    pub hv: Component,
    /// The hardware (the seed's R_H).
    pub node: Component,
    /// The NV domain: kernel, netback, TCP stack and voter (the seed's R_F, f moved out).
    pub nv: Component,
    /// Dom0: its crash takes the host down.
    pub dom0: Component,
    /// The voting function when it runs inside each replica (the seed's R_f).
    pub voter_in_vm: Component,
    /// Number of replicas.
    pub n: u32,
    /// The mission time the failure rates apply to, hours (when any was given).
    pub mission_hours: Option<f64>,
}

/// One condition of the model for one policy: at the given n, and over every n.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// The comparison at the given n.
    #[serde(flatten)]
    pub at_n: Comparison,
    /// The least value of the condition's free term (R_hv for (A), R_nv for the others) for
    /// which it holds at the given n (> 1: no value does; infinite, `null` in JSON, when
    /// `P_n` underflows to 0).
    pub threshold: f64,
    /// The least n for which the condition holds (majority voting is not monotone in n: read
    /// [`Condition::holds_for_n`] for the others).
    pub least_n: Option<u32>,
    /// Every n in 1..=[`MAX_N`] for which the group is more reliable beyond rounding.
    pub holds_for_n: Vec<u32>,
    /// Every n in 1..=[`MAX_N`] for which the two are equal within rounding.
    pub equal_for_n: Vec<u32>,
}

/// Everything the model says about one voting policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// The policy.
    pub policy: Voting,
    /// How many of the n replicas must be correct.
    pub needed: u32,
    /// `P_n`, the probability that enough replicas are correct.
    pub replica_layer: f64,
    /// The domain-nv group: `R_node·R_hv·R_dom0·R_nv·P_n`.
    pub group: f64,
    /// The seed's in-VM voting: `R_node·R_hv·R_dom0·P_n(R_f·R_vm)`.
    pub in_vm_voting: f64,
    /// Condition (A): the group against the plain node; threshold on R_hv.
    pub vs_plain_node: Condition,
    /// The group against one VM on Xen; threshold on R_nv.
    pub vs_one_vm: Condition,
    /// Condition (B): the group against in-VM voting; threshold on R_nv.
    pub vs_in_vm_voting: Condition,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The inputs.
    pub inputs: Inputs,
    /// The plain node: `R_node·R_vm`.
    pub plain_node: f64,
    /// One VM on Xen: `R_node·R_hv·R_dom0·R_vm`.
    pub one_vm: f64,
    /// Hypervisor, Dom0 and NV domain together against one replica (must be better for (A)).
    pub layers_vs_replica: Comparison,
    /// Per policy, in the order of [`Voting::ALL`].
    pub policies: Vec<PolicyReport>,
}

/// The three conditions for n replicas under one policy.
fn conditions(i: &Inputs, n: u32, voting: Voting) -> [(Comparison, f64); 3] {
    let vm = i.vm.value;
    let layer = ReplicaLayer::new(vm, n, voting);
    let in_vm = ReplicaLayer::new(i.voter_in_vm.value.series(vm), n, voting);
    let layers = i.hv.value.series(i.dom0.value).series(i.nv.value);
    let group = |series| System {
        series,
        layer: Some(layer),
    };
    let alone = System {
        series: vm,
        layer: None,
    };
    let in_vm_voting = System {
        series: Reliability::ONE,
        layer: Some(in_vm),
    };
    let r_vm = vm.value();
    [
        (
            compare(&group(layers), &alone),
            threshold(r_vm, layer.works * i.dom0.reliability * i.nv.reliability),
        ),
        (
            compare(&group(i.nv.value), &alone),
            threshold(r_vm, layer.works),
        ),
        (
            compare(&group(i.nv.value), &in_vm_voting),
            threshold(in_vm.works, layer.works),
        ),
    ]
}

/// The least value of a factor `x` for which `x·denominator ≥ numerator`; infinite when the
/// denominator underflowed to 0 (no value does).
fn threshold(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        f64::INFINITY
    }
}

/// Evaluate the model.
pub fn evaluate(i: &Inputs) -> Result<Report, InputError> {
    if !(1..=MAX_N).contains(&i.n) {
        return Err(InputError::Replicas(i.n));
    }
    let virt = i.node.reliability * i.hv.reliability * i.dom0.reliability;
    let layers = i.hv.value.series(i.dom0.value).series(i.nv.value);
    let policies = Voting::ALL
        .into_iter()
        .map(|voting| {
            let scan: Vec<_> = (1..=MAX_N).map(|n| conditions(i, n, voting)).collect();
            let at_n = scan[i.n as usize - 1];
            let [vs_plain_node, vs_one_vm, vs_in_vm_voting] = std::array::from_fn(|j| {
                let with = |v| -> Vec<u32> {
                    (1..=MAX_N)
                        .filter(|&n| scan[n as usize - 1][j].0.verdict == v)
                        .collect()
                };
                let holds_for_n = with(Verdict::Better);
                Condition {
                    at_n: at_n[j].0,
                    threshold: at_n[j].1,
                    least_n: holds_for_n.first().copied(),
                    holds_for_n,
                    equal_for_n: with(Verdict::Equal),
                }
            });
            let layer = ReplicaLayer::new(i.vm.value, i.n, voting);
            let in_vm = ReplicaLayer::new(i.voter_in_vm.value.series(i.vm.value), i.n, voting);
            PolicyReport {
                policy: voting,
                needed: voting.needed(i.n),
                replica_layer: layer.works,
                group: virt * i.nv.reliability * layer.works,
                in_vm_voting: virt * in_vm.works,
                vs_plain_node,
                vs_one_vm,
                vs_in_vm_voting,
            }
        })
        .collect();
    Ok(Report {
        inputs: *i,
        plain_node: i.node.reliability * i.vm.reliability,
        one_vm: virt * i.vm.reliability,
        layers_vs_replica: compare(
            &System {
                series: layers,
                layer: None,
            },
            &System {
                series: i.vm.value,
                layer: None,
            },
        ),
        policies,
    })
}

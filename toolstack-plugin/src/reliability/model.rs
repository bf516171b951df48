//! The replica layer (k-out-of-n) and the comparison of two systems that decides only what
//! f64 arithmetic can prove.
//!
//! A system is seen as series components `S` (all must work) in front of an optional replica
//! layer that fails with probability `Q`, so its unreliability is `F_S + R_S·Q`, a sum of two
//! non-negative terms. Comparing two systems, the margin
//! `R_x − R_y = (F_Sy − F_Sx) + (R_Sy·Q_y − R_Sx·Q_x)` is computed term by term: when the
//! series parts are equal (say `R_hv = R_vm = 0.99`) the first difference is exactly 0 and the
//! tiny replica terms decide, instead of vanishing in `1 − (1 − …)`. Every computed quantity
//! carries a bound of its rounding error; the margin counts only beyond that bound.

use super::prob::{Reliability, EPS};
use serde::Serialize;

/// How the replica outputs are combined: how many of n replicas must be correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Voting {
    /// One correct replica is enough (1-out-of-n; the seed's model, enough for fail-stop
    /// crashes; what primary-backup relies on).
    Any,
    /// A majority (⌊n/2⌋+1) of correct replicas is needed (value faults masked).
    Majority,
    /// All n replicas must be correct to deliver (value faults are detected, not masked).
    Unanimous,
}

impl Voting {
    /// Every policy, in the order reports list them.
    pub const ALL: [Voting; 3] = [Voting::Any, Voting::Majority, Voting::Unanimous];

    /// How many of n replicas must be correct.
    pub fn needed(self, n: u32) -> u32 {
        match self {
            Voting::Any => 1,
            Voting::Majority => n / 2 + 1,
            Voting::Unanimous => n,
        }
    }
}

/// Binomial coefficient as f64 (exact up to 2^53; within 2·min(k, n−k) roundings beyond).
pub fn binomial(n: u32, k: u32) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// n replicas, each correct with the same reliability, behind a voter that needs
/// [`Voting::needed`] of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaLayer {
    /// `P_n`: the probability that enough replicas are correct, `Σ_{k ≥ m} C(n,k) R^k F^(n−k)`.
    pub works: f64,
    /// `Q_n = 1 − P_n`, summed directly as `Σ_{k < m} C(n,k) R^k F^(n−k)` (no cancellation).
    pub fails: f64,
    /// Bound of the absolute rounding error of [`ReplicaLayer::fails`].
    pub fails_error: f64,
}

impl ReplicaLayer {
    /// The layer of n replicas of reliability `replica` under `voting`.
    pub fn new(replica: Reliability, n: u32, voting: Voting) -> Self {
        let (r, f) = (replica.value(), replica.unreliability());
        let m = voting.needed(n);
        let term = |k: u32| binomial(n, k) * r.powi(k as i32) * f.powi((n - k) as i32);
        // the sum can exceed 1 by a few ulps; P_n is a probability
        let works = (m..=n).map(term).sum::<f64>().min(1.0);
        let fails: f64 = (0..m).map(term).sum();
        // Each term: ≤ n roundings in C(n,k), ≤ n in the powers, the inputs' errors n times,
        // 2 products; the sum of ≤ n+1 non-negative terms adds ≤ n roundings. Below
        // f64::MIN_POSITIVE relative bounds fail, so allow that much per term absolutely.
        let input_err = replica.value_error().max(replica.unreliability_error());
        let relative = 3.0 * f64::from(n) + 2.0 + f64::from(n) * input_err;
        let underflow: f64 = (0..m).map(|k| binomial(n, k) * f64::MIN_POSITIVE).sum();
        Self {
            works,
            fails,
            fails_error: fails * relative * EPS + underflow,
        }
    }
}

/// A system as [`compare`] sees it: series components in front of an optional replica layer.
/// Components common to both compared systems are left out of both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct System {
    /// The series components (all must work).
    pub series: Reliability,
    /// The replica layer behind them, if any.
    pub layer: Option<ReplicaLayer>,
}

impl System {
    /// `R_S · Q_n` with a bound of its absolute error.
    fn layer_term(&self) -> (f64, f64) {
        match self.layer {
            None => (0.0, 0.0),
            Some(l) => {
                let s = self.series.value();
                let t = s * l.fails;
                let err = s * l.fails_error + t * (self.series.value_error() + 1.0) * EPS;
                (t, err)
            }
        }
    }
}

/// What f64 arithmetic can say about `R_x` versus `R_y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// `R_x > R_y`, with a margin beyond the rounding bound.
    Better,
    /// The margin is within the rounding bound: equal, or too close to tell.
    Equal,
    /// `R_x < R_y`, with a margin beyond the rounding bound.
    Worse,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// The verdict.
    pub verdict: Verdict,
    /// `R_x − R_y` of the compared parts (common series components left out).
    pub margin: f64,
    /// Bound of the rounding error of `margin`.
    pub bound: f64,
}

/// Compare `x` with `y`: `R_x − R_y = (F_Sy − F_Sx) + (R_Sy·Q_y − R_Sx·Q_x)`.
pub fn compare(x: &System, y: &System) -> Comparison {
    let (fx, fy) = (x.series.unreliability(), y.series.unreliability());
    let fx_err = fx * x.series.unreliability_error() * EPS;
    let fy_err = fy * y.series.unreliability_error() * EPS;
    let ((tx, tx_err), (ty, ty_err)) = (x.layer_term(), y.layer_term());
    let a = fy - fx;
    let b = ty - tx;
    let margin = a + b;
    // Each of the three subtractions/additions rounds by at most half an ulp of its result.
    let bound = fx_err + fy_err + tx_err + ty_err + (a.abs() + b.abs() + margin.abs()) * EPS;
    let verdict = if margin > bound {
        Verdict::Better
    } else if margin < -bound {
        Verdict::Worse
    } else {
        Verdict::Equal
    };
    Comparison {
        verdict,
        margin,
        bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(r: f64) -> Reliability {
        Reliability::new(r).unwrap()
    }

    fn p(r: f64, n: u32, v: Voting) -> f64 {
        ReplicaLayer::new(rel(r), n, v).works
    }

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
        assert!(close(p(0.9, 3, Voting::Any), 0.999));
        assert!(close(p(0.9, 3, Voting::Majority), 0.972));
        // majority of 2 needs both: 0.81; majority of 5: 10*.729*.01 + 5*.6561*.1 + .59049 = 0.99144
        assert!(close(p(0.9, 2, Voting::Majority), 0.81));
        assert!(close(p(0.9, 5, Voting::Majority), 0.99144));
        // n = 1: all are just R_vm
        for v in Voting::ALL {
            assert!(close(p(0.9, 1, v), 0.9));
        }
        // majority of 4 needs 3: 0.9^4 + 4*0.9^3*0.1 = 0.6561 + 0.2916 = 0.9477 < 0.972 (n = 3)
        assert!(close(p(0.9, 4, Voting::Majority), 0.9477));
        // R = 0.6, majority of 4: 0.6^4 + 4*0.6^3*0.4 = 0.1296 + 0.3456 = 0.4752
        assert!(close(p(0.6, 4, Voting::Majority), 0.4752));
        // unanimous: R^n; 0.9^3 = 0.729, 0.6^2 = 0.36
        assert!(close(p(0.9, 3, Voting::Unanimous), 0.729));
        assert!(close(p(0.6, 2, Voting::Unanimous), 0.36));
        // any, R = 0.5, n = 4: 1 - 0.5^4 = 0.9375; R = 0.6, n = 2: 1 - 0.16 = 0.84
        assert!(close(p(0.5, 4, Voting::Any), 0.9375));
        assert!(close(p(0.6, 2, Voting::Any), 0.84));
    }

    #[test]
    fn failure_side_is_summed_without_cancellation() {
        // any, R = 0.99, n = 9: Q = 0.01^9 = 1e-18 (1 - P would give 0 in f64)
        let l = ReplicaLayer::new(rel(0.99), 9, Voting::Any);
        assert!(1.0 - l.works < 1e-15, "{}", l.works);
        assert!((l.fails / 1e-18 - 1.0).abs() < 1e-12, "{}", l.fails);
        // majority of 3, R = 0.999: Q = 3*0.999*1e-6 + 1e-9 = 2.998e-6 (by hand)
        let l = ReplicaLayer::new(rel(0.999), 3, Voting::Majority);
        assert!((l.fails / 2.998e-6 - 1.0).abs() < 1e-12, "{}", l.fails);
    }

    #[test]
    fn equal_series_parts_are_decided_by_the_replica_terms() {
        // R_hv = R_vm = 0.99: R_hv*P_n < R_vm for every n, by 0.99*0.01^n for 1-out-of-n
        let x = |n| System {
            series: rel(0.99),
            layer: Some(ReplicaLayer::new(rel(0.99), n, Voting::Any)),
        };
        let y = System {
            series: rel(0.99),
            layer: None,
        };
        for n in 1..=99 {
            assert_eq!(compare(&x(n), &y).verdict, Verdict::Worse, "n = {n}");
        }
        let c = compare(&x(9), &y);
        assert!((c.margin / -0.99e-18 - 1.0).abs() < 1e-12, "{c:?}");
        // a system compared with itself is equal
        assert_eq!(compare(&x(3), &x(3)).verdict, Verdict::Equal);
        // R_hv = 1, n = 1: R_hv*P_1 = R_vm exactly
        let one = System {
            series: Reliability::ONE,
            layer: Some(ReplicaLayer::new(rel(0.9), 1, Voting::Majority)),
        };
        let plain = System {
            series: rel(0.9),
            layer: None,
        };
        assert_eq!(compare(&one, &plain).verdict, Verdict::Equal);
    }
}

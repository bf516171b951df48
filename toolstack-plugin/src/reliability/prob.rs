//! One component's reliability over the mission, kept together with its unreliability and a
//! bound on the rounding error of each, so that comparisons can tell a real difference from
//! floating-point noise.

use thiserror::Error;

/// Machine epsilon, the unit of every relative error bound in this module.
pub(crate) const EPS: f64 = f64::EPSILON;

/// Why an input of the model is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum InputError {
    /// A reliability outside (0, 1] (or not a number).
    #[error(
        "reliability {0} is not in (0, 1]: it must be a probability, and 0 (a component that \
         surely fails) makes every system containing it 0, so no comparison says anything"
    )]
    Reliability(f64),
    /// A failure rate that is negative, infinite or not a number.
    #[error("failure rate {0} per hour is not a finite number >= 0")]
    Rate(f64),
    /// A mission time that is negative, infinite or not a number.
    #[error("mission time {0} hours is not a finite number >= 0")]
    Mission(f64),
    /// `exp(-rate · hours)` is 0 in f64: the component surely fails within the mission.
    #[error(
        "failure rate {rate} per hour over {hours} hours gives R = exp(-{rate}*{hours}) = 0: \
         the component surely fails within the mission"
    )]
    SureFailure {
        /// The failure rate, per hour.
        rate: f64,
        /// The mission time, hours.
        hours: f64,
    },
    /// A number of replicas outside 1..=[`super::MAX_N`].
    #[error("{0} replicas: the model takes 1 to {max}", max = super::MAX_N)]
    Replicas(u32),
}

/// The probability that a component works throughout the mission (`r`), with the probability
/// that it fails (`f = 1 − r`, computed without cancellation) and relative error bounds of
/// both in units of [`f64::EPSILON`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reliability {
    r: f64,
    f: f64,
    r_err: f64,
    f_err: f64,
}

impl Reliability {
    /// A component that never fails (the neutral element of [`Reliability::series`]).
    pub const ONE: Self = Self {
        r: 1.0,
        f: 0.0,
        r_err: 0.0,
        f_err: 0.0,
    };

    /// A reliability given directly, in (0, 1].
    pub fn new(r: f64) -> Result<Self, InputError> {
        if !(r > 0.0 && r <= 1.0) {
            return Err(InputError::Reliability(r));
        }
        // `1 − r` is exact for r in [0.5, 1] (Sterbenz), within half an ulp below.
        Ok(Self {
            r,
            f: 1.0 - r,
            r_err: 0.0,
            f_err: if r >= 0.5 { 0.0 } else { 1.0 },
        })
    }

    /// The reliability of a component with a constant failure rate (per hour) over a mission
    /// (hours): `R = exp(−rate · hours)`, `F = −expm1(−rate · hours)`.
    pub fn from_rate(rate_per_hour: f64, hours: f64) -> Result<Self, InputError> {
        if !(rate_per_hour.is_finite() && rate_per_hour >= 0.0) {
            return Err(InputError::Rate(rate_per_hour));
        }
        if !(hours.is_finite() && hours >= 0.0) {
            return Err(InputError::Mission(hours));
        }
        let x = rate_per_hour * hours;
        let r = (-x).exp();
        if r == 0.0 {
            return Err(InputError::SureFailure {
                rate: rate_per_hour,
                hours,
            });
        }
        if x == 0.0 {
            return Ok(Self::ONE);
        }
        // x carries one rounding, exp and exp_m1 at most one ulp each: the relative error of
        // exp(−x) grows with x times that of x, the one of expm1(−x) by at most that of x.
        Ok(Self {
            r,
            f: -(-x).exp_m1(),
            r_err: 2.0 + x,
            f_err: 3.0,
        })
    }

    /// The reliability R.
    pub fn value(self) -> f64 {
        self.r
    }

    /// The unreliability F = 1 − R.
    pub fn unreliability(self) -> f64 {
        self.f
    }

    /// Bound of the relative error of [`Reliability::value`], in units of [`f64::EPSILON`].
    pub fn value_error(self) -> f64 {
        self.r_err
    }

    /// Bound of the relative error of [`Reliability::unreliability`], in units of
    /// [`f64::EPSILON`].
    pub fn unreliability_error(self) -> f64 {
        self.f_err
    }

    /// Whether this is exactly 1 (a component that never fails).
    pub fn is_one(self) -> bool {
        self.f == 0.0
    }

    /// Both components in series (both must work): `R = R_a·R_b`, `F = F_a + R_a·F_b`.
    pub fn series(self, other: Self) -> Self {
        if self.is_one() {
            return other;
        }
        if other.is_one() {
            return self;
        }
        Self {
            r: self.r * other.r,
            f: self.f + self.r * other.f,
            r_err: self.r_err + other.r_err + 1.0,
            f_err: self.f_err.max(self.r_err + other.f_err + 1.0) + 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        for bad in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(Reliability::new(bad), Err(InputError::Reliability(_))),
                "{bad}"
            );
        }
        assert!(Reliability::new(1.0).unwrap().is_one());
        assert_eq!(
            Reliability::from_rate(-1.0, 1.0),
            Err(InputError::Rate(-1.0))
        );
        assert_eq!(
            Reliability::from_rate(1.0, f64::NAN)
                .unwrap_err()
                .to_string(),
            "mission time NaN hours is not a finite number >= 0"
        );
        assert!(matches!(
            Reliability::from_rate(1.0, 1e4),
            Err(InputError::SureFailure { .. })
        ));
        assert_eq!(Reliability::from_rate(0.0, 1e6), Ok(Reliability::ONE));
        assert!(InputError::Reliability(0.0)
            .to_string()
            .starts_with("reliability 0 is not in (0, 1]"));
    }

    #[test]
    fn rates_by_hand() {
        // lambda = 1e-4/h over 1000 h: R = e^-0.1 = 0.904837418..., F = 0.095162581...
        let c = Reliability::from_rate(1e-4, 1000.0).unwrap();
        assert!((c.value() - 0.904_837_418_035_96).abs() < 1e-12);
        assert!((c.unreliability() - 0.095_162_581_964_04).abs() < 1e-12);
        // tiny lambda*t: F = 1e-12 (to first order), not 1 - exp(-1e-12) = 1.000088900582341e-12
        let c = Reliability::from_rate(1e-15, 1000.0).unwrap();
        assert!((c.unreliability() / 1e-12 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn series_by_hand() {
        // 0.9 and 0.8 in series: R = 0.72, F = 0.1 + 0.9*0.2 = 0.28
        let s = Reliability::new(0.9)
            .unwrap()
            .series(Reliability::new(0.8).unwrap());
        assert!((s.value() - 0.72).abs() < 1e-15 && (s.unreliability() - 0.28).abs() < 1e-15);
        let a = Reliability::new(0.99).unwrap();
        assert_eq!(a.series(Reliability::ONE), a);
        assert_eq!(Reliability::ONE.series(a), a);
        // 1 - 0.99 is exact
        assert_eq!(a.unreliability_error(), 0.0);
    }
}

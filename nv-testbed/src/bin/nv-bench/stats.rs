//! Statistics over rounds: the median and the spread of one figure, and ratios of medians.
//! Pure functions; a figure a variant does not have (`None`, e.g. HAProxy's CPU for the direct
//! path) is left out.

/// The median and the range of one figure over the rounds it was measured in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

/// The median and min-max of the values that are present, or `None` if none is.
pub fn spread(values: impl IntoIterator<Item = Option<f64>>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    })
}

/// A median with its min-max to `decimals` places (`median [min-max]`), or `-` for a figure
/// that is missing.
pub fn cell(s: Option<Spread>, decimals: usize) -> String {
    match s {
        Some(s) => format!(
            "{:.p$} [{:.p$}-{:.p$}]",
            s.median,
            s.min,
            s.max,
            p = decimals
        ),
        None => "-".into(),
    }
}

/// `num / den` of two medians, `None` if either is missing or the denominator is zero.
pub fn ratio(num: Option<Spread>, den: Option<Spread>) -> Option<f64> {
    let (n, d) = (num?.median, den?.median);
    (d != 0.0).then(|| n / d)
}

/// `a - b` of two medians, `None` if either is missing.
pub fn difference(a: Option<Spread>, b: Option<Spread>) -> Option<f64> {
    Some(a?.median - b?.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_odd_count_is_the_middle_value() {
        let s = spread([Some(5.0), Some(1.0), Some(3.0)]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 3.0,
                min: 1.0,
                max: 5.0
            }
        );
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = spread([Some(4.0), Some(1.0), Some(2.0), Some(10.0)]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 10.0));
    }

    #[test]
    fn missing_values_are_left_out() {
        let s = spread([None, Some(7.0), None]).unwrap();
        assert_eq!((s.median, s.min, s.max), (7.0, 7.0, 7.0));
        assert_eq!(spread([None, None]), None);
        assert_eq!(spread([]), None);
    }

    #[test]
    fn a_cell_shows_the_median_and_the_range() {
        assert_eq!(
            cell(spread([Some(1.0), Some(2.5), Some(9.0)]), 1),
            "2.5 [1.0-9.0]"
        );
        assert_eq!(cell(None, 0), "-");
    }

    #[test]
    fn ratios_and_differences_use_medians() {
        let a = spread([Some(1.0), Some(2.0), Some(100.0)]);
        let b = spread([Some(4.0), Some(4.0), Some(0.0)]);
        assert_eq!(ratio(a, b), Some(0.5));
        assert_eq!(difference(a, b), Some(-2.0));
        assert_eq!(ratio(a, None), None);
        assert_eq!(ratio(a, spread([Some(0.0)])), None);
        assert_eq!(difference(None, b), None);
    }
}

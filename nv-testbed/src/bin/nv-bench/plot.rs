//! The scaling curve as an SVG: request rate and p99 latency against concurrent connections
//! (log scales), one line through the medians per variant, the min-max of the rounds as error
//! bars. plotters' SVG backend writes text as SVG `<text>`, so no font is needed to draw it.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::stats::Spread;

/// One variant's point of the curve.
pub struct CurvePoint {
    /// Concurrent connections.
    pub connections: u32,
    /// Requests per second over the rounds.
    pub rps: Spread,
    /// p99 latency (µs) over the rounds.
    pub p99_us: Spread,
}

/// One variant's curve.
pub struct Curve {
    /// The legend's name of the variant.
    pub name: String,
    /// Its points, in rising connections.
    pub points: Vec<CurvePoint>,
}

/// Width and height of the whole picture, in pixels.
const SIZE: (u32, u32) = (1200, 480);

/// Line colours of the variants, in order.
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
];

/// Which figure a panel shows.
#[derive(Clone, Copy)]
enum Panel {
    /// Requests per second, linear axis from 0 (the top third left free for the legend).
    Rate,
    /// p99 latency in ms, log axis.
    P99,
}

impl Panel {
    /// The panel's figure of a point, in the unit of its axis.
    fn of(self, p: &CurvePoint) -> Spread {
        match self {
            Panel::Rate => p.rps,
            Panel::P99 => Spread {
                median: p.p99_us.median / 1e3,
                min: p.p99_us.min / 1e3,
                max: p.p99_us.max / 1e3,
            },
        }
    }
}

/// Draws one panel of `curves` on `area`.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    curves: &[Curve],
    which: Panel,
) -> Result<()> {
    let all = curves.iter().flat_map(|c| &c.points).map(|p| which.of(p));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), s| {
        (lo.min(s.min), hi.max(s.max))
    });
    let max_conns = curves
        .iter()
        .flat_map(|c| &c.points)
        .map(|p| p.connections)
        .max()
        .unwrap_or(1);
    let x = (0.7..f64::from(max_conns) * 1.4).log_scale();
    let (caption, y_desc) = match which {
        Panel::Rate => ("request rate (median, min-max)", "requests/s"),
        Panel::P99 => ("p99 latency (median, min-max)", "p99 latency, ms (log)"),
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 28))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70);
    let err = |e| anyhow!("drawing the scaling plot: {e}");
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("concurrent connections (log)")
                .y_desc(y_desc)
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| match *v {
                    v if v >= 10.0 => format!("{v:.0}"),
                    v => format!("{v}"),
                })
                .draw()
                .map_err(err)?;
            for (curve, colour) in curves.iter().zip(COLOURS.iter().cycle()) {
                let colour = *colour;
                let line = curve
                    .points
                    .iter()
                    .map(|p| (f64::from(p.connections), which.of(p).median));
                chart
                    .draw_series(LineSeries::new(line, colour.stroke_width(2)))
                    .map_err(err)?
                    .label(curve.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(curve.points.iter().map(|p| {
                        let s = which.of(p);
                        let x = f64::from(p.connections);
                        ErrorBar::new_vertical(x, s.min, s.median, s.max, colour.filled(), 8)
                    }))
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 16))
                .draw()
                .map_err(err)?;
        }};
    }
    match which {
        Panel::Rate => draw!(builder.build_cartesian_2d(x, 0.0..hi * 1.45).map_err(err)?),
        Panel::P99 => draw!(builder
            .build_cartesian_2d(x, ((lo * 0.7).max(1e-3)..hi * 1.5).log_scale())
            .map_err(err)?),
    }
    Ok(())
}

/// The SVG text of the two panels (rate, p99) side by side.
pub fn svg(curves: &[Curve]) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow!("drawing the scaling plot: {e}"))?;
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        panel(&left, curves, Panel::Rate)?;
        panel(&right, curves, Panel::P99)?;
        root.present()
            .map_err(|e| anyhow!("writing the scaling plot: {e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::spread;

    fn curve(name: &str, scale: f64) -> Curve {
        let points = [1, 10, 50, 200, 1000]
            .into_iter()
            .map(|n| CurvePoint {
                connections: n,
                rps: spread([
                    Some(scale * 900.0),
                    Some(scale * 1000.0),
                    Some(scale * 1200.0),
                ])
                .unwrap(),
                p99_us: spread([Some(f64::from(n) * 100.0), Some(f64::from(n) * 150.0)]).unwrap(),
            })
            .collect();
        Curve {
            name: name.into(),
            points,
        }
    }

    #[test]
    fn the_svg_has_both_panels_a_line_per_variant_and_its_text() {
        let text = svg(&[curve("(a) direct", 1.0), curve("(c) domain-nv x3", 0.5)]).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..80]);
        for words in [
            "request rate (median, min-max)",
            "p99 latency (median, min-max)",
            "concurrent connections (log)",
            "(a) direct",
            "(c) domain-nv x3",
            ">\n1000\n</text>",
        ] {
            assert!(text.contains(words), "no {words:?} in the SVG");
        }
        // per variant and panel: a line through the five medians (and a short one in the legend)
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
            .collect();
        let medians = lines.iter().filter(|l| l.matches(',').count() == 5);
        assert_eq!(medians.count(), 4, "{lines:#?}");
    }
}

//! `vmm plot`: draws a series recorded by `vmm run --stats-series` as an SVG chart.
//!
//! The series is JSON Lines, one sample per line: `time_ms` (milliseconds since the guest
//! started) and cumulative counters. The chart has three stacked panels sharing one time
//! axis in seconds: page faults, evictions (to swap, write-back, dropped) and swap traffic
//! (pages read, pages written). Each line is the rate per second between consecutive
//! samples, drawn as a step that is flat across the interval it averages over. The SVG is
//! written by hand, needs nothing outside itself, and is the same bytes for the same input.

use std::fmt::Write as _;

use serde_json::Value;

/// Why a series could not be plotted.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A line is not valid JSON.
    #[error("line {line}: not valid JSON")]
    NotJson { line: usize },
    /// A line is valid JSON but not an object.
    #[error("line {line}: not a JSON object")]
    NotObject { line: usize },
    /// A sample lacks a field the chart needs.
    #[error("line {line}: field `{field}` is missing")]
    MissingField { line: usize, field: &'static str },
    /// A needed field has the wrong type: `time_ms` must be a number, the counters
    /// unsigned integers.
    #[error("line {line}: field `{field}` has the wrong type")]
    BadField { line: usize, field: &'static str },
    /// The series holds no samples at all.
    #[error("no samples")]
    Empty,
}

/// The plotted lines: (panel, counter field, legend text, colour).
const LINES: [(usize, &str, &str, &str); 6] = [
    (0, "faults", "faults", "#1f77b4"),
    (1, "evict_swap", "to swap", "#d62728"),
    (1, "evict_writeback", "write-back", "#2ca02c"),
    (1, "evict_drop", "dropped", "#ff7f0e"),
    (2, "swap_reads", "pages read", "#9467bd"),
    (2, "swap_writes", "pages written", "#8c564b"),
];

/// The panels' titles, top to bottom.
const TITLES: [&str; 3] = [
    "Page faults per second",
    "Evictions per second",
    "Swap traffic: reads & writes (pages per second)",
];

/// One line of the series: its time in seconds and the counters of `LINES`, in order.
#[derive(Debug, Clone, Copy)]
struct Sample {
    time_s: f64,
    counts: [u64; LINES.len()],
}

/// A rate over one interval: (from, to, per second), times in seconds.
type Rate = (f64, f64, f64);

// Layout, in SVG user units. Each panel is PANEL_H tall; its plot area runs from
// PLOT_TOP to PLOT_BOTTOM below the panel's top, and from PLOT_LEFT to PLOT_RIGHT.
const WIDTH: f64 = 860.0;
const HEIGHT: f64 = MARGIN_TOP + PANEL_H * TITLES.len() as f64 + 45.0;
const MARGIN_TOP: f64 = 10.0;
const PANEL_H: f64 = 190.0;
const PLOT_TOP: f64 = 30.0;
const PLOT_BOTTOM: f64 = PANEL_H - 20.0;
const PLOT_LEFT: f64 = 70.0;
const PLOT_RIGHT: f64 = 700.0;
const CENTRE_X: f64 = (PLOT_LEFT + PLOT_RIGHT) / 2.0;
const LEGEND_X: f64 = 715.0;

// Attributes for `Svg::line` and `Svg::text`.
const GRID: &str = r##"stroke="#e0e0e0""##;
const AXIS: &str = r##"stroke="#333333""##;
const END: &str = r#" text-anchor="end""#;
const MIDDLE: &str = r#" text-anchor="middle""#;
const BOLD: &str = r#" font-size="14" font-weight="bold""#;

/// Draws `series` (JSON Lines, see the module docs) as an SVG document.
pub fn render_svg(series: &str) -> Result<String, PlotError> {
    let samples = parse(series)?;
    let mut svg = Svg(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">
<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>
<g font-family="sans-serif" font-size="12" fill="#333333">
"##
    ));
    let t_min = samples.iter().map(|s| s.time_s).fold(0.0, f64::min);
    let t_max = samples.iter().map(|s| s.time_s).fold(t_min, f64::max);
    let time = Axis::nice(t_min, t_max);
    let rates: Vec<_> = (0..LINES.len()).map(|k| rates(&samples, k)).collect();
    for panel in 0..TITLES.len() {
        svg.panel(panel, &time, &rates, samples.len());
    }
    let bottom = MARGIN_TOP + PANEL_H * (TITLES.len() - 1) as f64 + PLOT_BOTTOM;
    svg.text((CENTRE_X, bottom + 36.0), MIDDLE, "time (s)");
    svg.0.push_str("</g>\n</svg>\n");
    Ok(svg.0)
}

/// Colours of the lines of [`render_curves_svg`], in order (repeating).
const CURVE_COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// One chart of named lines through points (x, y), each point marked: for `vmm sweep
/// --plot` (faults against RAM, a line per eviction policy). Points of a line are drawn
/// in order of x. The same bytes for the same input.
pub fn render_curves_svg(
    title: &str,
    x_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> String {
    let height = MARGIN_TOP + PANEL_H + 45.0;
    let mut svg = Svg(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">
<rect width="{WIDTH}" height="{height}" fill="white"/>
<g font-family="sans-serif" font-size="12" fill="#333333">
"##
    ));
    let points = || lines.iter().flat_map(|(_, p)| p.iter());
    let xs = Axis::nice(
        points().map(|p| p.0).fold(f64::INFINITY, f64::min).min(0.0),
        points().map(|p| p.0).fold(0.0, f64::max),
    );
    let ys = Axis::nice(0.0, points().map(|p| p.1).fold(0.0, f64::max));
    let (plot_top, plot_bottom) = (MARGIN_TOP + PLOT_TOP, MARGIN_TOP + PLOT_BOTTOM);
    let x = |v: f64| xs.map(v, PLOT_LEFT, PLOT_RIGHT);
    let y = |v: f64| ys.map(v, plot_bottom, plot_top);
    svg.text((PLOT_LEFT, MARGIN_TOP + 18.0), BOLD, title);
    for v in ys.ticks() {
        svg.line((PLOT_LEFT, y(v)), (PLOT_RIGHT, y(v)), GRID);
        svg.text((PLOT_LEFT - 6.0, y(v) + 4.0), END, &tick_label(v, ys.step));
    }
    for v in xs.ticks() {
        svg.line((x(v), plot_top), (x(v), plot_bottom), GRID);
        svg.text((x(v), plot_bottom + 16.0), MIDDLE, &tick_label(v, xs.step));
    }
    svg.line((PLOT_LEFT, plot_top), (PLOT_LEFT, plot_bottom), AXIS);
    svg.line((PLOT_LEFT, plot_bottom), (PLOT_RIGHT, plot_bottom), AXIS);
    for (n, (name, line)) in lines.iter().enumerate() {
        let colour = CURVE_COLOURS[n % CURVE_COLOURS.len()];
        let mut sorted = line.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pts: Vec<String> = sorted
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            svg.0,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            pts.join(" ")
        );
        for &(px, py) in &sorted {
            let _ = writeln!(
                svg.0,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(px),
                y(py)
            );
        }
        let ly = plot_top + 8.0 + 18.0 * n as f64;
        let stroke = format!(r#"stroke="{colour}" stroke-width="3""#);
        svg.line((LEGEND_X, ly), (LEGEND_X + 20.0, ly), &stroke);
        svg.text((LEGEND_X + 26.0, ly + 4.0), "", name);
    }
    svg.text((CENTRE_X, plot_bottom + 36.0), MIDDLE, x_label);
    svg.0.push_str("</g>\n</svg>\n");
    svg.0
}

/// Parses every non-blank line into a sample; `Empty` if there are none.
fn parse(series: &str) -> Result<Vec<Sample>, PlotError> {
    let mut samples = Vec::new();
    for (i, text) in series.lines().enumerate() {
        let line = i + 1;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text).map_err(|_| PlotError::NotJson { line })?;
        let object = value.as_object().ok_or(PlotError::NotObject { line })?;
        let field = |field| match object.get(field) {
            Some(value) => Ok(value),
            None => Err(PlotError::MissingField { line, field }),
        };
        let bad = |field| PlotError::BadField { line, field };
        let time_s = field("time_ms")?.as_f64().ok_or(bad("time_ms"))? / 1000.0;
        let mut counts = [0; LINES.len()];
        for (count, &(_, name, ..)) in counts.iter_mut().zip(&LINES) {
            *count = field(name)?.as_u64().ok_or(bad(name))?;
        }
        samples.push(Sample { time_s, counts });
    }
    if samples.is_empty() {
        return Err(PlotError::Empty);
    }
    Ok(samples)
}

/// The rate of counter `k` (index into `LINES`) between each pair of consecutive samples.
/// Pairs whose time does not move forward are skipped.
fn rates(samples: &[Sample], k: usize) -> Vec<Rate> {
    let forward = samples.windows(2).filter(|w| w[1].time_s > w[0].time_s);
    let rate = |(a, b): (Sample, Sample)| {
        let delta = b.counts[k] as f64 - a.counts[k] as f64;
        (a.time_s, b.time_s, delta / (b.time_s - a.time_s))
    };
    forward.map(|w| rate((w[0], w[1]))).collect()
}

/// An axis range widened to whole multiples of a "nice" tick step (1, 2 or 5 times a
/// power of ten).
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    fn nice(lo: f64, hi: f64) -> Axis {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let raw = (hi - lo) / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = match raw / magnitude {
            n if n <= 1.0 => 1.0,
            n if n <= 2.0 => 2.0,
            n if n <= 5.0 => 5.0,
            _ => 10.0,
        } * magnitude;
        let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        Axis { lo, hi, step }
    }

    /// The tick values, each computed from its index so rounding does not accumulate.
    fn ticks(&self) -> impl Iterator<Item = f64> {
        let first = (self.lo / self.step).round() as i64;
        let last = (self.hi / self.step).round() as i64;
        (first..=last).map(|k| k as f64 * self.step)
    }

    /// Maps `v` from this axis onto `[start, end]` in user units.
    fn map(&self, v: f64, start: f64, end: f64) -> f64 {
        start + (v - self.lo) / (self.hi - self.lo) * (end - start)
    }
}

/// A tick value, compactly (`12k`, `1.5M`), with as many decimals as `step` needs.
fn tick_label(v: f64, step: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".to_string();
    }
    let (scale, suffix) = match v.abs() {
        a if a >= 1e9 => (1e9, "G"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let decimals = (-(step / scale).log10()).ceil().clamp(0.0, 9.0) as usize;
    let mut text = format!("{:.*}", decimals, v / scale);
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').trim_end_matches('.').len());
    }
    text + suffix
}

/// `s` made safe to put in XML text or a quoted attribute.
fn escape(s: &str) -> String {
    let s = s.replace('&', "&amp;").replace('<', "&lt;");
    s.replace('>', "&gt;").replace('"', "&quot;")
}

/// The document being written. Writing to a `String` cannot fail, so results are dropped.
struct Svg(String);

impl Svg {
    /// A line from one point to another; `attrs` give at least its stroke.
    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {attrs}/>"#
        );
    }

    /// `text`, escaped, at (x, y); `attrs` are extra attributes, each after a space.
    fn text(&mut self, (x, y): (f64, f64), attrs: &str, text: &str) {
        let text = escape(text);
        let _ = writeln!(
            self.0,
            r#"<text x="{x:.1}" y="{y:.1}"{attrs}>{text}</text>"#
        );
    }

    /// Panel `panel` (index into `TITLES`) of a chart over `samples` samples, given the
    /// time axis and every line's rates. The bottom panel labels the time ticks.
    fn panel(&mut self, panel: usize, time: &Axis, rates: &[Vec<Rate>], samples: usize) {
        let top = MARGIN_TOP + PANEL_H * panel as f64;
        let (plot_top, plot_bottom) = (top + PLOT_TOP, top + PLOT_BOTTOM);
        let mine: Vec<usize> = (0..LINES.len()).filter(|&k| LINES[k].0 == panel).collect();
        let per_s = || mine.iter().flat_map(|&k| &rates[k]).map(|r| r.2);
        let value = Axis::nice(per_s().fold(0.0, f64::min), per_s().fold(0.0, f64::max));
        let x = |t: f64| time.map(t, PLOT_LEFT, PLOT_RIGHT);
        let y = |v: f64| value.map(v, plot_bottom, plot_top);
        self.text((PLOT_LEFT, top + 18.0), BOLD, TITLES[panel]);
        for v in value.ticks() {
            self.line((PLOT_LEFT, y(v)), (PLOT_RIGHT, y(v)), GRID);
            let label = tick_label(v, value.step);
            self.text((PLOT_LEFT - 6.0, y(v) + 4.0), END, &label);
        }
        for t in time.ticks() {
            self.line((x(t), plot_top), (x(t), plot_bottom), GRID);
            if panel + 1 == TITLES.len() {
                let label = tick_label(t, time.step);
                self.text((x(t), plot_bottom + 16.0), MIDDLE, &label);
            }
        }
        self.line((PLOT_LEFT, plot_top), (PLOT_LEFT, plot_bottom), AXIS);
        self.line((PLOT_LEFT, y(0.0)), (PLOT_RIGHT, y(0.0)), AXIS);
        if per_s().next().is_none() {
            let message = match samples {
                1 => "one sample: no rate to plot",
                _ => "time never moves forward: no rate to plot",
            };
            self.text((CENTRE_X, (plot_top + plot_bottom) / 2.0), MIDDLE, message);
        }
        for (n, &k) in mine.iter().enumerate() {
            let (.., label, colour) = LINES[k];
            let mut points = String::new();
            for &(from, to, r) in &rates[k] {
                let (x0, x1, yr) = (x(from), x(to), y(r));
                let _ = write!(points, "{x0:.1},{yr:.1} {x1:.1},{yr:.1} ");
            }
            if !points.is_empty() {
                let _ = writeln!(
                    self.0,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                    points.trim_end()
                );
            }
            let ly = plot_top + 8.0 + 18.0 * n as f64;
            let stroke = format!(r#"stroke="{colour}" stroke-width="3""#);
            self.line((LEGEND_X, ly), (LEGEND_X + 20.0, ly), &stroke);
            self.text((LEGEND_X + 26.0, ly + 4.0), "", label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series line with an extra field the plot ignores.
    fn sample(time_ms: f64, [f, es, ew, ed, sr, sw]: [u64; 6]) -> String {
        format!(
            r#"{{"time_ms":{time_ms},"vm_exits":7,"faults":{f},"evict_swap":{es},"evict_writeback":{ew},"evict_drop":{ed},"swap_reads":{sr},"swap_writes":{sw}}}"#
        )
    }

    fn three_samples() -> String {
        let lines = [
            sample(0.0, [0, 0, 0, 0, 0, 0]),
            sample(500.0, [100, 10, 4, 2, 6, 8]),
            sample(1500.0, [400, 30, 4, 12, 6, 20]),
        ];
        lines.join("\n") + "\n"
    }

    #[test]
    fn curves_have_a_line_and_points_per_series() {
        let lines = vec![
            ("clock".to_string(), vec![(16.0, 1500.0), (8.0, 3000.0)]),
            ("fifo".to_string(), vec![(8.0, 3100.0), (16.0, 1500.0)]),
        ];
        let svg = render_curves_svg("Faults", "RAM (MiB)", &lines);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains(">clock</text>") && svg.contains(">fifo</text>"));
        assert!(svg.contains(">RAM (MiB)</text>"));
        assert_eq!(svg, render_curves_svg("Faults", "RAM (MiB)", &lines));
    }

    #[test]
    fn renders_three_panels_with_six_lines() {
        let svg = render_svg(&three_samples()).unwrap();
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 6);
        for label in "faults,to swap,write-back,dropped,pages read,pages written".split(',') {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(svg.contains(r#"fill="white""#) && svg.contains(">time (s)</text>"));
        assert!(svg.contains(">300</text>"), "a y tick on the faults panel");
        assert!(!svg.contains("no rate to plot"));
        assert_eq!(svg, render_svg(&three_samples()).unwrap(), "deterministic");
    }

    #[test]
    fn rates_are_per_second_between_samples() {
        let samples = parse(&three_samples()).unwrap();
        assert_eq!(rates(&samples, 0), [(0.0, 0.5, 200.0), (0.5, 1.5, 300.0)]);
        assert_eq!(rates(&samples, 2), [(0.0, 0.5, 8.0), (0.5, 1.5, 0.0)]);
        assert_eq!(rates(&samples, 5), [(0.0, 0.5, 16.0), (0.5, 1.5, 12.0)]);
    }

    #[test]
    fn rates_skip_pairs_without_forward_time() {
        let times = [0.0, 1000.0, 1000.0, 3000.0, 2000.0];
        let lines = times.iter().zip(0..).map(|(&t, k)| sample(t, [k * 10; 6]));
        let samples = parse(&lines.collect::<Vec<_>>().join("\n")).unwrap();
        assert_eq!(rates(&samples, 3), [(0.0, 1.0, 10.0), (1.0, 3.0, 5.0)]);
    }

    #[test]
    fn single_sample_has_axes_but_no_lines() {
        let svg = render_svg(&sample(12.5, [1, 2, 3, 4, 5, 6])).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 0);
        let notes = svg.matches(">one sample: no rate to plot</text>");
        assert_eq!(notes.count(), 3);
        assert!(svg.contains(r##"stroke="#333333""##));
    }

    #[test]
    fn non_json_line_names_its_line() {
        let err = render_svg(&format!("{}\nnot json\n", sample(0.0, [0; 6]))).unwrap_err();
        assert!(matches!(err, PlotError::NotJson { line: 2, .. }), "{err:?}");
        assert_eq!(err.to_string(), "line 2: not valid JSON");
        let err = render_svg("[1, 2]").unwrap_err();
        assert!(matches!(err, PlotError::NotObject { line: 1 }), "{err:?}");
    }

    #[test]
    fn missing_or_mistyped_fields_are_named() {
        let error = |series: &str| render_svg(series).unwrap_err().to_string();
        assert_eq!(
            error(r#"{"faults":1}"#),
            "line 1: field `time_ms` is missing"
        );
        let series = sample(0.0, [0; 6]).replace(r#","evict_drop":0"#, "");
        assert_eq!(
            error(&format!("\n{series}")),
            "line 2: field `evict_drop` is missing"
        );
        let series = sample(0.0, [0; 6]).replace(":0,", ":-3,");
        assert_eq!(error(&series), "line 1: field `faults` has the wrong type");
        let err = render_svg(r#"{"time_ms":"soon"}"#).unwrap_err();
        assert!(matches!(
            err,
            PlotError::BadField {
                line: 1,
                field: "time_ms"
            }
        ));
    }

    #[test]
    fn empty_series_has_no_samples() {
        for series in ["", "\n", "  \n\n"] {
            let err = render_svg(series).unwrap_err();
            assert!(matches!(err, PlotError::Empty), "{err:?}");
            assert_eq!(err.to_string(), "no samples");
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
        let svg = render_svg(&three_samples()).unwrap();
        assert!(svg.contains(">Swap traffic: reads &amp; writes (pages per second)</text>"));
        assert!(!svg.contains("reads & writes"));
    }

    #[test]
    fn axes_use_nice_ticks_with_compact_labels() {
        let axis = Axis::nice(0.0, 930.0);
        assert_eq!((axis.lo, axis.hi, axis.step), (0.0, 1000.0, 200.0));
        let ticks: Vec<_> = axis.ticks().collect();
        assert_eq!(ticks, [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        let flat = Axis::nice(0.0, 0.0);
        assert_eq!((flat.lo, flat.hi, flat.step), (0.0, 1.0, 0.2));
        assert_eq!(tick_label(12_000.0, 2_000.0), "12k");
        assert_eq!(tick_label(1_500_000.0, 500_000.0), "1.5M");
        assert_eq!(tick_label(2e9, 1e9), "2G");
        assert_eq!(tick_label(500.0, 100.0), "500");
        assert_eq!(tick_label(0.15000000000000002, 0.05), "0.15");
        assert_eq!(tick_label(1e-17, 0.2), "0");
        assert_eq!(tick_label(-1_000.0, 500.0), "-1k");
    }
}

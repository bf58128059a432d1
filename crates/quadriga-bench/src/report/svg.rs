//! The charts, drawn as SVG text: a ratio axis on a log scale, a line per
//! run for a suite, and bars for the headline.
//!
//! Hand-written rather than through a plotting crate: two simple chart kinds,
//! text that diffs well in the repository, and nothing to load in a browser.

use std::fmt::Write as _;

use super::load::{Run, RunRow};

/// Colours of the runs' lines, oldest first; the palette repeats.
const PALETTE: [&str; 8] = [
    "#9aa5b1", "#7b8ce0", "#56b4a9", "#e0a84b", "#c46bd6", "#5aa0d8", "#d9664f", "#1f4e99",
];
const GREEN: &str = "#2e8b57";
const RED: &str = "#c0392b";
const GREY: &str = "#888888";
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";

/// Escapes text for XML and HTML.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A ratio, readable: `1.07×`, `91.6×`, `0.14×`.
pub(crate) fn ratio_text(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A log scale from ratios to pixels, between `lo` and `hi` (1× always in).
#[derive(Debug, Clone, Copy)]
struct LogScale {
    lo: f64,
    hi: f64,
    /// Pixel of `lo` and of `hi`.
    from: f64,
    to: f64,
}

impl LogScale {
    /// A scale covering `values` (and 1×) with some room, onto `from..to`.
    fn covering(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Self {
        let (mut lo, mut hi) = (1.0_f64, 1.0_f64);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        Self {
            lo: lo / 1.3,
            hi: hi * 1.3,
            from,
            to,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        let t = (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        self.from + t * (self.to - self.from)
    }

    /// Round ratios (1, 2, 5 times a power of ten) inside the scale.
    fn ticks(&self) -> Vec<f64> {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powi(self.lo.log10().floor() as i32);
        while decade <= self.hi {
            for m in [1.0, 2.0, 5.0] {
                let t = decade * m;
                if t >= self.lo && t <= self.hi {
                    ticks.push(t);
                }
            }
            decade *= 10.0;
        }
        ticks
    }
}

/// A tick's label: `0.1×`, `2×`, `50×`.
fn tick_text(t: f64) -> String {
    if t >= 1.0 {
        format!("{t:.0}×")
    } else {
        let s = format!("{t:.3}");
        format!("{}×", s.trim_end_matches('0'))
    }
}

/// The rows of a suite's chart: every row id of its runs, in the order the
/// latest run that has it lists it. Returns `(id, benchmark, peer)`.
pub(crate) fn row_keys(runs: &[Run]) -> Vec<(String, String, String)> {
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for run in runs.iter().rev() {
        for row in &run.rows {
            if !keys.iter().any(|(id, _, _)| *id == row.id) {
                keys.push((row.id.clone(), row.benchmark.clone(), row.peer.clone()));
            }
        }
    }
    keys
}

/// A suite's chart: the ratio of each row (numbered 1, 2, ... along the
/// bottom) to its peer, one line per run, oldest grey to newest dark blue, so
/// that a run below the others shows a regression; goals are short black
/// dashes, 1× a grey line.
pub(crate) fn suite_chart(suite: &str, runs: &[Run]) -> String {
    let keys = row_keys(runs);
    let n = keys.len().max(1);
    let (left, right, top, bottom) = (56.0, 16.0, 28.0, 40.0);
    let width = (left + right + 56.0 * n as f64).max(480.0);
    let plot_h = 240.0;
    let height = top + plot_h + bottom;
    let goals: Vec<Option<f64>> = keys
        .iter()
        .map(|(id, _, _)| latest_row(runs, id).and_then(|r| r.goal))
        .collect();
    let values = runs
        .iter()
        .flat_map(|r| r.rows.iter().filter_map(|row| row.ratio))
        .chain(goals.iter().flatten().copied());
    let y = LogScale::covering(values, top + plot_h, top);
    let step = (width - left - right) / n as f64;
    let x = |i: usize| left + step * (i as f64 + 0.5);

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" {FONT}>\
         <title>{} — ratio to each peer, one line per run</title>\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
        esc(suite)
    );
    axis_y(&mut svg, &y, left, width - right);
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"16\" font-weight=\"bold\">{} — Quadriga ÷ peer (above 1× = Quadriga ahead)</text>",
        esc(suite)
    );
    for (i, (id, benchmark, peer)) in keys.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\"><title>{}: {} vs {}</title>{}</text>",
            x(i),
            top + plot_h + 16.0,
            esc(id),
            esc(benchmark),
            esc(peer),
            i + 1
        );
        if let Some(g) = goals[i] {
            let gy = y.at(g);
            let _ = write!(
                svg,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\" stroke=\"black\" \
                 stroke-width=\"2\" stroke-dasharray=\"4 2\"><title>goal ≥ {}</title></line>",
                x(i) - step * 0.35,
                x(i) + step * 0.35,
                ratio_text(g)
            );
        }
    }
    for (k, run) in runs.iter().enumerate() {
        let colour = run_colour(k, runs.len());
        let newest = k + 1 == runs.len();
        let mut path = String::new();
        let mut pen_down = false;
        let mut dots = String::new();
        for (i, (id, _, _)) in keys.iter().enumerate() {
            match run.rows.iter().find(|r| r.id == *id).and_then(|r| r.ratio) {
                Some(r) => {
                    let (px, py) = (x(i), y.at(r));
                    let _ = write!(path, "{}{px:.1},{py:.1} ", if pen_down { "L" } else { "M" });
                    pen_down = true;
                    let _ = write!(
                        dots,
                        "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"{}\" fill=\"{colour}\">\
                         <title>{}: {} {}</title></circle>",
                        if newest { 4 } else { 3 },
                        esc(&run.label()),
                        esc(id),
                        ratio_text(r)
                    );
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(
                svg,
                "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{}\"/>",
                path.trim_end(),
                if newest { 2.5 } else { 1.5 }
            );
        }
        svg.push_str(&dots);
    }
    svg.push_str("</svg>");
    svg
}

/// The colour of run `k` of `n`: the newest is always the dark blue.
pub(crate) fn run_colour(k: usize, n: usize) -> &'static str {
    let from_newest = n - 1 - k;
    PALETTE[PALETTE.len() - 1 - from_newest % PALETTE.len()]
}

/// The latest run's row `id`, if a run has it.
fn latest_row<'a>(runs: &'a [Run], id: &str) -> Option<&'a RunRow> {
    runs.iter()
        .rev()
        .find_map(|r| r.rows.iter().find(|row| row.id == id))
}

/// Horizontal grid lines and labels at the round ratios; 1× darker.
fn axis_y(svg: &mut String, y: &LogScale, x0: f64, x1: f64) {
    for t in y.ticks() {
        let py = y.at(t);
        let (stroke, w) = if (t - 1.0).abs() < 1e-9 {
            (GREY, 1.5)
        } else {
            ("#e3e3e3", 1.0)
        };
        let _ = write!(
            svg,
            "<line x1=\"{x0}\" x2=\"{x1}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"{stroke}\" stroke-width=\"{w}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            x0 - 6.0,
            py + 4.0,
            tick_text(t)
        );
    }
}

/// The headline chart: for every row with a ratio goal in the newest run of
/// each suite, a bar from 1× to the ratio (green: goal met, red: not), the
/// goal as a black tick, on one log axis.
pub(crate) fn headline_chart(rows: &[(&Run, &RunRow)]) -> String {
    let label_w = 540.0;
    let (top, row_h, bar_w, right) = (40.0, 22.0, 360.0, 70.0);
    let width = label_w + bar_w + right;
    let height = top + row_h * rows.len().max(1) as f64 + 30.0;
    let values = rows
        .iter()
        .flat_map(|(_, r)| r.ratio.into_iter().chain(r.goal));
    let x = LogScale::covering(values, label_w, label_w + bar_w);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" {FONT}>\
         <title>Quadriga against its peers: the goals of the latest runs</title>\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"8\" y=\"18\" font-weight=\"bold\">Quadriga ÷ peer, latest run of each suite \
         (log scale; above 1× = Quadriga ahead; black tick = goal)</text>"
    );
    let bottom = top + row_h * rows.len() as f64;
    for t in x.ticks() {
        let px = x.at(t);
        let (stroke, w) = if (t - 1.0).abs() < 1e-9 {
            (GREY, 1.5)
        } else {
            ("#e3e3e3", 1.0)
        };
        let _ = write!(
            svg,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"{stroke}\" stroke-width=\"{w}\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            top - 6.0,
            bottom + 16.0,
            tick_text(t)
        );
    }
    for (i, (run, row)) in rows.iter().enumerate() {
        let cy = top + row_h * (i as f64 + 0.5);
        let label = truncate(
            &format!("{}: {} vs {}", run.suite, row.benchmark, row.peer),
            84,
        );
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>",
            label_w - 8.0,
            cy + 4.0,
            esc(&format!("{} ({})", row.id, run.label())),
            esc(&label)
        );
        let Some(r) = row.ratio else {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">peer skipped</text>",
                x.at(1.0) + 4.0,
                cy + 4.0
            );
            continue;
        };
        let (x0, x1) = (x.at(1.0), x.at(r));
        let colour = match row.met {
            Some(true) => GREEN,
            Some(false) => RED,
            None => GREY,
        };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x0.min(x1),
            cy - 7.0,
            (x1 - x0).abs().max(1.0),
            14.0,
            x.at(r).max(x0).max(row.goal.map_or(0.0, |g| x.at(g))) + 6.0,
            cy + 4.0,
            esc(&ratio_text(r))
        );
        if let Some(g) = row.goal {
            let gx = x.at(g);
            let _ = write!(
                svg,
                "<line x1=\"{gx:.1}\" x2=\"{gx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\" \
                 stroke-width=\"2.5\"><title>goal {}</title></line>",
                cy - 9.0,
                cy + 9.0,
                esc(&row.goal_text)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::load::{parse, tests::sample};
    use super::*;

    fn run(date: &str, rows: &[(&str, f64, Option<f64>)]) -> Run {
        parse(
            &sample("foundation", date, rows),
            Path::new("x.json"),
            false,
        )
        .unwrap()
        .unwrap()
        .remove(0)
    }

    /// The y of the point drawn for `ratio` (its circle's `cy`).
    fn dot_y(svg: &str, ratio: f64) -> f64 {
        let title = format!("{}</title></circle>", ratio_text(ratio));
        let end = svg.find(&title).expect("a dot for the ratio");
        let start = svg[..end].rfind("<circle").unwrap();
        let cy = &svg[start..end];
        let cy = &cy[cy.find("cy=\"").unwrap() + 4..];
        cy[..cy.find('"').unwrap()].parse().unwrap()
    }

    #[test]
    fn the_log_scale_is_monotonic_and_puts_one_inside() {
        let s = LogScale::covering([0.2, 50.0].into_iter(), 100.0, 0.0);
        assert!(s.at(0.2) > s.at(1.0) && s.at(1.0) > s.at(50.0));
        let mid = s.at((0.2f64 * 50.0).sqrt());
        assert!((mid - (s.at(0.2) + s.at(50.0)) / 2.0).abs() < 1e-6);
        let ticks = s.ticks();
        assert!(ticks.contains(&1.0) && ticks.contains(&10.0), "{ticks:?}");
        assert_eq!(tick_text(0.5), "0.5×");
        assert_eq!(tick_text(20.0), "20×");
    }

    #[test]
    fn a_regression_draws_below_the_earlier_run() {
        let runs = [
            run(
                "2026-12-01T00:00:00Z",
                &[("a", 2.0, Some(0.8)), ("b", 1.0, None)],
            ),
            run(
                "2026-12-06T00:00:00Z",
                &[("a", 0.5, Some(0.8)), ("b", 1.0, None)],
            ),
        ];
        let svg = suite_chart("foundation", &runs);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 2, "a line per run");
        assert!(
            dot_y(&svg, 0.5) > dot_y(&svg, 2.0),
            "lower ratio, lower dot"
        );
        assert!(svg.contains("goal ≥ 0.80×"));
        assert!(
            svg.contains("stroke=\"#1f4e99\""),
            "the newest run is dark blue"
        );
    }

    #[test]
    fn the_headline_colours_goals_met_and_missed() {
        let r = run(
            "2026-12-06T00:00:00Z",
            &[("fast", 2.0, Some(0.8)), ("slow", 0.5, Some(0.9))],
        );
        let rows: Vec<(&Run, &RunRow)> = r.rows.iter().map(|row| (&r, row)).collect();
        let svg = headline_chart(&rows);
        assert_eq!(svg.matches(GREEN).count(), 1);
        assert_eq!(svg.matches(RED).count(), 1);
        assert!(svg.contains("2.00×") && svg.contains("0.50×"));
        assert!(svg.contains("foundation: bench fast vs peer"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}

//! Results: one [`Row`] per comparison, printed as a table and written as JSON.
//!
//! A row compares a Quadriga measurement with a peer's measured in the same
//! run. `ratio` is *Quadriga ÷ peer* for metrics where higher is better and
//! *peer ÷ Quadriga* for latency, so a ratio above 1 always means Quadriga is
//! ahead.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::machine::Machine;
use super::timing::format_seconds;

/// What a row's values measure. Higher is better, except for latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Unit {
    /// Items (tasks) completed per second.
    ItemsPerSec,
    /// Parallel efficiency, `T1 / (n · Tn)`, as a fraction (1.0 = perfect).
    Efficiency,
    /// A latency in microseconds: lower is better.
    Latency,
    /// A wall-clock time in seconds: lower is better.
    Seconds,
    /// CPU time per job in milliseconds: lower is better.
    CpuMsPerJob,
}

impl Unit {
    /// A value of this unit, readable.
    pub(crate) fn format(self, value: f64) -> String {
        match self {
            Unit::ItemsPerSec => format_rate(value),
            Unit::Efficiency => format!("{:.1}% eff", value * 100.0),
            Unit::Latency => format!("{value:.1} µs"),
            Unit::Seconds => format_seconds(value),
            Unit::CpuMsPerJob => format!("{value:.3} ms/job"),
        }
    }

    /// Whether a lower value is better (the ratio is then peer ÷ Quadriga).
    fn lower_is_better(self) -> bool {
        matches!(self, Unit::Latency | Unit::Seconds | Unit::CpuMsPerJob)
    }
}

/// Items per second with a k/M/G prefix.
fn format_rate(per_s: f64) -> String {
    if per_s >= 1e9 {
        format!("{:.2} G/s", per_s / 1e9)
    } else if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.1} /s")
    }
}

/// The goal a row is held to, from the issue that asked for the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Goal {
    /// No goal: the row is a reference.
    None,
    /// `ratio >= min`.
    RatioAtLeast {
        /// The smallest acceptable ratio.
        min: f64,
    },
    /// Quadriga's own value `>= min` (in the row's unit), whatever the peer does.
    ValueAtLeast {
        /// The smallest acceptable value.
        min: f64,
    },
    /// Quadriga's own value `<= max` (in the row's unit), whatever the peer does.
    ValueAtMost {
        /// The largest acceptable value.
        max: f64,
    },
}

impl Goal {
    /// The goal, readable.
    fn text(self, unit: Unit) -> String {
        match self {
            Goal::None => "—".to_owned(),
            Goal::RatioAtLeast { min } => format!("≥ {}×", short(min)),
            Goal::ValueAtLeast { min } => match unit {
                Unit::Efficiency => format!("≥ {}%", min * 100.0),
                Unit::ItemsPerSec => format!("≥ {}", format_rate(min)),
                Unit::Latency => format!("≤ {min} µs"),
                Unit::Seconds | Unit::CpuMsPerJob => format!("≥ {}", unit.format(min)),
            },
            Goal::ValueAtMost { max } => match unit {
                Unit::CpuMsPerJob => format!("≤ {} ms/job", short(max)),
                _ => format!("≤ {}", unit.format(max)),
            },
        }
    }
}

/// A number with at most two decimals and no trailing zeros: `0.87`, `5`.
fn short(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One comparison: Quadriga against one peer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// The suite that produced the row.
    pub(crate) suite: &'static str,
    /// A stable key for the row, for tools comparing runs.
    pub(crate) id: &'static str,
    /// What was measured, readable.
    pub(crate) benchmark: String,
    /// The unit of `quadriga` and `peer_value`.
    pub(crate) unit: Unit,
    /// Quadriga's value.
    pub(crate) quadriga: f64,
    /// The peer's name.
    pub(crate) peer: String,
    /// The peer's value; `None` when the peer was skipped.
    pub(crate) peer_value: Option<f64>,
    /// Why the peer was skipped.
    pub(crate) skipped: Option<String>,
    /// `quadriga / peer_value`.
    pub(crate) ratio: Option<f64>,
    /// The goal.
    pub(crate) goal: Goal,
    /// The goal, readable.
    pub(crate) goal_text: String,
    /// Whether the goal is met; `None` without a goal or when it cannot be told.
    pub(crate) met: Option<bool>,
    /// A line of raw timings for people.
    pub(crate) note: String,
    /// Every raw number behind the row.
    pub(crate) details: serde_json::Value,
}

impl Row {
    /// A row; `peer_value` is `Err(reason)` when the peer was skipped.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        suite: &'static str,
        id: &'static str,
        benchmark: impl Into<String>,
        unit: Unit,
        quadriga: f64,
        peer: impl Into<String>,
        peer_value: Result<f64, String>,
        goal: Goal,
    ) -> Self {
        let (peer_value, skipped) = match peer_value {
            Ok(v) => (Some(v), None),
            Err(why) => (None, Some(why)),
        };
        let ratio = peer_value.map(|p| {
            if unit.lower_is_better() {
                p / quadriga
            } else {
                quadriga / p
            }
        });
        let met = match goal {
            Goal::None => None,
            Goal::RatioAtLeast { min } => ratio.map(|r| r >= min),
            Goal::ValueAtLeast { min } => Some(quadriga >= min),
            Goal::ValueAtMost { max } => Some(quadriga <= max),
        };
        Self {
            suite,
            id,
            benchmark: benchmark.into(),
            unit,
            quadriga,
            peer: peer.into(),
            peer_value,
            skipped,
            ratio,
            goal,
            goal_text: goal.text(unit),
            met,
            note: String::new(),
            details: serde_json::Value::Null,
        }
    }

    /// A row with no peer: a value of Quadriga's own held to an absolute
    /// goal (`ValueAtLeast`, `ValueAtMost`) or to none.
    pub(crate) fn alone(
        suite: &'static str,
        id: &'static str,
        benchmark: impl Into<String>,
        unit: Unit,
        quadriga: f64,
        goal: Goal,
    ) -> Self {
        let mut row = Self::new(
            suite,
            id,
            benchmark,
            unit,
            quadriga,
            "—",
            Err(String::new()),
            goal,
        );
        row.skipped = None;
        row
    }

    /// Adds the human-readable timing line.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// Adds the raw numbers.
    pub(crate) fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Everything one invocation measured: what `--json` writes.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// Version of this JSON layout.
    pub(crate) schema: u32,
    /// The suites run.
    pub(crate) suites: Vec<&'static str>,
    /// Whether `--quick` sizes were used (not comparable with full runs).
    pub(crate) quick: bool,
    /// Threads given to every pool, Quadriga's and the peers'.
    pub(crate) threads: usize,
    /// The machine and build.
    pub(crate) machine: Machine,
    /// Wall-clock time of the whole run.
    pub(crate) elapsed_s: f64,
    /// The comparisons.
    pub(crate) rows: Vec<Row>,
}

/// The rows as a Markdown table, followed by each row's timing note.
pub(crate) fn table(rows: &[Row]) -> String {
    let header = [
        "suite",
        "benchmark",
        "quadriga",
        "peer",
        "peer value",
        "ratio",
        "goal",
        "met?",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.suite.to_owned(),
                r.benchmark.clone(),
                r.unit.format(r.quadriga),
                r.peer.clone(),
                match (r.peer_value, &r.skipped) {
                    (Some(v), _) => r.unit.format(v),
                    (None, Some(_)) => "skipped".to_owned(),
                    (None, None) => "—".to_owned(),
                },
                r.ratio
                    .map_or_else(|| "—".to_owned(), |x| format!("{x:.2}×")),
                r.goal_text.clone(),
                match (r.goal, r.met) {
                    (Goal::None, _) => "—".to_owned(),
                    (_, Some(true)) => "yes".to_owned(),
                    (_, Some(false)) => "no".to_owned(),
                    (_, None) => "n/a".to_owned(),
                },
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        out.push('|');
        for (i, c) in cols.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            // Numbers read best right-aligned.
            let right = matches!(i, 2 | 4 | 5);
            if right {
                let _ = write!(out, " {}{} |", " ".repeat(pad), c);
            } else {
                let _ = write!(out, " {}{} |", c, " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    line(
        &widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if matches!(i, 2 | 4 | 5) {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    "-".repeat(*w)
                }
            })
            .collect::<Vec<_>>(),
    );
    for c in &cells {
        line(c);
    }
    let notes: Vec<&Row> = rows.iter().filter(|r| !r.note.is_empty()).collect();
    if !notes.is_empty() {
        out.push('\n');
        for r in notes {
            let _ = writeln!(out, "* {}: {}", r.id, r.note);
            if let Some(why) = &r.skipped {
                let _ = writeln!(out, "  (peer skipped: {why})");
            }
        }
    }
    out
}

/// Writes `report` as pretty JSON to `path`, creating its directory.
pub(crate) fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_goals() {
        let r = Row::new(
            "s",
            "a",
            "b",
            Unit::ItemsPerSec,
            2.0,
            "p",
            Ok(4.0),
            Goal::RatioAtLeast { min: 0.8 },
        );
        assert_eq!(r.ratio, Some(0.5));
        assert_eq!(r.met, Some(false));
        let r = Row::new(
            "s",
            "a",
            "b",
            Unit::Efficiency,
            0.95,
            "p",
            Err("gone".into()),
            Goal::ValueAtLeast { min: 0.9 },
        );
        assert_eq!(r.ratio, None);
        assert_eq!(r.met, Some(true));
        let t = table(&[r]);
        assert!(t.contains("skipped"), "{t}");
        assert!(t.contains("≥ 90%"), "{t}");
    }

    #[test]
    fn lower_is_better_and_rows_alone() {
        let r = Row::new(
            "s",
            "a",
            "b",
            Unit::Seconds,
            1.0,
            "p",
            Ok(1.1),
            Goal::RatioAtLeast { min: 1.0 / 1.15 },
        );
        assert_eq!(r.ratio, Some(1.1));
        assert_eq!(r.met, Some(true));
        assert_eq!(r.goal_text, "≥ 0.87×");
        let r = Row::alone(
            "s",
            "c",
            "d",
            Unit::CpuMsPerJob,
            0.25,
            Goal::ValueAtMost { max: 0.1 },
        );
        assert_eq!((r.ratio, r.met), (None, Some(false)));
        assert_eq!(r.goal_text, "≤ 0.1 ms/job");
        let t = table(&[r]);
        assert!(!t.contains("skipped"), "{t}");
    }
}

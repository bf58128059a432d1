//! Reading the JSON files the suites write into runs.
//!
//! Only the fields the report draws are read; the rest (timings, details)
//! stay in the files. A file that is not a suite's results (another JSON
//! file in the folder) is skipped with a message, not an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// One suite's results from one run: one JSON file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    /// The suite.
    pub(crate) suite: String,
    /// When it ran (`2026-12-06T05:52:23Z`), the key that orders runs.
    pub(crate) date: String,
    /// The commit it measured (short), if known.
    pub(crate) commit: Option<String>,
    /// The share of the machine's CPU other processes took during the run.
    pub(crate) foreign_cpu_share: Option<f64>,
    /// Its rows, in the order the suite wrote them.
    pub(crate) rows: Vec<RunRow>,
    /// The file it came from.
    pub(crate) file: PathBuf,
}

impl Run {
    /// A short label: the date to the minute and the commit.
    pub(crate) fn label(&self) -> String {
        let date = self.date.get(..16).unwrap_or(&self.date).replace('T', " ");
        match &self.commit {
            Some(c) => format!("{date} ({c})"),
            None => date,
        }
    }
}

/// One row of a run: a Quadriga measurement against a peer's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunRow {
    /// The row's stable key.
    pub(crate) id: String,
    /// What was measured.
    pub(crate) benchmark: String,
    /// The peer.
    pub(crate) peer: String,
    /// Quadriga against the peer, above 1 when Quadriga is ahead; `None`
    /// when the peer was skipped.
    pub(crate) ratio: Option<f64>,
    /// The smallest ratio the goal asks for, for ratio goals.
    pub(crate) goal: Option<f64>,
    /// The goal, readable (`≥ 0.8×`, `—`).
    pub(crate) goal_text: String,
    /// Whether the goal was met.
    pub(crate) met: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct FileJson {
    schema: u32,
    #[serde(default)]
    quick: bool,
    machine: MachineJson,
    rows: Vec<RowJson>,
}

#[derive(Debug, Deserialize)]
struct MachineJson {
    date_utc: Option<String>,
    git_commit: Option<String>,
    foreign_cpu_share: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RowJson {
    suite: String,
    id: String,
    benchmark: String,
    peer: String,
    ratio: Option<f64>,
    goal: Option<GoalJson>,
    #[serde(default)]
    goal_text: String,
    met: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct GoalJson {
    kind: String,
    min: Option<f64>,
}

/// Parses one results file into one run per suite in it. `Ok(None)` for a
/// JSON file that is not a suite's results, or a `--quick` run unless
/// `quick` is set.
pub(crate) fn parse(text: &str, file: &Path, quick: bool) -> anyhow::Result<Option<Vec<Run>>> {
    let Ok(json) = serde_json::from_str::<FileJson>(text) else {
        return Ok(None);
    };
    anyhow::ensure!(
        json.schema == 1,
        "{}: results schema {} (this report reads 1)",
        file.display(),
        json.schema
    );
    if json.quick && !quick {
        return Ok(None);
    }
    let date = json
        .machine
        .date_utc
        .with_context(|| format!("{}: no machine.date_utc", file.display()))?;
    let commit = json.machine.git_commit.map(|c| {
        let dirty = c.ends_with("-dirty");
        let short: String = c.chars().take(7).collect();
        if dirty { format!("{short}+") } else { short }
    });
    let mut by_suite: BTreeMap<String, Vec<RunRow>> = BTreeMap::new();
    for row in json.rows {
        let goal = row
            .goal
            .filter(|g| g.kind == "ratio_at_least")
            .and_then(|g| g.min);
        by_suite.entry(row.suite).or_default().push(RunRow {
            id: row.id,
            benchmark: row.benchmark,
            peer: row.peer,
            ratio: row.ratio.filter(|r| r.is_finite() && *r > 0.0),
            goal,
            goal_text: row.goal_text,
            met: row.met,
        });
    }
    Ok(Some(
        by_suite
            .into_iter()
            .map(|(suite, rows)| Run {
                suite,
                date: date.clone(),
                commit: commit.clone(),
                foreign_cpu_share: json.machine.foreign_cpu_share,
                rows,
                file: file.to_owned(),
            })
            .collect(),
    ))
}

/// Every run in `inputs` (files, or folders searched for `*.json` to any
/// depth), grouped by suite, each suite's runs oldest first. A run seen
/// twice (the same suite and date) is kept once.
pub(crate) fn load(inputs: &[PathBuf], quick: bool) -> anyhow::Result<BTreeMap<String, Vec<Run>>> {
    let mut files = Vec::new();
    for input in inputs {
        collect_files(input, &mut files)?;
    }
    files.sort();
    let mut suites: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        match parse(&text, &file, quick)? {
            Some(runs) => {
                for run in runs {
                    suites.entry(run.suite.clone()).or_default().push(run);
                }
            }
            None => eprintln!("report: skipped {} (not full results)", file.display()),
        }
    }
    for runs in suites.values_mut() {
        runs.sort_by(|a, b| a.date.cmp(&b.date));
        runs.dedup_by(|a, b| a.date == b.date);
    }
    Ok(suites)
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(&p, files)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            files.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A results file of `suite` at `date` with rows `(id, ratio, goal min)`.
    pub(crate) fn sample(suite: &str, date: &str, rows: &[(&str, f64, Option<f64>)]) -> String {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|&(id, ratio, goal)| {
                serde_json::json!({
                    "suite": suite,
                    "id": id,
                    "benchmark": format!("bench {id}"),
                    "unit": "items_per_sec",
                    "quadriga": ratio,
                    "peer": "peer",
                    "peer_value": 1.0,
                    "skipped": null,
                    "ratio": ratio,
                    "goal": match goal {
                        Some(min) => serde_json::json!({ "kind": "ratio_at_least", "min": min }),
                        None => serde_json::json!({ "kind": "none" }),
                    },
                    "goal_text": "g",
                    "met": goal.map(|g| ratio >= g),
                    "note": "",
                    "details": {},
                })
            })
            .collect();
        serde_json::json!({
            "schema": 1,
            "suites": [suite],
            "quick": false,
            "threads": 2,
            "machine": {
                "cores": 2,
                "date_utc": date,
                "git_commit": "0123456789abcdef-dirty",
                "foreign_cpu_share": 0.01,
            },
            "elapsed_s": 1.0,
            "rows": rows,
        })
        .to_string()
    }

    #[test]
    fn a_results_file_becomes_a_run() {
        let text = sample(
            "foundation",
            "2026-12-06T05:52:23Z",
            &[("a", 1.5, Some(0.8)), ("b", 0.5, None)],
        );
        let runs = parse(&text, Path::new("x.json"), false).unwrap().unwrap();
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!(run.suite, "foundation");
        assert_eq!(run.commit.as_deref(), Some("0123456+"));
        assert_eq!(run.label(), "2026-12-06 05:52 (0123456+)");
        assert_eq!(run.rows[0].goal, Some(0.8));
        assert_eq!(run.rows[1].goal, None);
        assert_eq!(run.rows[0].ratio, Some(1.5));
    }

    #[test]
    fn other_json_and_quick_runs_are_skipped() {
        assert!(
            parse("{\"a\": 1}", Path::new("x.json"), false)
                .unwrap()
                .is_none()
        );
        let quick = sample("aio", "2026-12-06T05:52:23Z", &[("a", 1.0, None)])
            .replace("\"quick\":false", "\"quick\":true");
        assert!(parse(&quick, Path::new("q.json"), false).unwrap().is_none());
        assert!(parse(&quick, Path::new("q.json"), true).unwrap().is_some());
        let newer =
            sample("aio", "2026-12-06T05:52:23Z", &[]).replace("\"schema\":1", "\"schema\":2");
        assert!(parse(&newer, Path::new("n.json"), false).is_err());
    }

    #[test]
    fn runs_load_from_folders_oldest_first_once_each() {
        let dir = std::env::temp_dir().join(format!("qbench-report-{}", std::process::id()));
        let sub = dir.join("2026-12-06");
        std::fs::create_dir_all(&sub).unwrap();
        let late = sample("aio", "2026-12-06T06:00:00Z", &[("a", 1.0, None)]);
        let early = sample("aio", "2026-12-05T06:00:00Z", &[("a", 2.0, None)]);
        std::fs::write(sub.join("late.json"), &late).unwrap();
        std::fs::write(dir.join("early.json"), &early).unwrap();
        std::fs::write(dir.join("copy.json"), &late).unwrap();
        std::fs::write(dir.join("notes.txt"), "not json").unwrap();
        let suites = load(std::slice::from_ref(&dir), false).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let runs = &suites["aio"];
        assert_eq!(runs.len(), 2, "{runs:#?}");
        assert_eq!(runs[0].rows[0].ratio, Some(2.0));
        assert_eq!(runs[1].rows[0].ratio, Some(1.0));
    }
}

//! `quadriga status`: one read-only snapshot of a cluster queue
//! ([`quadriga::cluster::read_status`]), printed as two aligned tables or,
//! with `--json`, as the [`Status`] document.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use quadriga::cluster::{BrokerConfig, Status, read_status};

pub(crate) const LONG_ABOUT: &str = "Show a cluster queue's workers and shards: one read-only \
snapshot of the broker (nothing is written). An unreachable broker is reported within a few \
seconds, with exit status 255.";

pub(crate) const AFTER_HELP: &str = "The --json document (field names are stable; counts are \
entries, ages and times are milliseconds):
  queue, server_time_ms (the broker's clock; ages are measured against it)
  workers[]: name, host, pid, slots, running, done, failed, refused,
             done_last_minute, heartbeat_age_ms, rss_bytes (null: not recorded),
             run_mean_us, run_max_us (entry run times of the last minute, in
             microseconds, timed on the worker; null: none finished), version, tasks[]
  shards[]:  shard, waiting, leased, oldest_waiting_age_ms, oldest_leased_age_ms
             (null: none), dead_letters, delayed
  totals:    workers, slots, waiting, leased, dead_letters, delayed, done_last_minute,
             run_mean_us (the workers' means weighted by their completions), run_max_us

Examples:
  quadriga status --broker redis://127.0.0.1:6379/
  quadriga status --broker redis://broker:6379/ --queue squares --json | jq .totals";

/// `quadriga status` options.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The broker: redis://[user:password@]host:port/[db]
    #[arg(long, value_name = "URL")]
    pub(crate) broker: String,
    /// The queue to show.
    #[arg(long, value_name = "Q", default_value = "default")]
    pub(crate) queue: String,
    /// The key prefix the queue lives under.
    #[arg(long, value_name = "P", default_value = "quadriga")]
    pub(crate) prefix: String,
    /// Print the snapshot as one JSON document (fields below).
    #[arg(long)]
    pub(crate) json: bool,
}

/// Reads the snapshot and prints it. A closed stdout is not an error.
pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let config = BrokerConfig::new(&args.broker)
        .queue(&args.queue)
        .prefix(&args.prefix)
        .connect_timeout(Duration::from_secs(2))
        .io_timeout(Duration::from_secs(3));
    let status = read_status(&config).context("reading the queue's status")?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&status)?;
        s.push('\n');
        s
    } else {
        render(&status)
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// The human form: a summary line, the workers table and the shards table.
fn render(s: &Status) -> String {
    let t = &s.totals;
    let mut out = format!(
        "queue {}: {} workers ({} slots), {} waiting, {} leased, {} dead letters, {} delayed; \
         {} done in the last minute ({:.1}/s)",
        s.queue,
        t.workers,
        t.slots,
        t.waiting,
        t.leased,
        t.dead_letters,
        t.delayed,
        t.done_last_minute,
        t.done_last_minute as f64 / 60.0
    );
    if let (Some(mean), Some(max)) = (t.run_mean_us, t.run_max_us) {
        out.push_str(&format!(
            "; entries ran {} on average, {} at most",
            micros(mean),
            micros(max)
        ));
    }
    out.push_str("\n\n");
    if s.workers.is_empty() {
        out.push_str("no live workers\n");
    } else {
        let mut rows = vec![row(&[
            "WORKER",
            "HOST",
            "PID",
            "SLOTS",
            "RUNNING",
            "DONE",
            "FAILED",
            "LAST MIN",
            "HEARTBEAT",
            "RSS",
            "RUN MEAN",
            "RUN MAX",
            "VERSION",
        ])];
        for w in &s.workers {
            rows.push(vec![
                printable(&w.name),
                printable(&w.host),
                w.pid.to_string(),
                w.slots.to_string(),
                w.running.to_string(),
                w.done.to_string(),
                w.failed.to_string(),
                w.done_last_minute.to_string(),
                age(Some(w.heartbeat_age_ms)),
                w.rss_bytes.map_or_else(|| "-".into(), mib),
                w.run_mean_us.map_or_else(|| "-".into(), micros),
                w.run_max_us.map_or_else(|| "-".into(), micros),
                printable(&w.version),
            ]);
        }
        out.push_str(&table(
            &rows,
            &[
                false, false, true, true, true, true, true, true, true, true, true, true, false,
            ],
        ));
    }
    out.push('\n');
    if s.shards.is_empty() {
        out.push_str(&format!(
            "queue {} has no shards on this broker yet\n",
            s.queue
        ));
    } else {
        let mut rows = vec![row(&[
            "SHARD",
            "WAITING",
            "LEASED",
            "OLDEST WAITING",
            "OLDEST LEASED",
            "DEAD",
            "DELAYED",
        ])];
        for sh in &s.shards {
            rows.push(vec![
                sh.shard.to_string(),
                sh.waiting.to_string(),
                sh.leased.to_string(),
                age(sh.oldest_waiting_age_ms),
                age(sh.oldest_leased_age_ms),
                sh.dead_letters.to_string(),
                sh.delayed.to_string(),
            ]);
        }
        out.push_str(&table(&rows, &[true; 7]));
    }
    out
}

/// Text from the broker, which anyone who can write to it controls: control
/// characters (terminal escapes) are shown as `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// Rows as aligned columns, two spaces apart: right-aligned where `right`
/// says so (numbers), left otherwise; no trailing spaces.
fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let widths: Vec<usize> = (0..right.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c] - cell.chars().count();
            if right[c] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An age for people: "850 ms", "3.2 s", "4.5 min", "2.0 h"; "-" for none.
fn age(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 100_000 => format!("{:.1} s", ms as f64 / 1e3),
        Some(ms) if ms < 6_000_000 => format!("{:.1} min", ms as f64 / 60e3),
        Some(ms) => format!("{:.1} h", ms as f64 / 3600e3),
    }
}

/// A run time for people: "850 µs", "12.5 ms", "3.20 s".
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_right_unit() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(850)), "850 ms");
        assert_eq!(age(Some(3_240)), "3.2 s");
        assert_eq!(age(Some(270_000)), "4.5 min");
        assert_eq!(age(Some(7_200_000)), "2.0 h");
        assert_eq!(mib(5 << 20), "5.0 MiB");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(12_500), "12.5 ms");
        assert_eq!(micros(3_200_000), "3.20 s");
    }

    #[test]
    fn terminal_escapes_from_the_broker_are_not_printed() {
        assert_eq!(printable("box\u{1b}[2J\n"), "box?[2J?");
        assert_eq!(printable("höst-1"), "höst-1");
    }

    #[test]
    fn columns_align_numbers_right_and_text_left() {
        let rows = vec![
            row(&["NAME", "N"]),
            row(&["a", "10"]),
            row(&["bbbbbb", "7"]),
        ];
        assert_eq!(
            table(&rows, &[false, true]),
            "NAME     N\na       10\nbbbbbb   7\n"
        );
    }
}

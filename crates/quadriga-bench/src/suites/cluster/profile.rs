//! Where Quadriga's cluster time goes: the broker's command counters
//! (`INFO commandstats`, zeroed by `CONFIG RESETSTAT` before a phase), its
//! network bytes, and the CPU time of Redis, of this process (the client)
//! and of the workers over the phase, all divided by the tasks it ran.
//!
//! Commands a client sends (each one round trip, unless pipelined) are told
//! apart from those Redis runs inside the Lua scripts by name: Quadriga's
//! clients and workers send only `EVALSHA` (the scripts), `XREADGROUP`,
//! `XREAD`, `HMGET` (outcomes not carried inline) and a few set-up
//! commands; everything else is script work.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use serde_json::json;

use super::server::RedisServer;
use super::workers::{Workers, cpu_s_of};

/// Commands that reach Redis from a client, one round trip each.
const CLIENT_COMMANDS: &[&str] = &[
    "evalsha",
    "eval",
    "script|load",
    "xreadgroup",
    "xread",
    "mget",
    "hmget",
    "ping",
    "config|get",
    "xgroup|create",
    "info",
    "zcard",
];

/// Counters taken when a phase starts.
#[derive(Debug)]
pub(super) struct Probe {
    at: Instant,
    redis_cpu_s: f64,
    client_cpu_s: f64,
    workers_cpu_s: f64,
}

/// What one phase cost, in total.
#[derive(Debug, Clone)]
pub(super) struct Profile {
    /// Tasks (items) the phase ran.
    pub(super) tasks: u64,
    wall_s: f64,
    /// Per command: calls, microseconds inside Redis.
    commands: BTreeMap<String, (u64, u64)>,
    redis_cpu_s: f64,
    client_cpu_s: f64,
    workers_cpu_s: f64,
    net_in: u64,
    net_out: u64,
}

/// Zeroes the broker's counters and reads the CPU clocks.
pub(super) fn start(server: &RedisServer, workers: &Workers) -> anyhow::Result<Probe> {
    server.reset_stats()?;
    Ok(Probe {
        at: Instant::now(),
        redis_cpu_s: cpu_s_of(server.pid()).unwrap_or(0.0),
        client_cpu_s: cpu_s_of(std::process::id()).unwrap_or(0.0),
        workers_cpu_s: workers.cpu_s(),
    })
}

/// Reads what the phase begun at `probe` cost, for `tasks` tasks.
pub(super) fn finish(
    probe: Probe,
    server: &RedisServer,
    workers: &Workers,
    tasks: u64,
) -> anyhow::Result<Profile> {
    let wall_s = probe.at.elapsed().as_secs_f64();
    let redis_cpu_s = cpu_s_of(server.pid()).unwrap_or(0.0) - probe.redis_cpu_s;
    let client_cpu_s = cpu_s_of(std::process::id()).unwrap_or(0.0) - probe.client_cpu_s;
    let workers_cpu_s = workers.cpu_s() - probe.workers_cpu_s;
    let commands = commandstats(&server.info("commandstats")?);
    let net = server.info("stats")?;
    let num = |k: &str| net.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Profile {
        tasks: tasks.max(1),
        wall_s,
        commands,
        redis_cpu_s,
        client_cpu_s,
        workers_cpu_s,
        net_in: num("total_net_input_bytes"),
        net_out: num("total_net_output_bytes"),
    })
}

/// `INFO commandstats` (name → value) as command → (calls, usec):
/// `cmdstat_evalsha` = `calls=2,usec=66,usec_per_call=33.00,...`.
fn commandstats(info: &BTreeMap<String, String>) -> BTreeMap<String, (u64, u64)> {
    let mut commands = BTreeMap::new();
    for (name, value) in info {
        let Some(cmd) = name.strip_prefix("cmdstat_") else {
            continue;
        };
        let field = |f: &str| -> u64 {
            value
                .split(',')
                .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        commands.insert(cmd.to_owned(), (field("calls"), field("usec")));
    }
    commands
}

impl Profile {
    fn per_task(&self, x: f64) -> f64 {
        x / self.tasks as f64
    }

    /// Client round trips (commands sent by clients and workers), in total.
    fn round_trips(&self) -> u64 {
        self.commands
            .iter()
            .filter(|(c, _)| CLIENT_COMMANDS.contains(&c.as_str()))
            .map(|(_, (calls, _))| calls)
            .sum()
    }

    /// One line for people: round trips (and Redis's time in each, which for
    /// a script includes the commands it runs), script work, and CPU per
    /// task.
    pub(super) fn summary(&self) -> String {
        let per = |calls: u64| self.per_task(calls as f64);
        let mut out = format!("per task: {:.3} round trips (", per(self.round_trips()));
        let mut first = true;
        let mut top_usec = 0;
        for (c, (calls, usec)) in &self.commands {
            if CLIENT_COMMANDS.contains(&c.as_str()) && *calls > 0 {
                let _ = write!(
                    out,
                    "{}{c} {:.3} × {:.1} µs",
                    if first { "" } else { ", " },
                    per(*calls),
                    *usec as f64 / *calls as f64
                );
                top_usec += usec;
                first = false;
            }
        }
        out.push_str("); in scripts: ");
        let mut inner: Vec<_> = self
            .commands
            .iter()
            .filter(|(c, (calls, _))| {
                !CLIENT_COMMANDS.contains(&c.as_str()) && !c.starts_with("config") && *calls > 0
            })
            .collect();
        inner.sort_by_key(|(_, (calls, _))| std::cmp::Reverse(*calls));
        let inner: Vec<String> = inner
            .iter()
            .filter(|(_, (calls, _))| per(*calls) >= 0.001)
            .map(|(c, (calls, _))| format!("{c} {:.3}", per(*calls)))
            .collect();
        out.push_str(&inner.join(", "));
        let _ = write!(
            out,
            "; µs per task: in Redis commands {:.2}, Redis CPU {:.2}, client CPU {:.2}, \
             workers CPU {:.2}, wall {:.2}; bytes per task in/out {:.0}/{:.0}",
            self.per_task(top_usec as f64),
            self.per_task(self.redis_cpu_s * 1e6),
            self.per_task(self.client_cpu_s * 1e6),
            self.per_task(self.workers_cpu_s * 1e6),
            self.per_task(self.wall_s * 1e6),
            self.per_task(self.net_in as f64),
            self.per_task(self.net_out as f64),
        );
        out
    }

    /// Every number, for the JSON.
    pub(super) fn json(&self) -> serde_json::Value {
        let commands: serde_json::Map<String, serde_json::Value> = self
            .commands
            .iter()
            .map(|(c, (calls, usec))| (c.clone(), json!({ "calls": calls, "usec": usec })))
            .collect();
        json!({
            "tasks": self.tasks,
            "wall_s": self.wall_s,
            "round_trips": self.round_trips(),
            "commands": commands,
            "redis_cpu_s": self.redis_cpu_s,
            "client_cpu_s": self.client_cpu_s,
            "workers_cpu_s": self.workers_cpu_s,
            "net_input_bytes": self.net_in,
            "net_output_bytes": self.net_out,
            "summary": self.summary(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_become_calls_and_microseconds() {
        let info: BTreeMap<String, String> = [
            (
                "cmdstat_evalsha",
                "calls=4000,usec=132000,usec_per_call=33.00,rejected_calls=0,failed_calls=0",
            ),
            ("cmdstat_set", "calls=4000,usec=8000,usec_per_call=2.00"),
            ("used_cpu_sys", "1.5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let commands = commandstats(&info);
        assert_eq!(commands.len(), 2, "{commands:?}");
        assert_eq!(commands["evalsha"], (4000, 132_000));
        assert_eq!(commands["set"], (4000, 8000));
    }

    #[test]
    fn round_trips_count_client_commands_only() {
        let commands: BTreeMap<String, (u64, u64)> = [
            ("evalsha", (4000, 132_000)),
            ("xreadgroup", (2000, 20_000)),
            ("set", (4000, 8000)),
            ("xadd", (4000, 8000)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let p = Profile {
            tasks: 2000,
            wall_s: 1.0,
            commands,
            redis_cpu_s: 0.5,
            client_cpu_s: 0.1,
            workers_cpu_s: 0.2,
            net_in: 0,
            net_out: 0,
        };
        assert_eq!(p.round_trips(), 6000);
        let line = p.summary();
        assert!(line.starts_with("per task: 3.000 round trips"), "{line}");
        assert!(line.contains("evalsha 2.000 × 33.0 µs"), "{line}");
        assert!(line.contains("in scripts: set 2.000, xadd 2.000"), "{line}");
        assert!(line.contains("Redis CPU 250.00"), "{line}");
    }
}

//! The shared-map rows of the `ipc` suite: `ipc::SharedMap` written by several
//! processes at once against Python's `multiprocessing.Manager().dict()`, the
//! same keys and the same number of processes. No goal is set in the issue;
//! the row shows what having no server process in the middle is worth.

use anyhow::{Context as _, ensure};
use quadriga::ProcessPool;
use quadriga::ipc::SharedMap;
use serde_json::json;

use super::{Ctx, progress};
use crate::harness::peer;
use crate::harness::report::{Goal, Row, Unit};
use crate::harness::timing::{Plan, format_seconds, measure};

/// Sets `ops` keys (over 1000 distinct ones), as the Python peer does.
#[quadriga::task]
fn set_keys(map: SharedMap<String, u64>, ops: u64, wid: u64) {
    for i in 0..ops {
        map.insert(&format!("k{}", (i * 7 + wid) % 1000), &i)
            .expect("a map write failed");
    }
}

/// The rows: one, map writes per second.
pub(crate) fn rows(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let procs = ctx.threads.clamp(2, 4) as u64;
    let (ops, plan, reps) = if ctx.quick {
        (20_000, Plan::new(1, 3), 1)
    } else {
        (200_000, Plan::new(1, 5), 3)
    };
    // Python's manager is ~100× slower: give it fewer ops per process so the
    // run stays short; rates are per second either way.
    let py_ops = ops / 20;
    progress(&format!(
        "shared map: {procs} processes × {ops} writes, against Manager().dict()"
    ));
    let pool = ProcessPool::new(procs as usize).context("building the process pool")?;
    let map: SharedMap<String, u64> = SharedMap::new(1000).context("making the map")?;
    let stats = measure(plan, &mut || {
        let handles: Vec<_> = (0..procs)
            .map(|w| pool.submit(set_keys, (map.clone(), ops, w)))
            .collect();
        for h in handles {
            h.join().expect("a benchmark task failed");
        }
    });
    ensure!(
        map.len() == 1000,
        "the map holds {} keys, not 1000",
        map.len()
    );
    let total = ops * procs;
    let args = vec![
        py_ops.to_string(),
        procs.to_string(),
        "--reps".to_owned(),
        reps.to_string(),
    ];
    let peer = peer::run_script(&ctx.python, "ipc_map_peer.py", &args);
    let (peer_value, peer_note) = match &peer {
        Ok(v) => {
            let s = v["seconds"].as_f64().unwrap_or(f64::NAN);
            let n = v["ops"].as_f64().unwrap_or(f64::NAN);
            (
                Ok(n / s),
                format!(
                    "Python {} for {n} writes (best of {reps})",
                    format_seconds(s)
                ),
            )
        }
        Err(why) => (Err(why.clone()), String::new()),
    };
    Ok(vec![
        Row::new(
            "ipc",
            "shared_map_vs_manager_dict",
            format!("{procs} processes set keys in one shared map"),
            Unit::ItemsPerSec,
            stats.throughput(total),
            "Python Manager().dict()",
            peer_value,
            Goal::None,
        )
        .note(format!(
            "quadriga {} for {total} writes (median); {peer_note}",
            stats.brief()
        ))
        .details(json!({ "peer": peer.ok() })),
    ])
}

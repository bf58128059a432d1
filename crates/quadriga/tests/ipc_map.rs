//! `ipc::SharedMap` across processes: exact counts under contention, a
//! consistent, usable map after writers are SIGKILLed mid-operation (at
//! random, and, with the `fault-injection` feature, at every step of every
//! change and of the repair), and what a big map really allocates.

mod common;

use std::time::Duration;

use common::within;
use quadriga::ipc::SharedMap;
use quadriga::{Process, ProcessPool};

#[quadriga::task]
fn bump_keys(map: SharedMap<String, u64>, rounds: u32) {
    for r in 0..rounds {
        let key = format!("k{}", r % 8);
        map.update(&key, |v| Some(v.unwrap_or(0) + 1)).unwrap();
    }
}

#[test]
fn four_processes_update_shared_keys_without_losing_one() {
    within(120, || {
        quadriga::init();
        let pool = ProcessPool::new(4).unwrap();
        let map: SharedMap<String, u64> = SharedMap::new(64).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| pool.submit(bump_keys, (map.clone(), 20_000)))
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total: u64 = map.to_vec().unwrap().iter().map(|(_, v)| v).sum();
        assert_eq!(total, 80_000);
        assert_eq!(map.len(), 8);
        for k in 0..8 {
            assert_eq!(map.get(&format!("k{k}")).unwrap(), Some(10_000));
        }
    });
}

/// Writes forever: a counter, and a churn of keys inserted and removed.
#[quadriga::task]
fn churn(map: SharedMap<String, u64>) {
    let mut i = 0_u64;
    loop {
        map.update("count", |v| Some(v.unwrap_or(0) + 1)).unwrap();
        let key = format!("tmp{}", i % 16);
        if map.insert(&key, &i).unwrap().is_some() {
            map.remove(&key).unwrap();
        }
        i += 1;
    }
}

#[test]
fn writers_killed_mid_operation_leave_a_consistent_map() {
    within(120, || {
        quadriga::init();
        let map: SharedMap<String, u64> = SharedMap::new(64).unwrap();
        let mut last = 0;
        for round in 0..8 {
            let writers: Vec<_> = (0..2)
                .map(|_| Process::spawn(churn, map.clone()).unwrap())
                .collect();
            // Let them get going, then kill both mid-stride.
            let target = last + 2_000;
            while map.get("count").unwrap().unwrap_or(0) < target {
                std::thread::sleep(Duration::from_millis(1));
            }
            for w in &writers {
                w.kill();
            }
            for w in writers {
                assert!(w.join().unwrap_err().is_crashed());
            }
            // Every key once, `len` right, the counter only ever grew, and the
            // map still takes writes (no lock left held by the dead).
            let all = map.to_vec().unwrap();
            let mut keys: Vec<&String> = all.iter().map(|(k, _)| k).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), all.len(), "round {round}: a key twice");
            assert_eq!(map.len(), all.len(), "round {round}");
            let count = map.get("count").unwrap().unwrap();
            assert!(count >= target, "round {round}: {count} < {target}");
            last = count;
            map.insert("alive", &round).unwrap();
            assert_eq!(map.remove("alive").unwrap(), Some(round));
        }
    });
}

/// This process's resident shared memory, from `/proc/self/status`.
fn rss_shmem_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssShmem:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A big map costs its heads until it is written to, then a page or two for
/// each shard in use. (The other tests here map small maps: a few hundred KiB
/// at most, far below the margins.)
#[test]
fn a_big_map_allocates_only_what_is_written() {
    let before = rss_shmem_kib();
    let map: SharedMap<u64, u64> = SharedMap::new(1_000_000).unwrap();
    let made = rss_shmem_kib().saturating_sub(before);
    // 16,384 heads of 64 bytes: 1 MiB (the first layout wrote a page per
    // shard, 256 MiB).
    assert!(made < 4 << 10, "a new map allocated {made} KiB");
    assert_eq!(map.len(), 0);
    for k in 0..1_000 {
        map.insert(&k, &k).unwrap();
    }
    let used = rss_shmem_kib().saturating_sub(before);
    // Each of the ~1,000 shards that got a key now has a page or two (its
    // states and first entries): 4 to 8 MiB.
    assert!(used < 12 << 10, "1,000 entries allocated {used} KiB");
    assert_eq!(map.get(&999).unwrap(), Some(999));
}

/// Every named step of every change (`fault_point!` in src/ipc/map.rs),
/// struck by a real SIGKILL: a child process arms the point, runs the
/// operation and dies there, holding the shard's lock. The parent then sees
/// exactly the map before the operation or exactly the map after it, and a
/// map that works on, full shard included. One shard of 9 slots (room for 8
/// keys, one slot kept for replacements), so every other key shares it.
#[cfg(feature = "fault-injection")]
mod crash_points {
    use std::collections::BTreeMap;

    use super::common::within;
    use quadriga::ipc::{ErrorKind, SharedMap};
    use quadriga::{Process, TaskError};

    type Map = SharedMap<u32, u32>;

    /// Room for this many keys, in one shard.
    const ROOM: u32 = 8;

    /// Arms `point`, then runs `op` on the map. Returns only if the point was
    /// never reached.
    #[quadriga::task]
    fn die_at(map: Map, point: String, op: String) -> String {
        quadriga::fault::arm(&point);
        let done = match op.as_str() {
            "insert" => format!("{:?}", map.insert(&0, &700)),
            "update" => format!("{:?}", map.update(&0, |v| Some(v.unwrap_or(0) + 700))),
            "remove" => format!("{:?}", map.remove(&3)),
            "update_remove" => format!("{:?}", map.update(&3, |_| None)),
            "get" => format!("{:?}", map.get(&0)),
            other => panic!("no op {other}"),
        };
        format!("{op} reached no {point}: {done}")
    }

    fn kill_at(map: &Map, point: &str, op: &str) {
        let child = Process::spawn(die_at, (map.clone(), point.to_string(), op.to_string()));
        let err: TaskError = child.unwrap().join().unwrap_err();
        assert!(err.is_crashed(), "{op} at {point}: {err}");
        assert_eq!(err.signal(), Some(9), "{op} at {point}: {err}");
    }

    /// The last `n` of keys `0..ROOM`, each with value `k`: key 0 is there
    /// only in a full map.
    fn filled(n: u32) -> (Map, BTreeMap<u32, u32>) {
        let map = Map::new(ROOM as usize).unwrap();
        let mut want = BTreeMap::new();
        for k in ROOM - n..ROOM {
            map.insert(&k, &k).unwrap();
            want.insert(k, k);
        }
        (map, want)
    }

    /// Exactly `want`, then fills the shard and uses it: a new key is refused
    /// only at `ROOM` keys, and replacing, updating and removing work in the
    /// full shard.
    fn check(map: &Map, want: &BTreeMap<u32, u32>, what: &str) {
        let got: BTreeMap<u32, u32> = map.to_vec().unwrap().into_iter().collect();
        assert_eq!(&got, want, "{what}: contents");
        assert_eq!(
            map.to_vec().unwrap().len(),
            want.len(),
            "{what}: a key twice"
        );
        assert_eq!(map.len(), want.len(), "{what}: len");
        for k in 0..ROOM {
            assert_eq!(map.get(&k).unwrap(), want.get(&k).copied(), "{what}: {k}");
        }
        let mut n = want.len() as u32;
        for k in 100.. {
            match map.insert(&k, &k) {
                Ok(None) => n += 1,
                Err(e) if e.kind() == ErrorKind::Full => break,
                other => panic!("{what}: insert {k}: {other:?}"),
            }
        }
        assert_eq!(n, ROOM, "{what}: room for new keys");
        let (&k, &v) = want.iter().next().unwrap();
        assert_eq!(map.insert(&k, &(v + 1)).unwrap(), Some(v), "{what}");
        assert_eq!(
            map.update(&k, |v| v.map(|v| v + 1)).unwrap(),
            Some(v + 2),
            "{what}"
        );
        assert_eq!(map.remove(&k).unwrap(), Some(v + 2), "{what}");
        assert_eq!(map.insert(&k, &v).unwrap(), None, "{what}");
        assert_eq!(map.len(), ROOM as usize, "{what}");
    }

    /// A fault point, and whether the change is made once the process dies
    /// there.
    type Step = (&'static str, bool);

    /// Each operation, on a map of how many keys, and its steps.
    const CASES: &[(&str, u32, &[Step])] = &[
        // A new key 0, in a shard with room for it.
        (
            "insert",
            ROOM - 1,
            &[
                ("map.locked", false),
                ("map.insert.written", false),
                ("map.insert.committed", true),
                ("map.insert.counted", true),
            ],
        ),
        (
            "update",
            ROOM - 1,
            &[
                ("map.locked", false),
                ("map.update.computed", false),
                ("map.insert.written", false),
                ("map.insert.committed", true),
                ("map.insert.counted", true),
            ],
        ),
        // A new value for key 0, in a full shard.
        (
            "insert",
            ROOM,
            &[
                ("map.locked", false),
                ("map.replace.written", false),
                ("map.replace.recorded_old", false),
                ("map.replace.recorded", false),
                ("map.replace.new_full", true),
                ("map.replace.old_empty", true),
                ("map.replace.done", true),
            ],
        ),
        (
            "update",
            ROOM,
            &[
                ("map.locked", false),
                ("map.update.computed", false),
                ("map.replace.written", false),
                ("map.replace.recorded_old", false),
                ("map.replace.recorded", false),
                ("map.replace.new_full", true),
                ("map.replace.old_empty", true),
                ("map.replace.done", true),
            ],
        ),
        // Key 3 goes.
        (
            "remove",
            ROOM,
            &[
                ("map.locked", false),
                ("map.remove.committed", true),
                ("map.remove.counted", true),
            ],
        ),
        (
            "update_remove",
            ROOM,
            &[
                ("map.locked", false),
                ("map.update.computed", false),
                ("map.remove.committed", true),
                ("map.remove.counted", true),
            ],
        ),
    ];

    /// The map after `op` on `before`, had it finished.
    fn after(op: &str, before: &BTreeMap<u32, u32>) -> BTreeMap<u32, u32> {
        let mut map = before.clone();
        match op {
            "insert" | "update" => *map.entry(0).or_insert(0) += 700,
            _ => {
                map.remove(&3);
            }
        }
        map
    }

    #[test]
    fn a_writer_killed_at_any_step_leaves_the_map_before_or_after() {
        within(120, || {
            quadriga::init();
            for &(op, keys, steps) in CASES {
                for &(point, made) in steps {
                    let what = format!("{op} of {keys} keys, killed at {point}");
                    let (map, before) = filled(keys);
                    kill_at(&map, point, op);
                    let want = if made { after(op, &before) } else { before };
                    check(&map, &want, &what);
                }
            }
        });
    }

    /// A writer dies; then the process that repairs after it dies at each
    /// step of the repair; the next taker repairs again, to the same end.
    #[test]
    fn a_repairer_killed_at_any_step_leaves_a_map_the_next_one_repairs() {
        within(120, || {
            quadriga::init();
            let repair = [
                "map.repair.started",
                "map.repair.finished",
                "map.repair.forgotten",
                "map.repair.recounted",
                "map.repair.done",
            ];
            // Killed with the key in both slots of a replacement (which the
            // repair finishes), and with a new entry not yet counted (which
            // it recounts).
            for (keys, point) in [
                (ROOM, "map.replace.new_full"),
                (ROOM - 1, "map.insert.committed"),
            ] {
                for step in repair {
                    if step == "map.repair.finished" && keys < ROOM {
                        continue; // no replacement to finish
                    }
                    let what = format!("insert killed at {point}, repair at {step}");
                    let (map, before) = filled(keys);
                    kill_at(&map, point, "insert");
                    kill_at(&map, step, "get");
                    check(&map, &after("insert", &before), &what);
                }
            }
        });
    }
}

//! `ipc::SharedMap` across processes: exact counts under contention, and a
//! consistent, usable map after writers are SIGKILLed mid-operation.

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

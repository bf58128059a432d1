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

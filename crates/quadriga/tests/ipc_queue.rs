//! `ipc::Queue` and `ipc::Pipe`: between threads, then between processes:
//! order and exact counts, every waiting variant, closing, bad input, and
//! processes SIGKILLed in the middle of puts and gets. Time is only ever a
//! hang guard (`within`); kills are placed by progress, not by the clock.
//!
//! Workers are this test binary re-executed; the library's constructor turns
//! them into workers before the test harness starts.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::within;
use quadriga::ipc::{AtomicArray, AtomicValue, ErrorKind, Pipe, Queue};
use quadriga::{Process, ProcessHandle, ProcessPool};

/// Long enough never to fire on a loaded machine; only a hang guard.
const PATIENCE: Duration = Duration::from_secs(30);

/// A small deterministic generator; the seed is printed with any failure.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Self, u64) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        (Rng(seed), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn queues_and_pipes_are_send_sync_debug_and_serde() {
    fn check<T>()
    where
        T: Send + Sync + std::fmt::Debug,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
    }
    fn clone<T: Clone>() {}
    check::<Queue<String>>();
    clone::<Queue<String>>();
    check::<Pipe<Vec<u8>>>();
}

#[test]
fn outside_a_task_input_they_refuse_to_serialise() {
    let err = serde_json::to_string(&Queue::<u8>::new(1).unwrap()).unwrap_err();
    assert!(err.to_string().contains("task's input"), "{err}");
    let (a, _b) = Pipe::<u8>::new().unwrap();
    let err = serde_json::to_string(&a).unwrap_err();
    assert!(err.to_string().contains("task's input"), "{err}");
}

// ---------------------------------------------------------------- threads

#[test]
fn one_producer_is_received_in_order() {
    within(60, || {
        let q = Queue::new(8).unwrap();
        let p = q.clone();
        let producer = std::thread::spawn(move || {
            for i in 0..20_000_u32 {
                p.put(i).unwrap();
            }
            p.close();
        });
        let mut next = 0;
        while let Ok(i) = q.get() {
            assert_eq!(i, next);
            next += 1;
        }
        assert_eq!(next, 20_000);
        producer.join().unwrap();
    });
}

#[test]
fn four_producers_four_consumers_exact_counts() {
    within(60, || {
        const PER: u64 = 25_000;
        let q = Queue::<(u8, u64)>::new(16).unwrap();
        let producers: Vec<_> = (0..4_u8)
            .map(|id| {
                let q = q.clone();
                std::thread::spawn(move || (0..PER).for_each(|s| q.put((id, s)).unwrap()))
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut last = [None; 4];
                    while let Ok((id, s)) = q.get() {
                        // One consumer sees each producer's items in order.
                        assert!(last[id as usize] < Some(s), "out of order");
                        last[id as usize] = Some(s);
                        got.push((id, s));
                    }
                    got
                })
            })
            .collect();
        producers.into_iter().for_each(|p| p.join().unwrap());
        q.close();
        let mut all: Vec<_> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let want: Vec<_> = (0..4_u8)
            .flat_map(|id| (0..PER).map(move |s| (id, s)))
            .collect();
        assert_eq!(all.len(), want.len());
        assert!(all == want, "an item was lost or duplicated");
    });
}

#[test]
fn try_and_timeout_variants() {
    within(60, || {
        let q = Queue::new(2).unwrap();
        let short = Duration::from_millis(20);
        assert_eq!(q.try_get().unwrap_err().kind(), ErrorKind::Empty);
        assert_eq!(q.get_timeout(short).unwrap_err().kind(), ErrorKind::Timeout);
        q.try_put(1).unwrap();
        q.put_timeout(2, short).unwrap();
        let full = q.try_put(3).unwrap_err();
        assert_eq!(full.kind(), ErrorKind::Full);
        assert_eq!(full.into_inner(), 3);
        let late = q.put_timeout(4, short).unwrap_err();
        assert_eq!(late.kind(), ErrorKind::Timeout);
        assert_eq!(late.into_inner(), 4);
        assert_eq!(q.len(), 2);
        assert_eq!(q.try_get().unwrap(), 1);
        assert_eq!(q.get_timeout(short).unwrap(), 2);

        // A timed call that gets what it waits for in time succeeds.
        let other = q.clone();
        let getter = std::thread::spawn(move || other.get_timeout(PATIENCE));
        std::thread::sleep(Duration::from_millis(10));
        q.put(5).unwrap();
        assert_eq!(getter.join().unwrap().unwrap(), 5);
        q.put(6).unwrap();
        q.put(7).unwrap();
        let other = q.clone();
        let putter = std::thread::spawn(move || other.put_timeout(8, PATIENCE).is_ok());
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(q.get().unwrap(), 6);
        assert!(putter.join().unwrap());
        assert_eq!((q.get().unwrap(), q.get().unwrap()), (7, 8));
        assert!(q.is_empty());
    });
}

#[test]
fn close_drains_then_fails_and_wakes_every_waiter() {
    within(60, || {
        let q = Queue::new(2).unwrap();
        q.put(1).unwrap();
        q.put(2).unwrap();
        // A putter blocked on a full queue, and (on another queue) getters
        // blocked on an empty one: close wakes them all.
        let p = q.clone();
        let putter = std::thread::spawn(move || p.put(3).unwrap_err().kind());
        let empty = Queue::<u8>::new(1).unwrap();
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let e = empty.clone();
                std::thread::spawn(move || e.get().unwrap_err().kind())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        empty.close();
        assert_eq!(putter.join().unwrap(), ErrorKind::Closed);
        for g in getters {
            assert_eq!(g.join().unwrap(), ErrorKind::Closed);
        }
        assert!(q.is_closed());
        let refused = q.try_put(9).unwrap_err();
        assert!(refused.error().is_closed());
        assert_eq!(refused.into_inner(), 9);
        assert_eq!((q.get().unwrap(), q.try_get().unwrap()), (1, 2));
        assert!(q.get().unwrap_err().is_closed());
        assert!(q.try_get().unwrap_err().is_closed());
        assert!(q.get_timeout(PATIENCE).unwrap_err().is_closed());
    });
}

#[test]
fn a_capacity_of_zero_is_a_clear_error() {
    let err = Queue::<u8>::new(0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("capacity of 0"), "{err}");
    let err = Queue::<u8>::builder().slot_bytes(0).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = Pipe::<u8>::builder().capacity(0).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[test]
fn a_too_large_item_is_refused_and_the_queue_is_unchanged() {
    let q = Queue::<Vec<u8>>::builder()
        .capacity(2)
        .slot_bytes(100)
        .build()
        .unwrap();
    q.put(vec![1; 10]).unwrap();
    let err = q.put(vec![2; 200]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    let msg = err.error().to_string();
    assert!(
        msg.contains("202 bytes") && msg.contains("100 bytes"),
        "{msg}"
    );
    assert_eq!(err.into_inner(), vec![2; 200]);
    assert_eq!(q.len(), 1);
    // Exactly the slot size fits (99 bytes + a 1-byte length prefix).
    q.put(vec![3; 99]).unwrap();
    assert_eq!(q.get().unwrap(), vec![1; 10]);
    assert_eq!(q.get().unwrap(), vec![3; 99]);
    assert!(q.try_get().unwrap_err().is_empty());
}

#[test]
fn pipes_carry_messages_both_ways() {
    within(60, || {
        let (a, b) = Pipe::<(u32, String)>::new().unwrap();
        let echoer = std::thread::spawn(move || {
            let mut n = 0;
            while let Ok((i, s)) = b.recv() {
                b.send((i + 1, s.to_uppercase())).unwrap();
                n += 1;
            }
            n
        });
        for i in 0..1000 {
            a.send((i, format!("m{i}"))).unwrap();
            assert_eq!(a.recv().unwrap(), (i + 1, format!("M{i}")));
        }
        drop(a);
        assert_eq!(echoer.join().unwrap(), 1000);
    });
}

#[test]
fn a_pipe_whose_peer_is_gone_delivers_what_was_sent_then_closed() {
    within(60, || {
        let (a, b) = Pipe::<u8>::new().unwrap();
        a.send(1).unwrap();
        a.send(2).unwrap();
        drop(a);
        assert_eq!(b.recv().unwrap(), 1);
        assert_eq!(b.try_recv().unwrap(), 2);
        assert!(b.recv().unwrap_err().is_closed());
        assert!(b.try_recv().unwrap_err().is_closed());
        assert!(b.recv_timeout(PATIENCE).unwrap_err().is_closed());

        // A receiver already asleep is woken by the drop.
        let (a, b) = Pipe::<u8>::new().unwrap();
        let sleeper = std::thread::spawn(move || b.recv().unwrap_err().kind());
        std::thread::sleep(Duration::from_millis(20));
        drop(a);
        assert_eq!(sleeper.join().unwrap(), ErrorKind::Closed);

        // A sender blocked on a full side whose peer goes gets Closed.
        let (a, b) = Pipe::<u8>::builder().capacity(1).build().unwrap();
        a.send(1).unwrap();
        let blocked = std::thread::spawn(move || a.send(2).unwrap_err().kind());
        std::thread::sleep(Duration::from_millis(20));
        drop(b);
        assert_eq!(blocked.join().unwrap(), ErrorKind::Closed);
    });
}

#[test]
fn pipe_limits_and_waiting_variants() {
    let (a, b) = Pipe::<String>::builder()
        .max_message_bytes(16)
        .build()
        .unwrap();
    let err = a.send("x".repeat(20)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(err.into_inner().len(), 20);
    assert_eq!(b.try_recv().unwrap_err().kind(), ErrorKind::Empty);
    let short = Duration::from_millis(20);
    assert_eq!(
        b.recv_timeout(short).unwrap_err().kind(),
        ErrorKind::Timeout
    );
    a.send("x".repeat(15)).unwrap();
    assert_eq!(b.recv_timeout(short).unwrap().len(), 15);
    assert!(!b.peer_gone());
}

// -------------------------------------------------------------- processes

/// Takes items until the queue is closed; returns them.
#[quadriga::task]
fn drain(q: Queue<u32>) -> Vec<u32> {
    let mut got = Vec::new();
    while let Ok(i) = q.get() {
        got.push(i);
    }
    got
}

#[test]
fn four_pool_workers_share_a_queue_each_item_once() {
    within(60, || {
        quadriga::init();
        const N: u32 = 10_000;
        let pool = ProcessPool::new(4).unwrap();
        let q = Queue::new(64).unwrap();
        let handles: Vec<_> = (0..4).map(|_| pool.submit(drain, q.clone())).collect();
        for i in 0..N {
            q.put(i).unwrap();
        }
        q.close();
        let mut all: Vec<u32> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert!(all == (0..N).collect::<Vec<_>>(), "lost or duplicated");
    });
}

/// Answers each message with its upper case until the other end is gone;
/// returns how many it answered.
#[quadriga::task]
fn echo(p: Pipe<String>) -> u32 {
    let mut n = 0;
    while let Ok(s) = p.recv() {
        p.send(s.to_uppercase()).unwrap();
        n += 1;
    }
    n
}

/// Says hello, then dies by SIGKILL.
#[quadriga::task]
fn hello_then_die(p: Pipe<String>) {
    p.send("hello".into()).unwrap();
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_secs(60));
}

/// Says goodbye and returns, dropping its end; its worker lives on.
#[quadriga::task]
fn say_bye(p: Pipe<String>) {
    p.send("bye".into()).unwrap();
}

#[test]
fn a_pipe_end_dropped_by_a_task_in_a_live_worker_is_gone() {
    within(60, || {
        quadriga::init();
        let pool = ProcessPool::new(1).unwrap();
        let (here, there) = Pipe::new().unwrap();
        pool.submit(say_bye, there).join().unwrap();
        assert_eq!(here.recv().unwrap(), "bye");
        assert!(here.recv().unwrap_err().is_closed());
        assert!(here.peer_gone());
        // The worker is still there, and takes the next pipe.
        let (here, there) = Pipe::new().unwrap();
        pool.submit(say_bye, there).join().unwrap();
        assert_eq!(here.recv().unwrap(), "bye");
    });
}

#[test]
fn a_pipe_end_passed_into_a_process() {
    within(60, || {
        quadriga::init();
        let (here, there) = Pipe::new().unwrap();
        let child = Process::spawn(echo, there).unwrap();
        for i in 0..200 {
            here.send(format!("msg {i}")).unwrap();
            assert_eq!(here.recv().unwrap(), format!("MSG {i}"));
        }
        drop(here);
        assert_eq!(child.join().unwrap(), 200);

        // A peer killed: what it sent arrives, then Closed.
        let (here, there) = Pipe::new().unwrap();
        let child = Process::spawn(hello_then_die, there).unwrap();
        assert_eq!(here.recv().unwrap(), "hello");
        assert!(here.recv().unwrap_err().is_closed());
        assert!(child.join().unwrap_err().is_crashed());
    });
}

/// Puts `(id, 0..n)` in order.
#[quadriga::task]
fn produce(q: Queue<(u32, u64)>, id: u32, n: u64) {
    for seq in 0..n {
        if q.put((id, seq)).is_err() {
            return;
        }
    }
}

/// Takes items until the queue is closed; checks that each producer's items
/// come in order; returns how many it took and their sum of `seq`.
#[quadriga::task]
fn consume(q: Queue<(u32, u64)>) -> Result<(u64, u64), String> {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    let (mut count, mut sum) = (0, 0);
    while let Ok((id, seq)) = q.get() {
        if let Some(&before) = last.get(&id)
            && seq <= before
        {
            return Err(format!("producer {id}: {seq} after {before}"));
        }
        last.insert(id, seq);
        count += 1;
        sum += seq;
    }
    Ok((count, sum))
}

#[test]
fn four_processes_times_a_hundred_thousand_operations() {
    within(60, || {
        quadriga::init();
        const N: u64 = 100_000;
        let q = Queue::new(256).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| Process::spawn(consume, q.clone()).unwrap())
            .collect();
        let producers: Vec<_> = (0..2)
            .map(|id| Process::spawn(produce, (q.clone(), id, N)).unwrap())
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.close();
        let (mut count, mut sum) = (0, 0);
        for c in consumers {
            let (n, s) = c.join().unwrap();
            count += n;
            sum += s;
        }
        assert_eq!(count, 2 * N);
        assert_eq!(sum, 2 * (N * (N - 1) / 2));
    });
}

/// Puts `(id, 0..)` in order until killed; after each put that returned,
/// records in `done[id]` how many have.
#[quadriga::task]
fn produce_and_count(q: Queue<(u32, u64)>, id: u32, done: AtomicArray<u64>) {
    for seq in 0.. {
        if q.put((id, seq)).is_err() {
            return;
        }
        done.store(id as usize, seq + 1);
    }
}

/// Kills `p` (SIGKILL) and waits until it is gone.
fn kill<T: std::fmt::Debug>(p: ProcessHandle<T>) {
    p.kill();
    assert!(p.join().unwrap_err().is_crashed());
}

#[test]
fn producers_killed_mid_put_lose_nothing_they_committed() {
    within(60, || {
        quadriga::init();
        const KILLS: u32 = 20;
        const EVERY: usize = 2_000;
        let (mut rng, seed) = Rng::seeded();
        let q = Queue::<(u32, u64)>::new(16).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (q, got) = (q.clone(), Arc::clone(&got));
                std::thread::spawn(move || {
                    while let Ok(item) = q.get() {
                        got.lock().unwrap().push(item);
                    }
                })
            })
            .collect();
        // Three producers at a time, each putting as fast as it can; at each
        // step of progress one of them, chosen at random, is SIGKILLed
        // (almost surely inside `put`) and replaced.
        let done = AtomicArray::new(KILLS as usize + 4, 0_u64).unwrap();
        let mut next_id = 0;
        let mut spawn = || {
            next_id += 1;
            Process::spawn(produce_and_count, (q.clone(), next_id, done.clone())).unwrap()
        };
        let mut live: Vec<_> = (0..3).map(|_| spawn()).collect();
        for k in 1..=KILLS as usize {
            while got.lock().unwrap().len() < k * EVERY {
                std::thread::sleep(Duration::from_millis(1));
            }
            let victim = live.swap_remove(rng.below(live.len() as u64) as usize);
            kill(victim);
            live.push(spawn());
        }
        live.into_iter().for_each(kill);
        q.close();
        consumers.into_iter().for_each(|c| c.join().unwrap());

        let mut by_producer: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (id, seq) in got.lock().unwrap().drain(..) {
            by_producer.entry(id).or_default().push(seq);
        }
        let spawned = KILLS + 3;
        assert!(by_producer.keys().all(|&id| (1..=spawned).contains(&id)));
        for id in 1..=spawned {
            let mut seqs = by_producer.remove(&id).unwrap_or_default();
            seqs.sort_unstable();
            let k = seqs.len() as u64;
            assert!(
                seqs.iter().copied().eq(0..k),
                "seed {seed}: producer {id}'s items are not exactly 0..{k} \
                 (a gap is a lost item, a repeat a duplicate)"
            );
            // Every put that returned was received; at most one more (the
            // put that committed just before its producer died, not yet
            // recorded).
            let returned = done.load(id as usize);
            assert!(
                (returned..=returned + 1).contains(&k),
                "seed {seed}: producer {id}: {returned} puts returned, {k} items received"
            );
        }
    });
}

/// Takes items, marking each in `seen` and counting them in `taken`.
#[quadriga::task]
fn consume_and_mark(q: Queue<u32>, seen: AtomicArray<u32>, taken: AtomicValue<u64>) -> u64 {
    let mut n = 0;
    while let Ok(i) = q.get() {
        seen.fetch_add(i as usize, 1);
        taken.fetch_add(1);
        n += 1;
    }
    n
}

#[test]
fn consumers_killed_mid_get_duplicate_nothing_and_lose_at_most_one_each() {
    within(60, || {
        quadriga::init();
        const N: u32 = 100_000;
        const KILLS: u64 = 20;
        let (mut rng, seed) = Rng::seeded();
        let q = Queue::new(32).unwrap();
        let seen = AtomicArray::new(N as usize, 0_u32).unwrap();
        let taken = AtomicValue::new(0_u64).unwrap();
        let p = q.clone();
        let producer = std::thread::spawn(move || (0..N).for_each(|i| p.put(i).unwrap()));
        let spawn = || Process::spawn(consume_and_mark, (q.clone(), seen.clone(), taken.clone()));
        let mut live: Vec<_> = (0..3).map(|_| spawn().unwrap()).collect();
        for k in 1..=KILLS {
            while taken.load() < k * u64::from(N) / (KILLS + 2) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let victim = live.swap_remove(rng.below(live.len() as u64) as usize);
            kill(victim);
            live.push(spawn().unwrap());
        }
        producer.join().unwrap();
        q.close();
        // The survivors finish once the queue is closed and drained.
        let by_survivors: u64 = live.into_iter().map(|c| c.join().unwrap()).sum();
        assert!(by_survivors > 0, "seed {seed}");

        let seen = seen.to_vec();
        let twice: Vec<_> = (0..N).filter(|&i| seen[i as usize] > 1).collect();
        assert!(twice.is_empty(), "seed {seed}: taken twice: {twice:?}");
        let missing: HashSet<_> = (0..N).filter(|&i| seen[i as usize] == 0).collect();
        assert!(
            missing.len() as u64 <= KILLS,
            "seed {seed}: {} items lost to {KILLS} kills: {missing:?}",
            missing.len()
        );
    });
}

#[test]
fn queue_workers_example_processes_each_item_once() {
    let out = Command::new(common::example("queue_workers"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for i in 0..10 {
        let line = format!("Processing {i}");
        assert_eq!(stdout.lines().filter(|l| *l == line).count(), 1, "{stdout}");
    }
    assert!(
        stdout.ends_with("4 workers processed 10 items\n"),
        "{stdout}"
    );
}

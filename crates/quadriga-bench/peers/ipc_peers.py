#!/usr/bin/env python3
"""Peers of quadriga-bench `ipc`: multiprocessing.Queue and multiprocessing.Pipe.

    python3 ipc_peers.py queue ITEMS CAPACITY [--reps R]
        multiprocessing.Queue(CAPACITY): a child Process puts the ints
        range(ITEMS); the parent gets ITEMS items. The child is started and
        waits on an Event, so process start-up is excluded: the clock runs from
        setting the Event until the parent has the last item. A fresh queue and
        child per run. Prints {"mode", "items", "capacity", "seconds" (best
        run), "samples_s", "python"}.

    python3 ipc_peers.py pipe TRIPS
        multiprocessing.Pipe(): a child Process echoes every message; the
        parent sends an int and waits for it back, TRIPS times (after 1,000
        warm-up trips), timing each round trip. Prints {"mode", "trips",
        "p50_us", "p99_us", "python"}.

Timed inside the script: interpreter start-up and imports are excluded.
"""

import argparse
import json
import multiprocessing as mp
import platform
import time


def producer(q, items, ready, go):
    ready.set()
    go.wait()
    put = q.put
    for i in range(items):
        put(i)


def queue_once(items, capacity):
    q = mp.Queue(capacity)
    ready, go = mp.Event(), mp.Event()
    child = mp.Process(target=producer, args=(q, items, ready, go))
    child.start()
    ready.wait()
    start = time.perf_counter()
    go.set()
    get = q.get
    total = 0
    for _ in range(items):
        total += get()
    elapsed = time.perf_counter() - start
    child.join()
    assert total == items * (items - 1) // 2
    return elapsed


def echo(conn):
    # None ends it: with the fork start method the child also holds the
    # parent's end, so closing that would not be an end of file here.
    while (msg := conn.recv()) is not None:
        conn.send(msg)


def pipe_run(trips):
    here, there = mp.Pipe()
    child = mp.Process(target=echo, args=(there,))
    child.start()
    there.close()
    for i in range(1000):
        here.send(i)
        here.recv()
    samples = []
    clock = time.perf_counter
    for i in range(trips):
        t = clock()
        here.send(i)
        here.recv()
        samples.append(clock() - t)
    here.send(None)
    child.join()
    samples.sort()
    pick = lambda p: samples[round((len(samples) - 1) * p)] * 1e6  # noqa: E731
    return pick(0.5), pick(0.99)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["queue", "pipe"])
    parser.add_argument("items", type=int)
    parser.add_argument("capacity", type=int, nargs="?", default=1024)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "queue":
        queue_once(1000, args.capacity)  # warm-up
        samples = [queue_once(args.items, args.capacity) for _ in range(args.reps)]
        out = {
            "mode": "queue",
            "items": args.items,
            "capacity": args.capacity,
            "seconds": min(samples),
            "samples_s": samples,
        }
    else:
        p50, p99 = pipe_run(args.items)
        out = {"mode": "pipe", "trips": args.items, "p50_us": p50, "p99_us": p99}
    out["python"] = platform.python_version()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

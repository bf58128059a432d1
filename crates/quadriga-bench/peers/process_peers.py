#!/usr/bin/env python3
"""Peers of quadriga-bench `process`: Python's process pools.

    python3 process_peers.py submit TASKS WORKERS [--reps R]
        concurrent.futures.ProcessPoolExecutor: submit TASKS trivial calls, keep
        the futures, then .result() each in order (what Quadriga's
        `pool.submit` + `handle.join` does).
    python3 process_peers.py map ITEMS WORKERS [--reps R]
        multiprocessing.Pool.map over range(ITEMS), with its default chunking.

Timed inside the script after a warm-up that starts the workers (interpreter
and pool start-up excluded). Prints one JSON line: {"mode", "items", "workers",
"seconds" (best run), "samples_s", "python"}.
"""

import argparse
import json
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor

MASK = (1 << 64) - 1


def tiny(x):
    """The same trivial task as the Rust side: x*x ^ x>>3 on 64 bits."""
    return ((x * x) & MASK) ^ (x >> 3)


def submit_once(pool, tasks):
    start = time.perf_counter()
    futures = [pool.submit(tiny, i) for i in range(tasks)]
    acc = 0
    for f in futures:
        acc ^= f.result()
    return time.perf_counter() - start, acc


def map_once(pool, items):
    start = time.perf_counter()
    out = pool.map(tiny, range(items))
    return time.perf_counter() - start, len(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["submit", "map"])
    parser.add_argument("items", type=int)
    parser.add_argument("workers", type=int)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    samples = []
    if args.mode == "submit":
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            submit_once(pool, 200)  # warm-up: start every worker
            for _ in range(args.reps):
                samples.append(submit_once(pool, args.items)[0])
    else:
        with multiprocessing.Pool(args.workers) as pool:
            map_once(pool, 1000)
            for _ in range(args.reps):
                samples.append(map_once(pool, args.items)[0])
    print(json.dumps({
        "mode": args.mode,
        "items": args.items,
        "workers": args.workers,
        "seconds": min(samples),
        "samples_s": samples,
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()

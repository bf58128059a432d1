#!/usr/bin/env python3
"""Peer of quadriga-bench `foundation` benchmark 2: submit + result.

Submits TASKS trivial calls to a concurrent.futures.ThreadPoolExecutor with
WORKERS threads, keeps the futures, then calls .result() on each, in order:
what Quadriga's `pool.submit` + `handle.join` does. Timed inside the script
(interpreter start-up excluded), after a warm-up that starts the workers.

Prints one JSON line: {"tasks", "workers", "seconds" (best run), "samples_s",
"median_s", "python"}.

    python3 thread_submit.py TASKS WORKERS [--reps R]
"""

import argparse
import json
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

MASK = (1 << 64) - 1


def tiny(x):
    """The same trivial task as the Rust side: x*x ^ x>>3 on 64 bits."""
    return ((x * x) & MASK) ^ (x >> 3)


def run_once(pool, tasks):
    """Submits `tasks` calls, joins them in order; returns (seconds, checksum)."""
    start = time.perf_counter()
    futures = [pool.submit(tiny, i) for i in range(tasks)]
    acc = 0
    for f in futures:
        acc ^= f.result()
    return time.perf_counter() - start, acc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", type=int)
    parser.add_argument("workers", type=int)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    expected = 0
    for i in range(args.tasks):
        expected ^= tiny(i)

    samples = []
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        run_once(pool, min(args.tasks, 10_000))  # warm-up: starts every worker
        for _ in range(max(args.reps, 1)):
            seconds, acc = run_once(pool, args.tasks)
            if acc != expected:
                raise SystemExit("wrong results")
            samples.append(seconds)

    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "workers": args.workers,
                "seconds": min(samples),
                "median_s": statistics.median(samples),
                "samples_s": samples,
                "python": f"{platform.python_implementation()} {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Peer of quadriga-bench `foundation` benchmark 4: an I/O-bound map.

Maps TASKS calls that each sleep SLEEP_MS milliseconds (a blocking call
standing in for file or network I/O) over a concurrent.futures
ThreadPoolExecutor of its *default* size (min(32, cpu_count + 4)), collecting
the results in order: what `ThreadPool::auto().map(...)` does. Timed inside
the script (interpreter start-up excluded).

Prints one JSON line: {"tasks", "sleep_ms", "workers", "seconds" (best run),
"samples_s", "python"}.

    python3 sleep_pool.py TASKS SLEEP_MS [--reps R]
"""

import argparse
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", type=int)
    parser.add_argument("sleep_ms", type=float)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    delay = args.sleep_ms / 1000.0

    def nap(i):
        time.sleep(delay)
        return i

    samples = []
    with ThreadPoolExecutor() as pool:
        workers = pool._max_workers
        for _ in range(args.reps):
            start = time.perf_counter()
            got = list(pool.map(nap, range(args.tasks)))
            samples.append(time.perf_counter() - start)
            if got != list(range(args.tasks)):
                raise SystemExit("wrong results")
    print(json.dumps({
        "tasks": args.tasks,
        "sleep_ms": args.sleep_ms,
        "workers": workers,
        "seconds": min(samples),
        "samples_s": samples,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()

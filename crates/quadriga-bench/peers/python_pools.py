#!/usr/bin/env python3
"""The `python` suite of quadriga-bench: Python process pools, Quadriga's
included, measured by one script in one interpreter.

    python python_pools.py POOL MODE N WORKERS [--reps R]

POOL is quadriga, ppe (concurrent.futures.ProcessPoolExecutor), mp
(multiprocessing.Pool), loky, pebble or mpire. MODE:

    submit   submit N trivial calls, keep the futures, then wait for each in
             order (mp: apply_async; pebble: schedule; mpire: apply_async)
    map      map over range(N) of the trivial call, results as a list; pools
             whose map defaults to one item per chunk (ppe, loky, pebble) get
             chunksize = N / (4 * WORKERS), multiprocessing's own formula;
             mp and mpire chunk by themselves, quadriga too
    startup  make the pool and get one result (all workers started); N ignored
    latency  N round trips of one task at a time; reports the p50 in seconds

Timed inside the script after a warm-up that starts every worker (except
startup). Prints one JSON line: {"pool", "mode", "items", "workers",
"seconds" (best run; for latency the best p50), "samples_s", "python"}.
"""

import argparse
import json
import platform
import statistics
import time

MASK = (1 << 64) - 1


def tiny(x):
    """The same trivial task as the Rust suites: x*x ^ x>>3 on 64 bits."""
    return ((x * x) & MASK) ^ (x >> 3)


def expected_xor(n):
    acc = 0
    for i in range(n):
        acc ^= tiny(i)
    return acc


class Adapter:
    """One pool behind the same four calls."""

    def __init__(self, name, workers):
        self.name = name
        self.workers = workers
        self.pool = None

    def open(self):
        n = self.workers
        if self.name == "quadriga":
            import quadriga

            self.pool = quadriga.ProcessPool(n)
        elif self.name == "ppe":
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(n)
        elif self.name == "mp":
            import multiprocessing

            self.pool = multiprocessing.Pool(n)
        elif self.name == "loky":
            import loky

            self.pool = loky.ProcessPoolExecutor(n)
        elif self.name == "pebble":
            import pebble

            self.pool = pebble.ProcessPool(max_workers=n)
        elif self.name == "mpire":
            import mpire

            self.pool = mpire.WorkerPool(n_jobs=n)
            self.pool.__enter__()
        else:
            raise SystemExit(f"unknown pool {self.name}")

    def close(self):
        if self.name in ("quadriga", "ppe", "loky"):
            self.pool.shutdown(wait=True)
        elif self.name == "mp":
            self.pool.close()
            self.pool.join()
        elif self.name == "pebble":
            self.pool.close()
            self.pool.join()
        elif self.name == "mpire":
            self.pool.__exit__(None, None, None)

    def submit(self, x):
        """Returns a zero-argument callable that waits for the result."""
        if self.name in ("quadriga", "ppe", "loky"):
            return self.pool.submit(tiny, x).result
        if self.name == "mp":
            return self.pool.apply_async(tiny, (x,)).get
        if self.name == "pebble":
            return self.pool.schedule(tiny, args=(x,)).result
        if self.name == "mpire":
            return self.pool.apply_async(tiny, args=(x,)).get
        raise AssertionError

    def map(self, n):
        chunk = max(1, n // (4 * self.workers))
        if self.name == "quadriga":
            return list(self.pool.map(tiny, range(n)))
        if self.name in ("ppe", "loky"):
            return list(self.pool.map(tiny, range(n), chunksize=chunk))
        if self.name == "mp":
            return self.pool.map(tiny, range(n))
        if self.name == "pebble":
            return list(self.pool.map(tiny, range(n), chunksize=chunk).result())
        if self.name == "mpire":
            return self.pool.map(tiny, range(n), progress_bar=False)
        raise AssertionError


def submit_once(pool, n):
    start = time.perf_counter()
    waits = [pool.submit(i) for i in range(n)]
    acc = 0
    for w in waits:
        acc ^= w()
    return time.perf_counter() - start, acc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pool")
    parser.add_argument("mode", choices=["submit", "map", "startup", "latency"])
    parser.add_argument("items", type=int)
    parser.add_argument("workers", type=int)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    samples = []
    if args.mode == "startup":
        for _ in range(args.reps):
            pool = Adapter(args.pool, args.workers)
            start = time.perf_counter()
            pool.open()
            waits = [pool.submit(i) for i in range(args.workers * 2)]
            for w in waits:
                w()
            samples.append(time.perf_counter() - start)
            pool.close()
    else:
        pool = Adapter(args.pool, args.workers)
        pool.open()
        try:
            # Warm-up: every worker started (by the call measured: mpire's map
            # misreads its arguments after an apply_async on the same pool).
            if args.mode == "map":
                pool.map(20 * args.workers)
            else:
                submit_once(pool, 20 * args.workers)
            for _ in range(args.reps):
                if args.mode == "submit":
                    seconds, acc = submit_once(pool, args.items)
                    assert acc == expected_xor(args.items), "wrong results"
                elif args.mode == "map":
                    start = time.perf_counter()
                    out = pool.map(args.items)
                    seconds = time.perf_counter() - start
                    assert len(out) == args.items and out[-1] == tiny(args.items - 1)
                else:
                    trips = []
                    for i in range(args.items):
                        start = time.perf_counter()
                        pool.submit(i)()
                        trips.append(time.perf_counter() - start)
                    seconds = statistics.median(trips)
                samples.append(seconds)
        finally:
            pool.close()
    print(
        json.dumps(
            {
                "pool": args.pool,
                "mode": args.mode,
                "items": args.items,
                "workers": args.workers,
                "seconds": min(samples),
                "samples_s": samples,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()

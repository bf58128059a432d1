#!/usr/bin/env python3
"""Peer of quadriga-bench `ipc` (shared map): multiprocessing.Manager().dict().

    python3 ipc_map_peer.py OPS PROCS [--reps R]
        PROCS processes each set OPS keys (d["k<j>"] = i over 1000 distinct
        keys) in one Manager dict, started together on a barrier.

Timed from the barrier to the last join (process start-up excluded). Prints
one JSON line: {"ops" (in all), "procs", "seconds" (best run), "samples_s",
"python"}.
"""

import argparse
import json
import multiprocessing as mp
import platform
import time


def writer(d, ops, wid, barrier):
    barrier.wait()
    for i in range(ops):
        d["k%d" % ((i * 7 + wid) % 1000)] = i


def once(manager, ops, procs):
    d = manager.dict()
    barrier = mp.Barrier(procs + 1)
    ps = [mp.Process(target=writer, args=(d, ops, w, barrier)) for w in range(procs)]
    for p in ps:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    for p in ps:
        p.join()
    elapsed = time.perf_counter() - start
    assert len(d) == min(1000, ops * procs)
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ops", type=int)
    parser.add_argument("procs", type=int)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with mp.Manager() as manager:
        samples = [once(manager, args.ops, args.procs) for _ in range(args.reps)]
    print(json.dumps({
        "ops": args.ops * args.procs,
        "procs": args.procs,
        "seconds": min(samples),
        "samples_s": samples,
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()

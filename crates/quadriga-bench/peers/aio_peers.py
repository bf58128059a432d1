#!/usr/bin/env python3
"""Peers of quadriga-bench `aio`: asyncio.gather of sleeps, and aiohttp fetches.

    python3 aio_peers.py sleep TASKS MS
        asyncio.gather of TASKS tasks that each `await asyncio.sleep(MS / 1000)`,
        once, in a fresh interpreter. Prints {"tasks", "wall_s",
        "baseline_rss_kib" (VmRSS before), "peak_rss_kib" (VmHWM after),
        "python"}.

    python3 aio_peers.py fetch BASE_URL PAGES LIMIT [--reps R]
        GET BASE_URL/page/0 .. /page/{PAGES-1} with an aiohttp ClientSession,
        at most LIMIT at a time (a semaphore, and a connector of LIMIT
        connections), reading each body as text. A warm-up run of PAGES/10,
        then R timed runs, each with a new session. Prints {"pages", "limit",
        "seconds" (best run), "samples_s", "median_s", "characters", "aiohttp",
        "python"}.

Timed inside the script: interpreter start-up and imports are excluded. The
memory figures come from /proc/self/status, as on the Rust side.
"""

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time


def status_kib(field):
    """A `VmXXX:` field of /proc/self/status, in KiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


async def sleep_gather(tasks, ms):
    start = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(ms / 1000) for _ in range(tasks)))
    return time.perf_counter() - start


def sleep_main(args):
    baseline = status_kib("VmRSS")
    wall = asyncio.run(sleep_gather(args.tasks, args.ms))
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "sleep_ms": args.ms,
                "wall_s": wall,
                "baseline_rss_kib": baseline,
                "peak_rss_kib": status_kib("VmHWM"),
                "python": platform.python_implementation() + " " + platform.python_version(),
            }
        )
    )


async def fetch_all(aiohttp, base, pages, limit):
    """Fetches every page, LIMIT at a time; returns (seconds, total characters)."""
    connector = aiohttp.TCPConnector(limit=limit)
    gate = asyncio.Semaphore(limit)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(i):
            async with gate:
                async with session.get(f"{base}/page/{i}") as response:
                    text = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"page {i}: HTTP {response.status}")
                    return len(text)

        start = time.perf_counter()
        lengths = await asyncio.gather(*(fetch(i) for i in range(pages)))
        return time.perf_counter() - start, sum(lengths)


def fetch_main(args):
    try:
        import aiohttp
    except ImportError:
        sys.exit("aiohttp is not installed (pip install aiohttp)")
    asyncio.run(fetch_all(aiohttp, args.base, max(args.pages // 10, 1), args.limit))
    samples, characters = [], 0
    for _ in range(max(args.reps, 1)):
        seconds, characters = asyncio.run(fetch_all(aiohttp, args.base, args.pages, args.limit))
        samples.append(seconds)
    print(
        json.dumps(
            {
                "pages": args.pages,
                "limit": args.limit,
                "seconds": min(samples),
                "samples_s": samples,
                "median_s": statistics.median(samples),
                "characters": characters,
                "aiohttp": aiohttp.__version__,
                "python": platform.python_implementation() + " " + platform.python_version(),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sleep")
    s.add_argument("tasks", type=int)
    s.add_argument("ms", type=float)
    f = sub.add_parser("fetch")
    f.add_argument("base")
    f.add_argument("pages", type=int)
    f.add_argument("limit", type=int)
    f.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "sleep":
        sleep_main(args)
    else:
        fetch_main(args)


if __name__ == "__main__":
    main()

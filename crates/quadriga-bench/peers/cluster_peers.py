#!/usr/bin/env python3
"""Peers of quadriga-bench `cluster`: Python's distributed task queues, each
with 2 worker processes on this machine.

    python cluster_peers.py bench SYSTEM URL --tasks N --trips T [--reps R]
        SYSTEM is celery, rq, dask or ray.
        1. submit N trivial tasks, keep the handles, then wait for every
           result (best of R runs, after a warm-up);
        2. T round trips of one task on the idle cluster, each timed: p50, p99.
    python cluster_peers.py kill celery URL --cap S [--acks-late] [--ms MS]
        A task that sleeps MS ms; once it runs, SIGKILL its worker (the whole
        worker: main process and pool child), then wait at most S seconds for
        the task to complete on the other worker.

Systems and their settings (all else default):
  celery  prefork, 2 worker nodes of --concurrency 1, the suite's Redis as
          broker and result backend; .delay() then .get().
  rq      2 `rq worker` processes (the default Worker: a fork per job);
          enqueue() then job.latest_result(timeout).
  dask    distributed.LocalCluster(n_workers=2, threads_per_worker=1),
          client.submit(pure=False) then client.gather (Dask does not use Redis).
  ray     ray.init(num_cpus=2): f.remote() then ray.get (Ray does not use Redis).

Timed inside the script (interpreter, cluster start-up and warm-up
excluded). Prints one JSON line. A watchdog ends the run (and its workers)
after --deadline seconds.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

PEERS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, PEERS)
MASK = (1 << 64) - 1

# Clean-up callbacks, run at exit and by the watchdog.
CLEANUP = []


def cleanup():
    while CLEANUP:
        fn = CLEANUP.pop()
        try:
            fn()
        except Exception:  # best effort: the rest must still run
            pass


def watchdog(seconds):
    def fire():
        print(f"cluster_peers: over the {seconds} s deadline, stopping", file=sys.stderr)
        cleanup()
        os._exit(3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def local_tiny(x):
    """The trivial task, defined here so Dask and Ray ship it by value."""
    return ((x * x) & MASK) ^ (x >> 3)


def spawn_group(argv, env, log):
    """Starts a worker in a process group of its own, killed (the whole
    group) at clean-up."""
    p = subprocess.Popen(argv, env=env, cwd=PEERS, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True)

    def kill():
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

    CLEANUP.append(kill)
    return p


def wait_until(pred, seconds, what):
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster_peers: {what} not ready within {seconds} s")
        time.sleep(0.1)


def percentile(sorted_values, p):
    return sorted_values[round((len(sorted_values) - 1) * p)]


def worker_env(url, queue, acks_late=False):
    env = dict(os.environ)
    env["PYTHONPATH"] = PEERS + os.pathsep + env.get("PYTHONPATH", "")
    env["QB_REDIS_URL"] = url
    env["QB_QUEUE"] = queue
    if acks_late:
        env["QB_ACKS_LATE"] = "1"
    os.environ.update({k: env[k] for k in ("PYTHONPATH", "QB_REDIS_URL", "QB_QUEUE")})
    if acks_late:
        os.environ["QB_ACKS_LATE"] = "1"
    return env


class Celery:
    def __init__(self, url, log, acks_late=False):
        queue = f"qbench-{os.getpid()}"
        env = worker_env(url, queue, acks_late)
        import cluster_tasks
        self.tasks = cluster_tasks
        self.app = cluster_tasks.app
        self.workers = []
        for i in range(2):
            self.workers.append(spawn_group(
                [sys.executable, "-m", "celery", "-A", "cluster_tasks", "worker",
                 "--pool", "prefork", "--concurrency", "1", "-Q", queue,
                 "-n", f"qbench{i}-{os.getpid()}@%h", "--loglevel", "WARNING"],
                env, log))
        wait_until(lambda: len(self.app.control.ping(timeout=0.5) or []) >= 2, 60,
                   "2 Celery workers")
        self.version = __import__("celery").__version__

    def submit(self, x):
        return self.tasks.celery_tiny.delay(x)

    def join_all(self, handles):
        return [h.get(timeout=300) for h in handles]

    def one(self, x):
        return self.tasks.celery_tiny.delay(x).get(timeout=60)


class Rq:
    def __init__(self, url, log):
        import redis
        import rq
        import cluster_tasks
        queue = f"qbench-{os.getpid()}"
        env = worker_env(url, queue)
        self.conn = redis.Redis.from_url(url)
        self.queue = rq.Queue(queue, connection=self.conn)
        self.fn = cluster_tasks.tiny
        rq_bin = os.path.join(os.path.dirname(sys.executable), "rq")
        for _ in range(2):
            spawn_group([rq_bin, "worker", "--url", url, "--quiet", queue], env, log)
        wait_until(lambda: len(rq.Worker.all(queue=self.queue)) >= 2, 60, "2 RQ workers")
        self.version = rq.__version__

    def submit(self, x):
        return self.queue.enqueue(self.fn, x)

    def join_all(self, jobs):
        out = []
        for job in jobs:
            r = job.latest_result(timeout=300)
            if r is None or r.type != r.Type.SUCCESSFUL:
                raise SystemExit(f"cluster_peers: RQ job {job.id} failed: {r}")
            out.append(r.return_value)
        return out

    def one(self, x):
        return self.join_all([self.submit(x)])[0]


class Dask:
    def __init__(self, url, log):
        from dask.distributed import Client, LocalCluster
        import distributed
        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        CLEANUP.append(self.cluster.close)
        self.client = Client(self.cluster)
        CLEANUP.append(self.client.close)
        self.version = distributed.__version__

    def submit(self, x):
        return self.client.submit(local_tiny, x, pure=False)

    def join_all(self, futures):
        return self.client.gather(futures)

    def one(self, x):
        return self.client.submit(local_tiny, x, pure=False).result()


class Ray:
    def __init__(self, url, log):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
                 object_store_memory=100 * 1024 * 1024, log_to_driver=False)
        CLEANUP.append(ray.shutdown)
        self.ray = ray
        self.remote = ray.remote(local_tiny)
        self.version = ray.__version__

    def submit(self, x):
        return self.remote.remote(x)

    def join_all(self, refs):
        return self.ray.get(refs)

    def one(self, x):
        return self.ray.get(self.remote.remote(x))


SYSTEMS = {"celery": Celery, "rq": Rq, "dask": Dask, "ray": Ray}


def bench(args, log):
    system = SYSTEMS[args.system](args.url, log)
    # Warm-up: every worker started and answering.
    got = system.join_all([system.submit(i) for i in range(min(50, args.tasks))])
    assert got == [local_tiny(i) for i in range(len(got))], "wrong results"
    samples = []
    for _ in range(args.reps):
        start = time.perf_counter()
        handles = [system.submit(i) for i in range(args.tasks)]
        acc = 0
        for r in system.join_all(handles):
            acc ^= r
        samples.append(time.perf_counter() - start)
    time.sleep(0.2)  # let the cluster go idle
    trips = []
    for i in range(args.trips):
        start = time.perf_counter()
        system.one(i)
        trips.append((time.perf_counter() - start) * 1e6)
    trips.sort()
    return {
        "system": args.system,
        "version": system.version,
        "tasks": args.tasks,
        "seconds": min(samples),
        "samples_s": samples,
        "latency_us": {
            "trips": args.trips,
            "p50": percentile(trips, 0.5),
            "p99": percentile(trips, 0.99),
            "samples": trips,
        },
    }


def kill(args, log):
    """Celery only: SIGKILL the worker running a task, then wait (capped) for
    the task to complete elsewhere."""
    system = Celery(args.url, log, acks_late=args.acks_late)
    tmp = tempfile.mkdtemp(prefix="qbench-hold-")
    CLEANUP.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    path = os.path.join(tmp, "pids")
    result = system.tasks.celery_hold.delay(path, args.ms)
    wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 30,
               "the held task")
    with open(path) as f:
        child, parent = (int(x) for x in f.readline().split())
    victim = next((w for w in system.workers if w.pid in (child, parent)), None)
    if victim is None:
        raise SystemExit("cluster_peers: the task ran in no worker of ours")
    os.killpg(victim.pid, signal.SIGKILL)
    killed = time.perf_counter()
    outcome = "completed"
    try:
        result.get(timeout=args.cap)
    except Exception as e:  # celery.exceptions.TimeoutError, or a task failure
        outcome = "timeout" if "TimeoutError" in type(e).__name__ else f"failed: {e!r}"
    seconds = time.perf_counter() - killed
    return {
        "system": "celery",
        "version": system.version,
        "acks_late": args.acks_late,
        "visibility_timeout_s": system.app.conf.broker_transport_options.get(
            "visibility_timeout", 3600),
        "cap_s": args.cap,
        "outcome": outcome,
        "recovered": outcome == "completed",
        "seconds": seconds,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["bench", "kill"])
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("url")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--trips", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cap", type=float, default=60.0)
    parser.add_argument("--ms", type=int, default=100)
    parser.add_argument("--acks-late", action="store_true")
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--log", default=os.devnull)
    args = parser.parse_args()
    if args.mode == "kill" and args.system != "celery":
        raise SystemExit("cluster_peers: kill is measured for celery only")
    watchdog(args.deadline)
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), os._exit(3)))
    with open(args.log, "ab") as log:
        try:
            out = bench(args, log) if args.mode == "bench" else kill(args, log)
        finally:
            cleanup()
    out["python"] = platform.python_version()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

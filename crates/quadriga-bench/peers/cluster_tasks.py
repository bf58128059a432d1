"""Tasks of quadriga-bench `cluster`'s Python peers, in a module of their own
so that Celery and RQ workers (other processes) import them by name.

The Celery app is configured from the environment that cluster_peers.py
sets before it starts the workers: QB_REDIS_URL (broker and result backend),
QB_QUEUE, and QB_ACKS_LATE=1 for the acks-late variant. Everything else is
Celery's default.
"""

import os
import time

MASK = (1 << 64) - 1


def tiny(x):
    """The same trivial task as the Rust side: x*x ^ x>>3 on 64 bits."""
    return ((x * x) & MASK) ^ (x >> 3)


def hold(path, ms):
    """Appends this process's pid (and its parent's) to `path`, then sleeps
    `ms` milliseconds: the task of the kill benchmark."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()} {os.getppid()}\n")
    time.sleep(ms / 1000.0)
    return os.getpid()


try:
    from celery import Celery
except ImportError:  # only the Celery peer needs it
    Celery = None

if Celery is not None and os.environ.get("QB_REDIS_URL"):
    app = Celery(
        "cluster_tasks",
        broker=os.environ["QB_REDIS_URL"],
        backend=os.environ["QB_REDIS_URL"],
    )
    app.conf.task_default_queue = os.environ.get("QB_QUEUE", "celery")
    app.conf.broker_connection_retry_on_startup = True
    if os.environ.get("QB_ACKS_LATE") == "1":
        app.conf.task_acks_late = True

    @app.task(name="tiny")
    def celery_tiny(x):
        return tiny(x)

    @app.task(name="hold")
    def celery_hold(path, ms):
        return hold(path, ms)

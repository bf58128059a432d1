"""``ProcessPool``: a ``concurrent.futures.Executor`` on Quadriga's Rust
process-pool supervisor."""

from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import itertools
import json
import os
import pickle
import signal as _signal
import sys
import threading
import time
import weakref
from concurrent.futures.process import BrokenProcessPool

from . import _pickling
from ._errors import RemoteError, RemoteTraceback, TaskTimeout, WorkerDied
from ._quadriga import Pool as _Core

__all__ = ["ProcessPool"]

# What a worker runs: the parent's sys.path, then the worker loop.
_BOOT = "import sys, json; sys.path[:] = json.loads(sys.argv[1]); import quadriga._worker"

# A map keeps at most this many chunks per worker in flight, plus two.
_WINDOW_PER_WORKER = 2
# Adaptive chunks aim at this much work in a worker.
_TARGET_NS = 5_000_000
_MAX_CHUNK = 65_536

_live: "weakref.WeakSet[ProcessPool]" = weakref.WeakSet()


class _Future(cf.Future):
    """A ``concurrent.futures.Future`` whose ``cancel`` also stops a running
    task: its worker is killed (the stdlib returns False for a running task).
    ``running()`` stays False until the outcome arrives."""

    def __init__(self):
        super().__init__()
        self._quadriga = None  # (core, task id) once submitted

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        q = self._quadriga
        if q is not None:
            q[0].cancel(q[1])
        return True


def _signal_name(number):
    try:
        return _signal.Signals(number).name
    except (ValueError, TypeError):
        return f"signal {number}"


def _failure(info) -> BaseException:
    """The exception for a task that ended without an answer from Python."""
    kind, message, pid, signal, exit_code, timeout = info
    if kind == "crashed" and signal is None and exit_code is None:
        # No worker ran it: the pool is broken (its initializer kept failing,
        # or workers would not start).
        return BrokenProcessPool(message)
    if kind in ("crashed", "lost"):
        if signal is not None:
            how = f"was killed by {_signal_name(signal)}"
        elif exit_code is not None:
            how = f"exited with code {exit_code}"
        else:
            how = "died"
        return WorkerDied(
            f"the worker (pid {pid}) running the task {how}",
            pid=pid,
            signal=signal,
            exit_code=exit_code,
        )
    if kind == "timed_out":
        return TaskTimeout(
            f"the task ran past its time limit of {timeout} s; "
            f"its worker (pid {pid}) and the worker's process group were killed",
            timeout=timeout,
            pid=pid,
        )
    if kind == "cancelled":
        return cf.CancelledError(message)
    return RemoteError(message)


def _remote_exception(blob, text, tb) -> BaseException:
    """The task's exception, with the worker's traceback as its cause; a
    RemoteError when it cannot be rebuilt here."""
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except BaseException as err:
            tb = f"{tb}\n(and unpickling it here failed: {err!r})"
        else:
            if isinstance(exc, BaseException):
                exc.__cause__ = RemoteTraceback(tb)
                return exc
    return RemoteError(f"the task raised {text}", remote_repr=text, remote_traceback=tb)


def _decode(data: bytes):
    """(True, value) or (False, exception) for a call; (None, (ns, entries))
    for a map chunk."""
    tag = data[:1]
    try:
        if tag == b"\x00":
            return True, pickle.loads(data[1:])
        if tag == b"\x01":
            return False, _remote_exception(*pickle.loads(data[1:]))
        if tag == b"\x02":
            return None, (int.from_bytes(data[1:9], "little"), pickle.loads(data[9:]))
    except BaseException as err:
        return False, RemoteError(
            f"the task's result could not be unpickled here: {err!r}", remote_repr=repr(err)
        )
    return False, RemoteError(f"a worker sent an answer of unknown kind {tag!r}")


def _parse_memory(limit):
    if limit is None:
        return None
    if isinstance(limit, str):
        text = limit.strip().upper().rstrip("B")
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
        number = text[:-1] if scale != 1 else text
        limit = int(float(number) * scale)
    limit = int(limit)
    if limit <= 0:
        raise ValueError("memory_limit must be a positive number of bytes")
    return limit


class ProcessPool(cf.Executor):
    """A pool of worker processes that survives crashes and kills on timeout.

    ``max_workers`` defaults to the CPUs this process may use. ``timeout``
    (seconds) is every task's default time limit: past it the task fails with
    :class:`TaskTimeout` and its worker's process group is killed.
    ``memory_limit`` (bytes, or a string such as ``"512M"``) caps each
    worker's address space: a task that allocates past it gets ``MemoryError``
    (or, if the interpreter cannot even raise that, its worker dies and the task
    fails with :class:`WorkerDied`). ``max_tasks_per_child`` replaces a worker
    after that many tasks (map chunks count one per item). ``initializer(*initargs)``
    runs once in each worker as it starts; if it fails three times in a row the
    pool is broken and tasks fail with
    :class:`concurrent.futures.process.BrokenProcessPool` carrying its error.

    Differences from :class:`concurrent.futures.ProcessPoolExecutor`:

    * a worker's death fails only the future of the task it ran
      (:class:`WorkerDied`); the worker is replaced and the pool stays usable;
    * ``future.cancel()`` also cancels a running task, by killing its worker
      (so ``future.running()`` stays False until the task ends);
    * ``shutdown(cancel_futures=True)`` kills running tasks too;
    * :meth:`submit_timeout` gives one task its own time limit;
    * ``map`` chunks by itself (``chunksize=None``) and has an unordered
      variant, :meth:`map_unordered`.
    """

    def __init__(
        self,
        max_workers=None,
        *,
        timeout=None,
        memory_limit=None,
        max_tasks_per_child=None,
        initializer=None,
        initargs=(),
    ):
        if max_workers is None:
            try:
                max_workers = len(os.sched_getaffinity(0))
            except (AttributeError, OSError):
                max_workers = os.cpu_count() or 1
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if max_tasks_per_child is not None and max_tasks_per_child <= 0:
            raise ValueError("max_tasks_per_child must be a positive integer")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        init_payload = None
        if initializer is not None:
            init_payload = _pickling.cloudpickle.dumps((initializer, tuple(initargs)))
        self._max_workers = max_workers
        self._timeout = timeout
        self._core = _Core(
            sys.executable,
            ["-c", _BOOT, json.dumps(sys.path)],
            max_workers,
            timeout=timeout,
            memory_limit=_parse_memory(memory_limit),
            max_tasks=max_tasks_per_child,
            init_payload=init_payload,
        )
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._futures: dict = {}
        self._closed = False
        self._cancel_on_close = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._collect_loop, name="quadriga-results", daemon=True
        )
        self._thread.start()
        _live.add(self)

    # -- submitting -------------------------------------------------------

    def _check(self):
        if os.getpid() != self._owner:
            raise RuntimeError(
                f"this quadriga.ProcessPool belongs to process {self._owner}; "
                f"it cannot be used in a forked child (pid {os.getpid()}): "
                "make a new pool in the child"
            )
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _send(self, payload: bytes, timeout, meta) -> _Future:
        fut = _Future()
        with self._lock:
            self._check()
            task = self._core.submit(payload, timeout)
            fut._quadriga = (self._core, task)
            self._futures[task] = (fut, meta)
        return fut

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        """Schedules ``fn(*args, **kwargs)`` in a worker with the pool's
        default time limit; returns its future."""
        return self._submit(fn, args, kwargs, None)

    def submit_timeout(self, timeout, fn, /, *args, **kwargs) -> cf.Future:
        """Like :meth:`submit`, with this task's own time limit in seconds
        (overriding the pool's): past it the future fails with
        :class:`TaskTimeout` and the worker's process group is killed."""
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        return self._submit(fn, args, kwargs, timeout)

    def _submit(self, fn, args, kwargs, timeout):
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        payload = _pickling.frame(b"C", _pickling.dump_function(fn)) + _pickling.dump_call(
            args, kwargs
        )
        return self._send(payload, timeout, None)

    # -- results ----------------------------------------------------------

    def _collect_loop(self):
        core = self._core
        futures = self._futures
        lock = self._lock
        while True:
            items = core.collect(0.05, 4096)
            if not items:
                if self._closed and not futures:
                    break
                continue
            with lock:
                entries = [(futures.pop(task, None), ok, data) for task, ok, data in items]
            for entry, ok, data in entries:
                if entry is None:
                    continue
                fut = entry[0]
                if ok:
                    good, value = _decode(data)
                    if good is None:
                        good = True
                else:
                    value = _failure(data)
                    if isinstance(value, cf.CancelledError):
                        # Cancelled here or by a shutdown: tell the waiters
                        # (concurrent.futures.wait counts a cancelled future
                        # as done only once its executor has said so).
                        cf.Future.cancel(fut)
                        fut.set_running_or_notify_cancel()
                        continue
                    good = False
                if not fut.set_running_or_notify_cancel():
                    continue
                if good:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        try:
            core.shutdown(self._cancel_on_close)
        finally:
            self._stopped.set()

    # -- map --------------------------------------------------------------

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        """Like :meth:`concurrent.futures.Executor.map`: results in input
        order; ``timeout`` bounds the wait for all of them (TimeoutError).
        Lazy: inputs are read as workers free up, at most a few chunks per
        worker ahead. ``fn`` is pickled once. ``chunksize=None`` sizes chunks
        by measuring (about 5 ms of work each; one item each when the pool has
        a time limit, so every item gets its own clock). A chunk whose worker
        dies is rerun item by item, so only the item that crashes fails (its
        neighbours may run twice). A task's exception is raised when its
        result is reached."""
        return _Map(self, fn, iterables, timeout, chunksize, ordered=True)

    def map_unordered(self, fn, *iterables, timeout=None, chunksize=None):
        """Like :meth:`map`, yielding results as they finish, not in input
        order."""
        return _Map(self, fn, iterables, timeout, chunksize, ordered=False)

    # -- stopping ---------------------------------------------------------

    def worker_pids(self) -> list:
        """The process ids of the workers alive now."""
        return list(self._core.worker_pids())

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Stops accepting tasks. ``cancel_futures``: cancels what has not
        finished, killing running tasks' workers. ``wait``: returns once every
        task has ended and every worker has stopped (Ctrl-C while waiting
        cancels the rest and raises KeyboardInterrupt)."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            self._closed = True
            if cancel_futures:
                self._cancel_on_close = True
            pending = [entry[0] for entry in self._futures.values()]
        if cancel_futures:
            self._core.shutdown(True)
            for fut in pending:
                cf.Future.cancel(fut)
        if not wait:
            return
        try:
            cf.wait(pending)
            while not self._stopped.wait(0.1):
                pass
        except BaseException:
            self._cancel_on_close = True
            self._core.shutdown(True)
            raise
        self._thread.join()

    def __exit__(self, exc_type, exc, tb):
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        self.shutdown(wait=True, cancel_futures=interrupted)
        return False

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "running"
        return f"<quadriga.ProcessPool max_workers={self._max_workers} {state}>"


class _Failed:
    """An item's exception, in a map's queue of ready results."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


class _Map:
    """The iterator behind ``map`` and ``map_unordered``."""

    def __init__(self, pool, fn, iterables, timeout, chunksize, ordered):
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        if chunksize is not None and chunksize < 1:
            raise ValueError("chunksize must be at least 1")
        pool._check()
        self._pool = pool
        self._spread = len(iterables) != 1
        kind = b"M" if self._spread else b"S"
        self._head = _pickling.frame(kind, _pickling.dump_function(fn))
        self._inputs = zip(*iterables) if self._spread else iter(iterables[0])
        self._left = None
        if len(iterables) == 1:
            try:
                self._left = len(iterables[0])
            except TypeError:
                pass
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._fixed = 1 if pool._timeout is not None else chunksize
        self._size = 1
        self._ordered = ordered
        self._window_max = _WINDOW_PER_WORKER * pool._max_workers + 2
        # Ordered: a deque of slots, each a list of (future, items); a slot
        # grows when its chunk is split after a crash.
        self._window: collections.deque = collections.deque()
        self._flying: dict = {}  # unordered: future -> items
        self._ready: collections.deque = collections.deque()
        self._exhausted = False
        self._fill()

    def __iter__(self):
        return self

    def _next_size(self):
        if self._fixed is not None:
            size = self._fixed
        else:
            size = self._size
            if self._left is not None:
                share = -(-self._left // (2 * self._pool._max_workers))
                size = max(1, min(size, share))
        return size

    def _learn(self, elapsed_ns, n):
        if self._fixed is not None or n == 0:
            return
        per_item = max(elapsed_ns / n, 1.0)
        want = int(_TARGET_NS / per_item)
        self._size = max(1, min(want, self._size * 8, _MAX_CHUNK))

    def _in_flight(self):
        return len(self._window) if self._ordered else len(self._flying)

    def _fill(self):
        while not self._exhausted and self._in_flight() < self._window_max:
            items = list(itertools.islice(self._inputs, self._next_size()))
            if not items:
                self._exhausted = True
                break
            if self._left is not None:
                self._left -= len(items)
            fut = self._submit(items)
            if self._ordered:
                self._window.append([(fut, items)])
            else:
                self._flying[fut] = items

    def _submit(self, items):
        return self._pool._send(
            self._head + _pickling.dump_items(items, self._spread), None, None
        )

    def _left_time(self):
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise cf.TimeoutError()
        return left

    def _outcomes(self, fut, items):
        """The chunk's results (an item's exception as a _Failed); a crashed
        chunk of several items is split (returns None, with the new
        futures)."""
        try:
            elapsed, (values, errors) = fut.result(timeout=self._left_time())
        except cf.TimeoutError:
            if fut.done():
                return [_Failed(fut.exception())] * len(items), None
            raise
        except cf.CancelledError as err:
            return [_Failed(err)] * len(items), None
        except WorkerDied as err:
            if len(items) > 1:
                return None, [(self._submit([item]), [item]) for item in items]
            return [_Failed(err)], None
        except BaseException as err:
            return [_Failed(err)] * len(items), None
        self._learn(elapsed, len(values))
        for i, error in errors.items():
            values[i] = _Failed(_remote_exception(*error))
        return values, None

    def __next__(self):
        try:
            while not self._ready:
                if self._ordered:
                    self._advance_ordered()
                else:
                    self._advance_unordered()
            value = self._ready.popleft()
        except BaseException:
            self.close()
            raise
        if type(value) is not _Failed:
            return value
        self.close()
        raise value.error

    def _advance_ordered(self):
        if not self._window:
            self._fill()
            if not self._window:
                raise StopIteration
        slot = self._window[0]
        while slot:
            fut, items = slot[0]
            out, split = self._outcomes(fut, items)
            slot.pop(0)
            if split is not None:
                slot[0:0] = split
                continue
            self._ready.extend(out)
        self._window.popleft()
        self._fill()

    def _advance_unordered(self):
        if not self._flying:
            self._fill()
            if not self._flying:
                raise StopIteration
        done, _ = cf.wait(
            list(self._flying), timeout=self._left_time(), return_when=cf.FIRST_COMPLETED
        )
        if not done:
            raise cf.TimeoutError()
        for fut in done:
            items = self._flying.pop(fut)
            out, split = self._outcomes(fut, items)
            if split is not None:
                for f, its in split:
                    self._flying[f] = its
            else:
                self._ready.extend(out)
        self._fill()

    def close(self):
        """Cancels what is still in flight (killing running chunks)."""
        self._exhausted = True
        for slot in self._window:
            for fut, _ in slot:
                fut.cancel()
        self._window.clear()
        for fut in self._flying:
            fut.cancel()
        self._flying.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _after_fork_in_child():
    for pool in list(_live):
        try:
            pool._core.forget()
        except Exception:
            pass
        err = RuntimeError(
            f"this future belongs to a quadriga.ProcessPool of process {pool._owner}; "
            "it cannot complete in a forked child"
        )
        for fut, _ in list(pool._futures.values()):
            try:
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(err)
            except Exception:
                pass
        pool._futures.clear()


def _at_exit():
    interrupted = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
    for pool in list(_live):
        if os.getpid() == pool._owner:
            try:
                pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
                if interrupted:
                    pool._stopped.wait(5)
            except BaseException:
                pool._core.shutdown(True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)

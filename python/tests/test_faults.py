"""Faults fail only their own future; the pool then runs more work."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from concurrent.futures.process import BrokenProcessPool

import pytest

import quadriga
import tasks
from conftest import alive, read_pid, wait_until


@pytest.mark.parametrize(
    "how, signal_number, exit_code",
    [
        ("sigkill", signal.SIGKILL, None),
        ("segfault", signal.SIGSEGV, None),
        ("abort", signal.SIGABRT, None),
        ("exit", None, 7),
    ],
)
def test_a_dead_worker_fails_only_its_future(how, signal_number, exit_code):
    with quadriga.ProcessPool(2) as pool:
        others = [pool.submit(tasks.nap, 0.05, i) for i in range(6)]
        doomed = pool.submit(tasks.die, how)
        with pytest.raises(quadriga.WorkerDied) as info:
            doomed.result(timeout=30)
        err = info.value
        assert err.signal == signal_number
        assert err.exit_code == exit_code
        assert isinstance(err.pid, int) and err.pid != os.getpid()
        assert [f.result(timeout=30) for f in others] == list(range(6))
        assert list(pool.map(tasks.square, range(100), timeout=60)) == [x * x for x in range(100)]


def test_a_crash_inside_a_map_chunk_fails_only_that_item():
    with quadriga.ProcessPool(2) as pool:
        it = pool.map(tasks.crash_on, range(40), [17] * 40, chunksize=10, timeout=60)
        got = [next(it) for _ in range(17)]
        assert got == [x * 10 for x in range(17)]
        with pytest.raises(quadriga.WorkerDied) as info:
            next(it)
        assert info.value.exit_code == 3
        got = list(pool.map_unordered(tasks.crash_on, range(18, 40), [17] * 22, timeout=60))
        assert sorted(got) == [x * 10 for x in range(18, 40)]


def test_timeout_kills_the_process_group_grandchild_included(tmp_path):
    path = str(tmp_path / "grandchild")
    with quadriga.ProcessPool(1) as pool:
        fut = pool.submit_timeout(1.0, tasks.spawn_grandchild_and_sleep, path)
        grandchild = read_pid(path)
        assert alive(grandchild)
        with pytest.raises(quadriga.TaskTimeout) as info:
            fut.result(timeout=30)
        assert isinstance(info.value, TimeoutError)
        assert info.value.timeout == pytest.approx(1.0)
        assert wait_until(lambda: not alive(grandchild), 10), "the grandchild outlived the timeout"
        assert pool.submit(tasks.square, 3).result(timeout=30) == 9


def test_pool_default_timeout_and_per_task_override():
    with quadriga.ProcessPool(2, timeout=0.5) as pool:
        slow = pool.submit(tasks.nap, 30)
        allowed = pool.submit_timeout(20, tasks.nap, 1.0, "ok")
        with pytest.raises(quadriga.TaskTimeout):
            slow.result(timeout=30)
        assert allowed.result(timeout=30) == "ok"
        # In a map, each item has its own clock.
        it = pool.map(tasks.nap, [0.01, 30, 0.01], ["a", "b", "c"], timeout=60)
        assert next(it) == "a"
        with pytest.raises(quadriga.TaskTimeout):
            next(it)


def test_cancel_of_a_running_task_kills_its_worker(tmp_path):
    path = str(tmp_path / "running")
    with quadriga.ProcessPool(1) as pool:
        fut = pool.submit(tasks.write_pid_and_sleep, path)
        worker = read_pid(path)
        assert fut.cancel(), "cancel of a running task returns True"
        assert fut.cancelled()
        assert wait_until(lambda: not alive(worker), 10), "the cancelled task's worker still runs"
        assert pool.submit(tasks.square, 6).result(timeout=30) == 36


def test_memory_limit():
    with quadriga.ProcessPool(1, memory_limit="512M") as pool:
        with pytest.raises((MemoryError, quadriga.WorkerDied)):
            pool.submit(tasks.allocate, 2 << 30).result(timeout=60)
        assert pool.submit(tasks.allocate, 16 << 20).result(timeout=60) == 16 << 20


def test_recycling_replaces_workers():
    with quadriga.ProcessPool(1, max_tasks_per_child=2) as pool:
        pids = [pool.submit(tasks.pid).result(timeout=30) for _ in range(6)]
    assert len(set(pids)) == 3
    assert all(pids.count(p) == 2 for p in set(pids))


def test_initializer_state_is_seen_by_tasks():
    with quadriga.ProcessPool(2, initializer=tasks.set_state, initargs=("model", 42)) as pool:
        got = [pool.submit(tasks.get_state, "model").result(timeout=30) for _ in range(6)]
    assert all(value == 42 for value, _ in got)


def test_a_failing_initializer_breaks_the_pool_without_a_hang():
    with quadriga.ProcessPool(1, initializer=tasks.failing_initializer) as pool:
        with pytest.raises(BrokenProcessPool, match="initializer says no"):
            pool.submit(tasks.square, 2).result(timeout=60)


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    # A job started in the background by a non-interactive shell inherits
    # SIGINT ignored, and Python then keeps it so: stand for a terminal's
    # foreground process, which is what this test is about.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    import quadriga, tasks
    with quadriga.ProcessPool(2) as pool:
        futures = [pool.submit(tasks.nap, 60) for _ in range(6)]
        deadline = time.monotonic() + 30
        while len(pool.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        print(" ".join(map(str, pool.worker_pids())), flush=True)
        futures[0].result()
    """
)


def test_ctrl_c_in_the_parent_raises_promptly_and_leaves_no_worker(tmp_path):
    script = CTRL_C_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # not python/, whose quadriga/ has no extension built in place
    )
    try:
        line = proc.stdout.readline()
        workers = [int(p) for p in line.split()]
        if len(workers) != 2:
            proc.kill()
            pytest.fail(f"the script printed {line!r}: {proc.communicate(timeout=20)[1]}")
        time.sleep(0.3)  # the main thread is inside result() now
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert took < 10, f"Ctrl-C took {took:.1f} s"
    assert wait_until(lambda: not any(alive(p) for p in workers), 10), "a worker outlived Ctrl-C"


def test_fork_of_a_process_that_owns_a_pool():
    with quadriga.ProcessPool(1) as pool:
        assert pool.submit(tasks.square, 2).result(timeout=30) == 4
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover (the child)
            code = 1
            try:
                pool.submit(tasks.square, 3)
            except RuntimeError as err:
                code = 0 if "forked child" in str(err) else 2
            except BaseException:
                code = 3
            os.write(write_end, bytes([code]))
            os._exit(code)
        os.close(write_end)
        assert wait_until(lambda: os.waitpid(child, os.WNOHANG)[0] == child, 20) or True
        got = os.read(read_end, 1)
        os.close(read_end)
        assert got == b"\x00", f"child answered {got!r}"
        assert pool.submit(tasks.square, 5).result(timeout=30) == 25


def test_randomized_run_with_faults_checks_every_result():
    rng = random.Random(1234)
    kinds = rng.choices(
        ["ok", "raise", "exit", "kill", "segv", "hang"],
        weights=[95, 2, 1, 0.8, 0.8, 0.4],
        k=1000,
    )
    with quadriga.ProcessPool(4) as pool:
        futures = []
        for x, kind in enumerate(kinds):
            if kind == "hang":
                futures.append(pool.submit_timeout(0.3, tasks.chaos, kind, x))
            else:
                futures.append(pool.submit(tasks.chaos, kind, x))
        deadline = time.monotonic() + 240
        for x, (kind, fut) in enumerate(zip(kinds, futures)):
            left = max(0.1, deadline - time.monotonic())
            if kind == "ok":
                assert fut.result(timeout=left) == x * x
            elif kind == "raise":
                with pytest.raises(KeyError):
                    fut.result(timeout=left)
            elif kind == "hang":
                with pytest.raises(quadriga.TaskTimeout):
                    fut.result(timeout=left)
            else:
                with pytest.raises(quadriga.WorkerDied):
                    fut.result(timeout=left)
        workers = pool.worker_pids()
    assert sum(k != "ok" for k in kinds) >= 30
    assert not any(alive(p) for p in workers)

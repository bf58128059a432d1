"""The Executor API: submit, map, as_completed, wait, run_in_executor, and
exceptions and results coming back."""

import asyncio
import concurrent.futures as cf
import itertools
import os
import threading

import pytest

import quadriga
import tasks


def test_submit_returns_a_real_future_with_the_result():
    with quadriga.ProcessPool(2) as pool:
        fut = pool.submit(tasks.add, 2, 3, c=4)
        assert isinstance(fut, cf.Future)
        assert fut.result(timeout=30) == 9
        assert pool.submit(tasks.pid).result(timeout=30) != os.getpid()


def test_lambdas_and_closures_travel():
    offset = 100
    with quadriga.ProcessPool(2) as pool:
        assert pool.submit(lambda x: x + offset, 1).result(timeout=30) == 101
        assert list(pool.map(lambda x: -x, [1, 2, 3], timeout=30)) == [-1, -2, -3]


def test_map_keeps_input_order_and_chunks():
    with quadriga.ProcessPool(2) as pool:
        assert list(pool.map(tasks.square, [1, 2, 3, 4, 5], timeout=30)) == [1, 4, 9, 16, 25]
        n = 20_000
        assert list(pool.map(tasks.square, range(n), timeout=60)) == [x * x for x in range(n)]
        assert list(pool.map(tasks.add, range(50), range(50), chunksize=7, timeout=30)) == [
            2 * x for x in range(50)
        ]


def test_map_is_lazy_over_an_endless_input():
    with quadriga.ProcessPool(2) as pool:
        first = list(itertools.islice(pool.map(tasks.square, itertools.count(), timeout=30), 500))
    assert first == [x * x for x in range(500)]


def test_map_unordered_yields_every_result():
    with quadriga.ProcessPool(3) as pool:
        got = list(pool.map_unordered(tasks.square, range(1000), timeout=60))
    assert sorted(got) == [x * x for x in range(1000)]


def test_map_timeout_stops_waiting():
    with quadriga.ProcessPool(1) as pool:
        it = pool.map(tasks.nap, [30], timeout=0.3)
        with pytest.raises(cf.TimeoutError):
            next(it)


def test_as_completed_and_wait():
    with quadriga.ProcessPool(2) as pool:
        futures = [pool.submit(tasks.square, x) for x in range(20)]
        got = sorted(f.result() for f in cf.as_completed(futures, timeout=60))
        assert got == [x * x for x in range(20)]
        slow = pool.submit(tasks.nap, 30)
        quick = pool.submit(tasks.nap, 0.01, "quick")
        done, not_done = cf.wait([slow, quick], timeout=20, return_when=cf.FIRST_COMPLETED)
        assert done == {quick} and not_done == {slow}
        assert slow.cancel()


def test_run_in_executor():
    async def main(pool):
        loop = asyncio.get_running_loop()
        results = await asyncio.wait_for(
            asyncio.gather(*(loop.run_in_executor(pool, tasks.square, x) for x in range(10))),
            timeout=60,
        )
        return results

    with quadriga.ProcessPool(2) as pool:
        assert asyncio.run(main(pool)) == [x * x for x in range(10)]


def test_exception_comes_back_with_the_remote_traceback_as_cause():
    with quadriga.ProcessPool(1) as pool:
        fut = pool.submit(tasks.boom, "bad input")
        with pytest.raises(ValueError, match="bad input") as info:
            fut.result(timeout=30)
        cause = info.value.__cause__
        assert isinstance(cause, quadriga.RemoteTraceback)
        assert "in boom" in str(cause)
        # The pool goes on.
        assert pool.submit(tasks.square, 4).result(timeout=30) == 16


def test_unpicklable_result_and_exceptions_become_remote_errors():
    with quadriga.ProcessPool(1) as pool:
        with pytest.raises(quadriga.RemoteError) as info:
            pool.submit(tasks.unpicklable_result).result(timeout=30)
        assert "lock" in info.value.remote_repr.lower()
        with pytest.raises(quadriga.RemoteError) as info:
            pool.submit(tasks.raise_unpicklable).result(timeout=30)
        assert "HoldsLock" in info.value.remote_repr
        assert "raise_unpicklable" in info.value.remote_traceback
        with pytest.raises(quadriga.RemoteError) as info:
            pool.submit(tasks.raise_needs_two).result(timeout=30)
        assert "NeedsTwo" in info.value.remote_repr
        assert pool.submit(tasks.square, 5).result(timeout=30) == 25


def test_map_raises_an_items_exception_at_its_place():
    with quadriga.ProcessPool(2) as pool:
        it = pool.map(tasks.crash_on, range(10), [99] * 10, timeout=60)
        assert list(it) == [x * 10 for x in range(10)]
        it = pool.map(tasks.boom, ["a"], timeout=30)
        with pytest.raises(ValueError, match="a"):
            next(it)


def test_submit_after_shutdown_is_refused():
    pool = quadriga.ProcessPool(1)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(tasks.square, 2)
    assert pool.worker_pids() == []


def test_shutdown_without_wait_lets_work_finish():
    pool = quadriga.ProcessPool(1)
    fut = pool.submit(tasks.nap, 0.2, "done")
    pool.shutdown(wait=False)
    assert fut.result(timeout=30) == "done"
    assert pool._stopped.wait(30)


def test_many_threads_submit_at_once():
    with quadriga.ProcessPool(2) as pool:
        out = {}

        def client(k):
            out[k] = [pool.submit(tasks.square, k * 100 + i).result(timeout=60) for i in range(50)]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert out == {k: [(k * 100 + i) ** 2 for i in range(50)] for k in range(4)}

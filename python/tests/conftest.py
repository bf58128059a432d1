import os
import time

import pytest


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def live_children(parent: int = None) -> list:
    """Live processes whose parent is `parent` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            found.append(int(name))
    return found


def wait_until(predicate, timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def read_pid(path, timeout: float = 20.0) -> int:
    assert wait_until(lambda: os.path.exists(path), timeout), f"{path} never appeared"
    with open(path) as f:
        return int(f.read())


@pytest.fixture(autouse=True)
def no_workers_left_behind():
    before = set(live_children())
    yield
    assert wait_until(lambda: not (set(live_children()) - before), 15), (
        f"processes left running: {set(live_children()) - before}"
    )

"""Task functions the tests submit: importable in the workers (the pool gives
them the parent's sys.path)."""

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

STATE = {}


def square(x):
    return x * x


def add(a, b=0, *, c=0):
    return a + b + c


def pid(_=None):
    return os.getpid()


def nap(seconds, value=None):
    time.sleep(seconds)
    return value


def boom(message):
    raise ValueError(message)


def die(how, code=7):
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "segfault":
        ctypes.string_at(0)
    elif how == "exit":
        os._exit(code)
    elif how == "abort":
        os.abort()
    time.sleep(60)


def crash_on(x, bad):
    if x == bad:
        os._exit(3)
    return x * 10


def write_pid_and_sleep(path, seconds=60):
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(seconds)


def spawn_grandchild_and_sleep(path, seconds=60):
    child = subprocess.Popen(["sleep", "300"])
    with open(path + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(path + ".tmp", path)
    time.sleep(seconds)


def unpicklable_result():
    return threading.Lock()


class HoldsLock(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable():
    raise HoldsLock("with a lock inside")


class NeedsTwo(Exception):
    """Pickles, but will not unpickle: its __init__ wants two arguments
    (CPython gh-79492 hangs ProcessPoolExecutor on this)."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def raise_needs_two():
    raise NeedsTwo(1, 2)


def allocate(nbytes):
    block = bytearray(nbytes)
    return len(block)


def set_state(key, value):
    STATE[key] = value


def get_state(key):
    return STATE.get(key), os.getpid()


def failing_initializer():
    raise RuntimeError("initializer says no")


def chaos(kind, x):
    """One task of the randomized run."""
    if kind == "ok":
        return x * x
    if kind == "raise":
        raise KeyError(x)
    if kind == "exit":
        os._exit(5)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "segv":
        ctypes.string_at(0)
    if kind == "hang":
        time.sleep(60)
    raise AssertionError(kind)


def python_version():
    return sys.version_info[:2]

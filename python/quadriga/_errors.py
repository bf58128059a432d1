"""The exceptions a ProcessPool's futures end with, besides the task's own."""

from __future__ import annotations

__all__ = ["QuadrigaError", "WorkerDied", "TaskTimeout", "RemoteError", "RemoteTraceback"]


class QuadrigaError(Exception):
    """Base class of the errors this package raises about a task's run."""


class WorkerDied(QuadrigaError):
    """The worker running the task died (a signal such as SIGKILL or SIGSEGV,
    an out-of-memory kill, ``os._exit``). Only this task's future fails; the
    worker is replaced.

    ``signal`` is the signal number that killed it (or None), ``exit_code``
    its exit status (or None), ``pid`` its process id.
    """

    def __init__(self, message: str, *, pid=None, signal=None, exit_code=None):
        super().__init__(message)
        self.pid = pid
        self.signal = signal
        self.exit_code = exit_code

    def __reduce__(self):
        return (_rebuild, (type(self), self.args, self.__dict__))


class TaskTimeout(QuadrigaError, TimeoutError):
    """The task ran past its time limit; its worker's whole process group was
    killed (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, message: str, *, timeout=None, pid=None):
        super().__init__(message)
        self.timeout = timeout
        self.pid = pid

    def __reduce__(self):
        return (_rebuild, (type(self), self.args, self.__dict__))


class RemoteError(QuadrigaError):
    """The task raised an exception, or returned a result, that could not be
    sent back (it would not pickle, or not unpickle here). ``remote_repr`` is
    its ``repr`` and ``remote_traceback`` the worker's traceback text."""

    def __init__(self, message: str, *, remote_repr: str = "", remote_traceback: str = ""):
        super().__init__(message)
        self.remote_repr = remote_repr
        self.remote_traceback = remote_traceback

    def __reduce__(self):
        return (_rebuild, (type(self), self.args, self.__dict__))

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback
        return text


class RemoteTraceback(Exception):
    """The ``__cause__`` of an exception re-raised from a worker: its traceback
    there, as text."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _rebuild(cls, args, state):
    obj = cls.__new__(cls)
    Exception.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj

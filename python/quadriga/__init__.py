"""Quadriga for Python: a process pool that survives crashes, kills on
timeout and limits memory, as a :class:`concurrent.futures.Executor`.

>>> import quadriga
>>> def square(x):
...     return x * x
>>> with quadriga.ProcessPool(2) as pool:
...     list(pool.map(square, [1, 2, 3, 4, 5]))
[1, 4, 9, 16, 25]

Callables and arguments travel with cloudpickle (lambdas and closures work).
The workers are supervised by Quadriga's Rust process pool: each in its own
process group, replaced when it dies, killed with its group on timeout.
"""

from ._errors import QuadrigaError, RemoteError, RemoteTraceback, TaskTimeout, WorkerDied
from ._pool import ProcessPool

__all__ = [
    "ProcessPool",
    "QuadrigaError",
    "WorkerDied",
    "TaskTimeout",
    "RemoteError",
    "RemoteTraceback",
]

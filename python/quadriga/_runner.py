"""The worker's side of a task, called from Rust holding the GIL.

A payload is one of:

* ``b"C" + len(fn) (4 bytes, little-endian) + fn + args``: call ``fn(*args,
  **kwargs)`` where ``fn`` is a pickled callable and ``args`` a pickled
  ``(args, kwargs)``;
* ``b"M" + len(fn) + fn + items``: a map chunk, ``items`` a pickled list of
  argument tuples (``b"S"``: of single arguments).

The answer is ``b"\\x00" + pickle(result)``, ``b"\\x01" + pickle((exception
bytes or None, repr, traceback text))``, or for a map chunk ``b"\\x02" +
elapsed ns (8 bytes) + pickle((results, {index: error}))`` (None in
``results`` where an item failed).
Nothing raised by the task escapes: an exception or result that will not
pickle is sent as its repr and traceback, which the caller raises as
RemoteError.
"""

from __future__ import annotations

import pickle
import sys
import time
import traceback

import cloudpickle

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_functions: dict = {}
_MAX_FUNCTIONS = 64


def _function(blob: bytes):
    fn = _functions.get(blob)
    if fn is None:
        fn = pickle.loads(blob)
        if len(_functions) >= _MAX_FUNCTIONS:
            _functions.clear()
        _functions[blob] = fn
    return fn


def _dumps(obj) -> bytes:
    try:
        return pickle.dumps(obj, _PROTOCOL)
    except Exception:
        return cloudpickle.dumps(obj, _PROTOCOL)


def _error(exc: BaseException) -> tuple:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        blob = _dumps(exc)
    except BaseException:
        blob = None
    try:
        text = repr(exc)
    except BaseException:
        text = f"<{type(exc).__qualname__} whose repr failed>"
    return (blob, text, tb)


def _unpicklable(what: str, value, exc: BaseException) -> tuple:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        text = repr(value)
    except BaseException:
        text = f"<{type(value).__qualname__} whose repr failed>"
    return (None, text, f"the task's {what} could not be pickled:\n{tb}")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def run(payload: bytes) -> bytes:
    try:
        kind = payload[:1]
        n = int.from_bytes(payload[1:5], "little")
        fn = _function(payload[5 : 5 + n])
        rest = payload[5 + n :]
        if kind == b"M" or kind == b"S":
            return _run_chunk(fn, pickle.loads(rest), kind == b"M")
        args, kwargs = pickle.loads(rest)
    except BaseException as exc:
        return b"\x01" + pickle.dumps(_error(exc), _PROTOCOL)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        _flush()
        return b"\x01" + pickle.dumps(_error(exc), _PROTOCOL)
    _flush()
    try:
        return b"\x00" + _dumps(result)
    except BaseException as exc:
        return b"\x01" + pickle.dumps(_unpicklable("result", result, exc), _PROTOCOL)


def _run_chunk(fn, items: list, spread: bool) -> bytes:
    start = time.perf_counter_ns()
    values = []
    errors = {}
    for i, item in enumerate(items):
        try:
            values.append(fn(*item) if spread else fn(item))
        except BaseException as exc:
            values.append(None)
            errors[i] = _error(exc)
    _flush()
    elapsed = (time.perf_counter_ns() - start).to_bytes(8, "little")
    try:
        return b"\x02" + elapsed + _dumps((values, errors))
    except BaseException:
        pass
    # Some result will not pickle: that item alone becomes an error.
    for i, value in enumerate(values):
        if i not in errors:
            try:
                _dumps(value)
            except BaseException as exc:
                values[i] = None
                errors[i] = _unpicklable("result", value, exc)
    return b"\x02" + elapsed + _dumps((values, errors))


def initialize(payload: bytes) -> bytes:
    """Runs the pool's initializer; returns b"" or the error's text."""
    try:
        fn, args = pickle.loads(payload)
        fn(*args)
    except BaseException as exc:
        _flush()
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).encode()
    _flush()
    return b""

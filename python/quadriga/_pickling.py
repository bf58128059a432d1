"""How callables and arguments travel to a worker: plain pickle where it is
safe and fast, cloudpickle for the rest (lambdas, closures, anything defined
in ``__main__``, which a worker does not have)."""

from __future__ import annotations

import pickle
import sys

import cloudpickle

PROTOCOL = pickle.HIGHEST_PROTOCOL
_PLAIN = frozenset((int, float, str, bytes, bool, type(None), complex))


def _by_reference(fn) -> bool:
    """Whether pickle would name ``fn`` by module and qualified name, and the
    worker could find it under that name (not in ``__main__``)."""
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None)
    if not module or not name or module == "__main__" or "<" in name:
        return False
    obj = sys.modules.get(module)
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj is fn


def dump_function(fn) -> bytes:
    """The callable, pickled: by reference when it is importable, by value
    (cloudpickle) otherwise."""
    if _by_reference(fn):
        try:
            return pickle.dumps(fn, PROTOCOL)
        except Exception:
            pass
    return cloudpickle.dumps(fn, PROTOCOL)


def _plain(values) -> bool:
    return all(type(v) in _PLAIN for v in values)


def dump_call(args: tuple, kwargs: dict) -> bytes:
    """``(args, kwargs)`` pickled; plain pickle when every value is a plain
    scalar, cloudpickle otherwise."""
    if (not kwargs or _plain(kwargs.values())) and _plain(args):
        return pickle.dumps((args, kwargs), PROTOCOL)
    return cloudpickle.dumps((args, kwargs), PROTOCOL)


def dump_items(items: list, spread: bool) -> bytes:
    """A map chunk's arguments: tuples (``spread``) or single values."""
    if spread:
        kinds = {type(v) for t in items for v in t}
    else:
        kinds = {type(v) for v in items}
    if kinds <= _PLAIN:
        return pickle.dumps(items, PROTOCOL)
    return cloudpickle.dumps(items, PROTOCOL)


def frame(kind: bytes, fn_blob: bytes) -> bytes:
    """The head of a payload: its kind and the pickled callable."""
    return kind + len(fn_blob).to_bytes(4, "little") + fn_blob

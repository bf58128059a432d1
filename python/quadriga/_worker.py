"""A worker's entry: ``python -c "…; import quadriga._worker" SYS_PATH_JSON``.

The pool passes the parent's ``sys.path`` (and the worker inherits its working
directory), so the modules of pickled callables import here as there. Importing
this module serves tasks until the pool stops the worker, then exits.
"""

from quadriga import _runner  # noqa: F401  (imported before any task, once)
from quadriga._quadriga import serve_worker

serve_worker()

"""A one-line notice when a kernel is about to compile from scratch (a cold start).

The first ``fit`` of each dtype compiles the training kernels: tens of seconds on a small
machine (README, "Start-up"), silent otherwise.  Numba compiles only when the dispatcher
has no compiled overload for the call's signature in this process *and* none can be loaded
from the on-disk cache; exactly then, and only then, it broadcasts its ``numba:compile``
event (Numba's event API) before compiling.  A listener on that event for fastbp's entry
points says so through the ``logging`` module (logger ``"fastbp"``, level INFO), and also
on stderr while a ``fit(verbose=1)`` runs in the same thread (``stderr_notices``).  Loading
from the cache, or calling what is already compiled, costs nothing extra and says nothing.
"""

import contextlib
import inspect
import logging
import sys
import threading

from numba.core import event, types

__all__ = ["logger", "watch", "stderr_notices"]

logger = logging.getLogger("fastbp")
logger.addHandler(logging.NullHandler())  # a library's logger: the application decides where INFO goes

_local = threading.local()  # .stderr: notices of this thread also go to stderr
_NO_STDERR = contextlib.nullcontext()


class _Stderr:
    """``stderr_notices(True)``: notices raised in this thread inside the block are also
    printed to stderr."""

    def __enter__(self):
        self.previous = getattr(_local, "stderr", False)
        _local.stderr = True

    def __exit__(self, *exc):
        _local.stderr = self.previous


def stderr_notices(shown):
    """A context: while it is open, compile notices of this thread are printed to stderr as
    well as logged (``shown``: ``fit``'s ``verbose``)."""
    return _Stderr() if shown else _NO_STDERR


class _Listener(event.Listener):
    """Logs ``numba:compile`` events of the watched dispatchers as they start."""

    def __init__(self):
        self.watched = {}  # id(dispatcher) -> (dispatcher, what, about, index of X, index of cfg)

    def watch(self, dispatcher, what, about):
        names = list(inspect.signature(dispatcher.py_func).parameters)
        self.watched[id(dispatcher)] = (dispatcher, what, about, names.index("X") if "X" in names else None,
                                        names.index("cfg") if "cfg" in names else None)

    def on_start(self, event):
        data = event.data or {}
        entry = self.watched.get(id(data.get("dispatcher")))
        if entry is None or entry[0] is not data.get("dispatcher"):
            return  # (Numba's own compile events, and every callee's: not ours to announce)
        _, what, about, x_at, cfg_at = entry
        message = f"fastbp: compiling {what} for {_variant(data.get('args', ()), x_at, cfg_at)} " \
                  f"(first use; cached on disk afterwards, {about})"
        logger.info(message)
        if getattr(_local, "stderr", False):
            print(message, file=sys.stderr, flush=True)

    def on_end(self, event):
        pass


def _variant(args, x_at, cfg_at):
    """The dtype of the signature being compiled (its ``X``), and whether it is a read-only
    input's or a model large enough for parallel loops (each its own specialisation)."""
    try:
        X = args[x_at]
        words = [str(X.dtype)]
        if not X.mutable:
            words.append("read-only inputs")
        cfg = args[cfg_at] if cfg_at is not None else None
        if isinstance(cfg, types.BaseTuple) and not any(isinstance(t, types.NoneType) for t in cfg.types):
            words.append("with parallel loops (a large model)")
        return ", ".join(words)
    except (TypeError, IndexError, AttributeError):
        return "this signature"


_LISTENER = _Listener()
event.register("numba:compile", _LISTENER)


def watch(dispatcher, what, about):
    """Announce every compile of ``dispatcher`` (a fastbp entry point) as "compiling ``what``",
    taking ``about`` (e.g. "~30 s")."""
    _LISTENER.watch(dispatcher, what, about)

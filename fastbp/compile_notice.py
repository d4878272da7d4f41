"""A one-line notice when a kernel is about to compile from scratch (a cold start).

The first call of each of fastbp's entry points in a fresh installation compiles it: tens of
seconds for the training kernels on a small machine (README, "Start-up"), and nothing else
would tell the user why their first ``fit`` or ``predict`` sits silent.  Numba compiles only
when the dispatcher has no compiled overload for the call's signature in this process *and*
none can be loaded from the on-disk cache; exactly then, and only then, it broadcasts its
``numba:compile`` event (Numba's event API) before compiling.  A listener on that event for
fastbp's entry points says so through the ``logging`` module: logger ``"fastbp"``, level
WARNING, so that with no logging configured Python's last-resort handler prints it on
stderr (the message alone), and an application that configures logging gets it through its
own handlers.  Loading from the cache, or calling what is already compiled, costs nothing
extra and says nothing.

Quiet: ``logging.getLogger("fastbp").setLevel(logging.ERROR)`` (the command line's
``--quiet`` does this).
"""

import inspect
import logging

from numba.core import event, types

__all__ = ["logger", "watch"]

# No handler of its own (not even a NullHandler, which would hide the notice from Python's
# last-resort handler): where the notice goes is the application's logging configuration,
# and without one, stderr.
logger = logging.getLogger("fastbp")


class _Listener(event.Listener):
    """Logs ``numba:compile`` events of the watched dispatchers as they start."""

    def __init__(self):
        self.watched = {}  # id(dispatcher) -> (dispatcher, what, about, index of the array, index of cfg)

    def watch(self, dispatcher, what, about, array):
        names = list(inspect.signature(dispatcher.py_func).parameters)
        self.watched[id(dispatcher)] = (dispatcher, what, about, names.index(array),
                                        names.index("cfg") if "cfg" in names else None)

    def on_start(self, event):
        data = event.data or {}
        entry = self.watched.get(id(data.get("dispatcher")))
        if entry is None or entry[0] is not data.get("dispatcher"):
            return  # (Numba's own compile events, and every callee's: not ours to announce)
        _, what, about, array_at, cfg_at = entry
        logger.warning(f"fastbp: compiling {what} for {_variant(data.get('args', ()), array_at, cfg_at)} "
                       f"(first use; cached on disk afterwards, {about})")

    def on_end(self, event):
        pass


def _variant(args, array_at, cfg_at):
    """The dtype of the signature being compiled (of its data array), and whether it is a
    read-only input's or the variant with parallel loops (each its own specialisation)."""
    try:
        A = args[array_at]
        if isinstance(A, types.BaseTuple):  # a structure of arrays (a Network): its first, the parameters
            A = A.types[0]
        words = [str(A.dtype)]
        if not A.mutable:
            words.append("read-only inputs")
        cfg = args[cfg_at] if cfg_at is not None else None
        if isinstance(cfg, types.BaseTuple) and not any(isinstance(t, types.NoneType) for t in cfg.types):
            # chosen by the size of a call (its rows times the widest layer), not of the model
            words.append("with parallel loops for calls large enough to split over the cores")
        return ", ".join(words)
    except (TypeError, IndexError, AttributeError):
        return "this signature"


_LISTENER = _Listener()
event.register("numba:compile", _LISTENER)


def watch(dispatcher, what, about, array="X"):
    """Announce every compile of ``dispatcher`` (a fastbp entry point) as "compiling ``what``
    for <the dtype of its argument ``array``>", taking ``about`` (e.g. "~30 s")."""
    _LISTENER.watch(dispatcher, what, about, array)

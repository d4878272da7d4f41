"""Around the training loop, for both implementations: :class:`History` (what ``fit``
returns, with ``plot``), :class:`EarlyStopping`, and the bookkeeping ``fit`` does between
its compiled calls: each chunk's shuffle orders and learning rates, going on with an epoch
an earlier ``fit`` stopped part-way, the progress display of ``verbose=1``, recording each
epoch (:class:`EpochLog`), the early-stopping state (:class:`EarlyStopper`), what a
non-finite batch does (``on_nonfinite``) and where Ctrl-C may stop training
(:class:`HeldInterrupts`).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any

import numpy as np

from . import schedules
from .kernels.codes import STATUS_LOSS, STATUS_UPDATE

try:  # signal's own functions without the wrappers that map them to enums (10 us a call)
    from _signal import getsignal as _get_handler, signal as _set_handler
except ImportError:  # another Python
    from signal import getsignal as _get_handler, signal as _set_handler

__all__ = ["History", "EarlyStopping"]

# warnings.warn's stacklevel that points at the user's ``fit`` call from EpochLog's methods:
# warn <- EpochLog.record / .nonfinite <- BaseMLP._fit_epochs <- BaseMLP.fit <- the caller.
_FIT_CALLER = 4


class _Progress(threading.Thread):
    """Redraws a progress bar about every ``interval`` seconds while an epoch runs in compiled
    code (which releases the GIL): reads the batch counter the kernels update, so training
    itself does nothing extra."""

    def __init__(self, model, epoch, epochs, n_batches, batch_size, stream, interval=0.5):
        super().__init__(daemon=True)
        self.model, self.epoch, self.epochs, self.n_batches = model, epoch, epochs, n_batches
        self.batch_size, self.stream, self.interval = batch_size, stream, interval
        self.start_time = time.perf_counter()
        self.finished = threading.Event()

    def line(self, done):
        width = 24
        filled = int(width * done / self.n_batches)
        rate = done * self.batch_size / max(time.perf_counter() - self.start_time, 1e-9)
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        return f"epoch {self.epoch}/{self.epochs} [{bar[:width]}] {done}/{self.n_batches} - {rate:,.0f} samples/s"

    def run(self):
        done = 0
        while not self.finished.wait(self.interval):
            # Never backwards: the counter goes back to 0 when the epoch ends, which this
            # thread may see just before it is told to stop.
            done = max(done, self.model._epoch_progress())
            self.stream.write("\r" + self.line(done))
            self.stream.flush()


class EarlyStopping:
    """Stop ``fit`` when the monitored metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    patience : int, default 5
        Epochs without improvement after which training stops.
    min_delta : float, default 0.0
        The smallest change that counts as an improvement, in the improving direction: a
        loss improves when it falls below ``best - min_delta``, an accuracy when it rises
        above ``best + min_delta``.
    restore_best : bool, default True
        End ``fit`` with the parameters (and batch norm's running averages) of the best epoch.
    monitor : str or None, default None
        The metric watched, one of those ``fit`` records per epoch (``MONITORS``):
        ``"loss"`` and ``"val_loss"`` are minimised; ``"val_accuracy"`` (classifiers, with
        validation data) is maximised — a metric whose name ends in ``accuracy`` is maximised,
        a loss minimised (``mode`` says which).  ``None``: ``"val_loss"`` when ``fit`` has
        validation data, else ``"loss"``.
    """

    # The metrics fit records per epoch that may be monitored (not "lr" or "skipped_batches").
    MONITORS = ("loss", "val_loss", "val_accuracy")

    def __init__(self, patience: int = 5, min_delta: float = 0.0, restore_best: bool = True,
                 monitor: str | None = None) -> None:
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        if isinstance(min_delta, (bool, np.bool_)) or not isinstance(min_delta, (int, float, np.integer, np.floating)) \
                or not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if monitor is not None and monitor not in self.MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(map(repr, self.MONITORS))} (or None), "
                             f"got {monitor!r}")
        self.patience, self.min_delta, self.restore_best, self.monitor = int(patience), float(min_delta), \
            bool(restore_best), monitor

    @staticmethod
    def mode_of(metric: str) -> str:
        """``"max"`` for a metric whose name ends in ``accuracy``, else ``"min"`` (a loss)."""
        return "max" if metric.endswith("accuracy") else "min"

    @property
    def mode(self) -> str:
        """Which way ``monitor`` improves: ``"max"`` (accuracies) or ``"min"`` (losses; also
        the default monitor, a loss, when ``monitor`` is None)."""
        return self.mode_of(self.monitor or "loss")

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best}, monitor={self.monitor!r})")


class History(list):
    """Per-epoch training losses (a list), plus ``history`` — a dict of metric name -> list."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {"loss": []}
        self.stopped: str | None = None  # why training stopped early, if it did
        self.best_epoch: int | None = None  # with early stopping: the (1-based) epoch that was best

    def plot(self, path: str | os.PathLike | None = None, show: bool = False) -> Any:
        """Draw the loss (and accuracy, when recorded) per epoch with matplotlib (an optional
        extra: ``pip install "fastbp[plot]"``); save to ``path`` and/or show.  Returns the figure."""
        try:
            import matplotlib
            if path is not None and not show:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'fastbp[plot]'") from None
        accuracy = [k for k in self.history if k.endswith("accuracy")]
        fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(10 if accuracy else 5, 4), squeeze=False)
        epochs = range(1, len(self) + 1)
        for key in ("loss", "val_loss"):
            if key in self.history:
                axes[0, 0].plot(epochs, self.history[key], label=key)
        if self.best_epoch:
            axes[0, 0].axvline(self.best_epoch, color="grey", linestyle=":", label="best epoch")
        axes[0, 0].set(xlabel="epoch", ylabel="loss", yscale="log")
        axes[0, 0].legend()
        if accuracy:
            for key in accuracy:
                axes[0, 1].plot(epochs, self.history[key], label=key)
            axes[0, 1].set(xlabel="epoch", ylabel="accuracy")
            axes[0, 1].legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        if show:
            plt.show()
        return fig

    def _record_losses(self, losses):
        """Record epochs that have nothing but a loss (many at once: a chunk of epochs)."""
        values = [float(v) for v in losses]
        self.history.setdefault("loss", []).extend(values)
        self.extend(values)

    def _record(self, **metrics):
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        self.append(metrics["loss"])

    @property
    def loss(self) -> list[float]:
        """The per-epoch mean training losses (``history["loss"]``)."""
        return self.history["loss"]


# ------------------------------------------------------------ fit's bookkeeping
def nonfinite_message(status, layer, where):
    """Why training stopped at ``where``: the loss (``STATUS_LOSS``) or layer ``layer``'s
    gradient (``STATUS_GRAD``) was NaN or inf, or its update would have made a parameter or
    the optimizer's state NaN or inf (``STATUS_UPDATE``).  In every case nothing of that step
    was applied, which is what makes the message's second half true."""
    if status == STATUS_UPDATE:
        return (f"training diverged: the update of layer {layer} would make its parameters or the optimizer's "
                f"state NaN or inf at {where} (the loss and gradient were finite); that batch was not applied, "
                "so the weights are the last finite ones. Lower the learning rate, raise the optimizer's eps, "
                "set clip_norm, or check the data's scale")
    what = "loss" if status == STATUS_LOSS else f"gradient of layer {layer}"
    return (f"training diverged: the {what} is NaN or inf at {where}; that batch was not applied, so "
            "the weights are the last finite ones. Lower the learning rate, set clip_norm, or check "
            "the data's scale")


def epoch_orders(rng, count, n, shuffle):
    """The order of the ``n`` samples in each of ``count`` epochs, ``(count, n)``: shuffled by
    ``rng`` (when ``shuffle``) one epoch after the other, identically in both implementations."""
    perms = np.empty((count, n), dtype=np.int64)
    perms[:] = np.arange(n)
    if shuffle:  # in place: the same draws as rng.permutation(n), without its allocations
        for e in range(count):
            rng.shuffle(perms[e])
    return perms


def rewind_generator(rng, state, drawn, done, n, shuffle):
    """Put ``rng`` back at the start of the first unfinished epoch, after a chunk whose
    ``drawn`` orders were drawn from ``state`` and of which ``done`` epochs completed (fewer:
    a non-finite batch or an exception stopped it).  The unfinished epoch's order is drawn
    again by the next ``fit`` — the same order, since drawing is deterministic — so a model
    is always one that drew the orders of the epochs it began."""
    if done < drawn and shuffle:
        rng.bit_generator.state = state
        epoch_orders(rng, done, n, shuffle)


def _unfinished_epoch_closes(model, n, batch_size, shuffle):
    """Whether an epoch an earlier ``fit`` stopped part-way (``batch > 0`` in the state record)
    ran over data of another shape (rows, batch size, shuffling) than this fit's: then it
    cannot go on, and is closed before this fit's epochs."""
    return model._field("batch") > 0 and (model._field("samples"), model._field("batch_size"),
                                          model._field("shuffled")) != (n, batch_size, int(shuffle))


def chunk_start(model, n, batch_size, shuffle):
    """``(epoch, step)`` counts at the first batch of the next chunk's first epoch, for its
    learning rates: an epoch stopped part-way goes on (the counts at its first batch), or is
    closed first (those after it)."""
    batch = model._field("batch")
    if batch and _unfinished_epoch_closes(model, n, batch_size, shuffle):
        return model._epoch + 1, model._batches
    return model._epoch, model._batches - batch


def begin_chunk(model, n, batch_size, shuffle):
    """Before a chunk's orders are drawn (under the model's write lock): an epoch an earlier
    ``fit`` stopped part-way goes on, as this chunk's first, if this data has its shape;
    otherwise it is closed as it is — counted as an epoch, its order drawn from the
    generator — with a ``RuntimeWarning``.  Then the state record notes this data's shape."""
    fields = model._fields
    if fields["batch"][0] and _unfinished_epoch_closes(model, n, batch_size, shuffle):
        done, rows, size, shuffled = (model._field(k) for k in ("batch", "samples", "batch_size", "shuffled"))
        warnings.warn(f"epoch {model._epoch + 1} stopped after {done} batches of {size} (of {rows} "
                      f"{'shuffled ' if shuffled else ''}rows); this data has another shape, so that epoch is "
                      "counted as finished and a new one begins", RuntimeWarning, stacklevel=_FIT_CALLER)
        epoch_orders(model._rng, 1, rows, shuffled)  # the order it ran in was drawn
        for key in ("batch", "skipped", "counted", "loss_sum"):
            fields[key][0] = 0
        fields["epoch"][0] += 1
    fields["samples"][0], fields["batch_size"][0], fields["shuffled"][0] = n, batch_size, bool(shuffle)


class HeldInterrupts:
    """Ctrl-C while ``fit`` runs, held back to where the model is a model that trained the
    steps it applied.

    Python raises ``KeyboardInterrupt`` at whichever bytecode the main thread runs when
    SIGINT arrives: inside the reference's optimizer update, between a chunk's shuffle
    orders and its epochs, or in a lock's release.  While ``fit`` runs in the main thread
    (the only one Python delivers signals to), this handler only notes the signal;
    ``deliver()``, called where the model is whole (between two batches of the reference,
    between two chunks), passes it to the handler it replaced (Python's own raises
    ``KeyboardInterrupt``), and so does leaving ``fit``.  Inside ``passing()`` — around a
    compiled call, which runs whole anyway — a signal is passed on at once, so Ctrl-C also
    stops a long first compilation.  Signal handlers that are not Python callables (ignore,
    the default action) are left alone.
    """

    def __init__(self):
        self.previous = None  # the handler replaced, while fit runs
        self.pending = None  # (frame,) of a held signal (a handler's frame may be None)
        self.open = False  # inside passing()
        self._passing = _Passing(self)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and callable(_get_handler(signal.SIGINT)):
            try:
                self.previous = _set_handler(signal.SIGINT, self._note)
            except ValueError:  # not the main interpreter
                self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            _set_handler(signal.SIGINT, self.previous)
            self.deliver()

    def _note(self, signum, frame):
        if self.open:
            self.previous(signum, frame)
        else:
            self.pending = (frame,)

    def deliver(self):
        """A point where the model is whole: pass on a signal held back until now."""
        if self.pending is not None:
            (frame,), self.pending = self.pending, None
            self.previous(signal.SIGINT, frame)

    def passing(self):
        """``with interrupts.passing():`` signals pass at once inside the block (a compiled
        call, atomic to Python)."""
        return self._passing


class _Passing:
    """``HeldInterrupts.passing()``: a plain context-manager object (one per chunk of fit)."""
    __slots__ = ("held",)

    def __init__(self, held):
        self.held = held

    def __enter__(self):
        self.held.deliver()
        self.held.open = True

    def __exit__(self, *exc):
        self.held.open = False


def epoch_rates(lr_schedule, model, n, batch_size, shuffle, count, n_batches):
    """The learning rate of each mini-batch of the next ``count`` epochs of ``model`` over ``n``
    rows, ``(count, n_batches)``, from the counts at their first batch (``chunk_start``); rows
    of length 0 without a schedule (the optimizer's own rate).  The schedule's rates are
    checked against the model's dtype here, where both implementations and
    ``fastbp.distributed`` make them."""
    if lr_schedule is None:
        return np.empty((count, 0))
    return schedules.rates_for_epochs(lr_schedule, *chunk_start(model, n, batch_size, shuffle), count, n_batches,
                                      dtype=model.dtype)


_NO_PROGRESS = contextlib.nullcontext()


def on_a_terminal(stream):
    """Whether ``stream`` is a terminal: only there can a line be redrawn in place (in a log
    file or a pipe each redraw would be a line of its own)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # (no isatty, or closed)
        return False


def progress_bar(model, shown, epoch, epochs, n_batches, batch_size):
    """While the body runs (an epoch in compiled code), redraw a progress bar on stdout, if
    ``shown`` and stdout is a terminal; the bar is gone (its thread joined) when the body
    ends, however it ends.  (Not shown: a shared no-op, since ``fit(epochs=1)`` in a loop
    pays for every object.)"""
    if not shown or not on_a_terminal(sys.stdout):
        return _NO_PROGRESS
    return _progress_shown(_Progress(model, epoch, epochs, n_batches, batch_size, sys.stdout))


@contextlib.contextmanager
def _progress_shown(progress):
    progress.start()
    try:
        yield
    finally:
        progress.finished.set()
        progress.join()


class EarlyStopper:
    """The state of an :class:`EarlyStopping` rule during one ``fit``: the best value of the
    ``monitor`` metric so far, the epochs waited since, and (``restore_best``) a copy of the
    parameters at the best epoch."""

    def __init__(self, rule, monitor):
        self.rule, self.monitor = rule, monitor
        self.maximise = EarlyStopping.mode_of(monitor) == "max"
        self.best, self.waited, self.best_params = -math.inf if self.maximise else math.inf, 0, None

    def improved(self, value):
        """Whether ``value`` of the monitored metric improves on the best so far by more than
        ``min_delta`` (upwards for an accuracy, downwards for a loss)."""
        if self.maximise:
            return value > self.best + self.rule.min_delta
        return value < self.best - self.rule.min_delta

    def should_stop(self, metrics, epoch, params, history):
        """Take in the metrics of (1-based) ``epoch``, ``params`` being the model's parameters
        after it; True once ``patience`` epochs went by without improvement (then
        ``history.stopped`` says so)."""
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.waited = value, 0
            history.best_epoch = epoch
            if self.rule.restore_best:
                self.best_params = params.copy()  # with running averages
            return False
        self.waited += 1
        if self.waited < self.rule.patience:
            return False
        history.stopped = (f"early stopping: {self.monitor} did not improve by more than "
                           f"{self.rule.min_delta} for {self.waited} epochs")
        return True

    def restore_best(self, params):
        """Put the best epoch's parameters back into ``params`` (if they were kept)."""
        if self.best_params is not None:
            params[...] = self.best_params


class EpochLog:
    """What ``fit`` does between its compiled calls: counts the epochs this fit completed
    (the model's own counts move with its weights, in the state record), records each one's
    metrics in ``history`` (evaluating the ``validation`` pair, if any), prints the
    ``verbose`` line, asks the :class:`EarlyStopper` (if any) and applies the
    ``on_nonfinite`` policy.

    ``per_epoch``: whether anything happens between epochs (validation, early stopping,
    progress display); if not, ``fit`` may hand the compiled code many epochs at once.
    """

    def __init__(self, model, epochs, n_samples, batch_size, on_nonfinite, scheduled, validation, stopper, verbose):
        self.model, self.epochs, self.n_samples = model, epochs, n_samples
        self.n_batches = -(-n_samples // batch_size)  # per epoch, the last one maybe smaller
        self.on_nonfinite, self.skip = on_nonfinite, on_nonfinite == "skip_batch"
        self.scheduled, self.validation, self.stopper, self.verbose = scheduled, validation, stopper, verbose
        self.per_epoch = validation is not None or stopper is not None or verbose
        self.history = History()
        self.done = 0  # epochs completed in this fit

    def _count(self, n_epochs):
        self.done += n_epochs  # the model's counts moved with its weights (the state record)

    def record(self, losses, skipped, rates, seconds):
        """Record the epochs a compiled call completed: per epoch its mean loss (``losses``),
        its count of skipped batches (``skipped``) and its batches' rates (``rates``);
        ``seconds``: how long the call took.  Stops at an early stop."""
        if not (self.per_epoch or self.skip or self.scheduled):  # only the losses to record
            self.history._record_losses(losses)
            self._count(len(losses))
            return
        for i, (loss, n_skipped) in enumerate(zip(losses, skipped)):
            self._count(1)
            metrics = {"loss": float(loss)}
            if self.skip:
                metrics["skipped_batches"] = int(n_skipped)
                if n_skipped:
                    warnings.warn(f"epoch {self.done}: skipped {n_skipped} batch(es) with a NaN or inf loss, "
                                  "gradient or update", RuntimeWarning, stacklevel=_FIT_CALLER)
            if self.scheduled:
                metrics["lr"] = float(rates[i, -1])  # the epoch's last rate
            if self.validation is not None:
                metrics.update(self._validation_metrics())
            self.history._record(**metrics)
            if self.verbose:
                self._print(metrics, self.n_samples * len(losses) / max(seconds, 1e-9))
            stopper = self.stopper
            if stopper is not None and stopper.should_stop(metrics, self.done, self.model._params_ext, self.history):
                break

    def _validation_metrics(self):
        val_loss, metrics = self.model._evaluate(*self.validation)
        return {"val_loss": float(val_loss), **{"val_" + k: v for k, v in metrics.items()}}

    def _print(self, metrics, samples_per_second):
        shown = " - ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        text = f"epoch {self.done}/{self.epochs} - {shown} - {samples_per_second:,.0f} samples/s"
        # on a terminal the line replaces the progress bar; elsewhere it is the only line
        print("\r" + text.ljust(72) if on_a_terminal(sys.stdout) else text, flush=True)

    def nonfinite(self, status, layer, batch):
        """A non-finite loss, gradient or update (``status``, ``layer``) in batch ``batch`` (0-based) of
        the epoch after the last recorded one ended the compiled call: ``FloatingPointError``
        (``on_nonfinite="raise"``), else a ``RuntimeWarning`` and ``history.stopped``."""
        message = nonfinite_message(status, layer, f"epoch {self.done + 1}, batch {batch + 1}")
        if self.on_nonfinite == "raise":
            raise FloatingPointError(message)
        warnings.warn(message + "; training stopped", RuntimeWarning, stacklevel=_FIT_CALLER)
        self.history.stopped = message

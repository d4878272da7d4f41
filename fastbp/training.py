"""Around the training loop, for both implementations: :class:`History` (what ``fit``
returns, with ``plot``), :class:`EarlyStopping`, the progress display of ``fit(verbose=1)``
and (from :mod:`fastbp.gradcheck`, for ``fastbp.reference``) :func:`gradcheck`."""

import math
import threading
import time

import numpy as np

from .gradcheck import gradcheck  # noqa: F401  (fastbp.reference imports it from here)

__all__ = ["History", "EarlyStopping", "gradcheck"]


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
        while not self.finished.wait(self.interval):
            self.stream.write("\r" + self.line(self.model._epoch_progress()))
            self.stream.flush()


class EarlyStopping:
    """Stop ``fit`` when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs; with ``restore_best`` the model ends with the best epoch's weights.

    ``monitor`` defaults to ``"val_loss"`` when there is validation data, else ``"loss"``;
    any recorded metric that decreases as it improves may be named.
    """

    def __init__(self, patience=5, min_delta=0.0, restore_best=True, monitor=None):
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        if not isinstance(min_delta, (int, float)) or not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if monitor is not None and monitor not in ("loss", "val_loss"):
            raise ValueError(f"monitor must be 'loss' or 'val_loss', got {monitor!r}")
        self.patience, self.min_delta, self.restore_best, self.monitor = int(patience), float(min_delta), \
            bool(restore_best), monitor

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best}, monitor={self.monitor!r})")


class History(list):
    """Per-epoch training losses (a list), plus ``history`` — a dict of metric name -> list."""

    def __init__(self):
        super().__init__()
        self.history = {"loss": []}
        self.stopped = None  # why training stopped early, if it did
        self.best_epoch = None  # with early stopping: the (1-based) epoch that was best

    def plot(self, path=None, show=False):
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
    def loss(self):
        return self.history["loss"]

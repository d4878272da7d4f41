"""``BaseMLP``: what ``fastbp.MLP`` and ``fastbp.reference.MLP`` share — the public API, the
parameter storage and the training loop — as thin glue over the modules that do the work:

* :mod:`fastbp.validation` — the name tables and every argument check;
* :mod:`fastbp.layout` — where parameters, gradients and optimizer state live (one flat
  buffer each, per-layer views into it), and the initial weights;
* :mod:`fastbp.training` — ``fit``'s bookkeeping between compiled calls;
* :mod:`fastbp.fileformat` — ``save`` and ``load``;
* :mod:`fastbp.metrics` — ``score``'s accuracy and R².

The two implementations differ only in how they compute (compiled kernels or plain
NumPy): the hooks below.  Everything a user can get wrong is checked once, before any
state changes.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TextIO, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import fileformat, metrics
from .kernels.codes import STATE, STATUS_OK
from .locking import Exclusive, ReadWriteLock
from .layout import allocate_state, init_weights, model_layer_table, state_views
from .training import (
    EarlyStopper,
    EarlyStopping,
    EpochLog,
    HeldInterrupts,
    History,
    begin_chunk,
    epoch_orders,
    epoch_rates,
    nonfinite_message,
    progress_bar,
    rewind_generator,
)
from .optimizers import Optimizer, get_optimizer
from .validation import (
    CLASSIFICATION_LOSSES,
    DEFAULT_OUTPUTS,
    check_config,
    check_data,
    check_representable,
    check_fit_counts,
    check_fit_options,
    check_state,
    check_weights,
    check_X,
    check_y,
    early_stopping_monitor,
    split_validation,
)

# fit hands the compiled code up to this many samples' worth of epochs per call.
_EPOCH_CHUNK_SAMPLES = 1 << 16
# ``save`` and ``load`` take a path as ``open`` does.
PathLike = str | bytes | os.PathLike
# ``load`` returns an instance of the class it is called on.
_Model = TypeVar("_Model", bound="BaseMLP")
# The modules whose classes users reach as ``fastbp.X`` (or ``fastbp.reference.X``).
_PUBLIC_MODULES = ("fastbp.model", "fastbp.reference", "fastbp.optimizers")


def _state_count(name, doc):
    """A property: field ``name`` of the state record, as an int (settable)."""
    return property(lambda self: self._field(name), lambda self, value: self._fields[name].__setitem__(0, value),
                    doc=doc)


class BaseMLP:
    """A fully connected network ``Z = A @ W + b`` with a fused output activation + loss.

    Parameters
    ----------
    sizes : list of int
        Layer widths, input first: ``[n_features, hidden..., n_outputs]`` (at least two).
    activation : str or list of str
        Hidden activation(s): ``linear``, ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu``;
        one name for all hidden layers or one per hidden layer.
    output : str or None
        Output activation: ``linear``, ``sigmoid`` or ``softmax`` (softmax needs at least 2
        output units: a one-unit softmax is the constant 1.0).  ``None`` (the default): the
        one the loss implies — ``linear`` for ``mse``, ``sigmoid`` for
        ``binary_cross_entropy``, ``softmax`` for ``cross_entropy``.  ``get_config`` and saved
        files record the resolved name.
    loss : str
        ``mse`` (mean over all elements), ``binary_cross_entropy`` (needs ``sigmoid``
        output) or ``cross_entropy`` (needs ``softmax`` output; targets are integer labels
        of shape (n,) or (n, 1), or one-hot / probability rows of shape (n, k)).  PyTorch's
        definitions, mean reduction; the cross-entropies are computed from the logits.
        Names are case-insensitive, and these aliases are accepted (``validation.LOSS_ALIASES``):
        ``mean_squared_error`` for ``mse``; ``bce``, ``binary_crossentropy`` for
        ``binary_cross_entropy``; ``ce``, ``categorical_cross_entropy``,
        ``categorical_crossentropy`` for ``cross_entropy``.
    optimizer : Optimizer or str
        ``fastbp.SGD/RMSprop/Adam/AdamW/AdaGrad`` instance, or a name for its defaults.
    init : str
        ``he``, ``xavier`` or ``normal`` (std 0.01).  Biases start at zero.
    dtype : str or numpy dtype
        ``float32`` or ``float64`` (or ``np.float32``, ``np.dtype("float64")``); inputs are
        converted once at the API boundary.
    seed : int or None
        Seeds the one NumPy ``Generator`` that draws the initial weights and then each
        epoch's shuffle order (identically in ``fastbp`` and ``fastbp.reference``).
    l2 : float
        Adds ``l2 * sum ||W||^2 / 2`` (weights only) to the loss and its gradient.
    clip_norm : float or None
        If set, the global gradient norm over all parameters is clipped to this value
        before each update (PyTorch's ``clip_grad_norm_``).
    leaky_slope : float
        Negative-side slope of ``leaky_relu`` (default 0.01).
    dropout : float or list of float
        Inverted-dropout rate of the hidden layers' outputs (one rate, or one per hidden
        layer), in [0, 1).  Active in training (``fit``, ``train_step``, ``loss_and_grads``)
        only; the masks are a seeded, deterministic function of the step.
    batch_norm : bool or list of bool
        Batch-normalise the hidden layers' pre-activations (one flag, or one per hidden
        layer): the batch's statistics in training, running averages (PyTorch's momentum 0.1,
        eps 1e-5) in inference; a normalised layer has no bias, its scale and shift are trained.
        Where the drop-in promise ends: some gradients are zero in exact arithmetic under batch
        norm (the weight row of an input constant over the batch, the shift of a linear layer
        feeding a normalised one) and come out as rounding noise of either sign.  Both
        implementations compute batch norm identically, so the noise is the same wherever
        batch norm's inputs are (float64 with ``relu``, ``leaky_relu``, ``linear`` or
        ``sigmoid`` hidden layers); otherwise (``tanh``, float32) it differs, and RMSprop,
        Adam and AdaGrad turn noise into steps of size ~``lr`` (README, "Where the same
        numbers end").
    """

    # The checked, normalised configuration (``validation.check_config``), set by ``__init__``.
    sizes: list[int]
    activations: list[str]
    output: str
    loss: str
    optimizer: Optimizer
    init: str
    dtype: np.dtype
    seed: int | None
    l2: float
    clip_norm: float | None
    leaky_slope: float
    dropout: list[float]
    batch_norm: list[bool]
    n_params: int  # trainable parameters (the entries of the parameter buffer the optimizer updates)

    def __init__(self, sizes: Sequence[int], activation: str | Sequence[str] = "relu", output: str | None = None,
                 loss: str = "cross_entropy", optimizer: Optimizer | str = "adam", init: str = "he",
                 dtype: str | type | np.dtype = "float32", seed: int | None = None, l2: float = 0.0,
                 clip_norm: float | None = None, leaky_slope: float = 0.01, dropout: float | Sequence[float] = 0.0,
                 batch_norm: bool | Sequence[bool] = False) -> None:
        config = check_config(sizes, activation, output, loss, optimizer, init, dtype, seed, l2, clip_norm,
                              leaky_slope, dropout, batch_norm)
        # sizes, activations, output, loss, optimizer, init, dtype, seed, l2, clip_norm,
        # leaky_slope, dropout, batch_norm: the checked, normalised arguments
        vars(self).update(config)
        self._rng = np.random.default_rng(self.seed)
        self._lr = self.optimizer.lr  # the rate last checked against the dtype (``_check_optimizer``)
        self._training = threading.Lock()  # held while any call changes the model
        self._access = ReadWriteLock()  # readers see the state between two writes, never half of one
        self._changing = Exclusive(self._training, self._access, whole=True)  # (``_exclusive``)
        self._changing_in_chunks = Exclusive(self._training, self._access, whole=False)
        # step, epochs and batches done, status of the last batch, ... (the kernels update it)
        self._state = np.zeros(1, dtype=STATE)
        # one-element views of the state record's fields, by name (cheap to read on every call)
        self._fields = {name: self._state[name] for name in STATE.names}
        self._build_storage()
        self._setup()

    def _build_storage(self):
        """The layer table, parameters, gradients and optimizer state (``fastbp.layout``),
        their per-layer views, and the initial weights drawn from ``self._rng``."""
        self._layers, self.n_params, n_running = model_layer_table(self.sizes, self.activations, self.output,
                                                                   self.batch_norm, self.dropout)
        self._params_ext, self._grads, self._slots_buf = allocate_state(
            self.n_params, n_running, self.optimizer.n_slots, self.dtype)
        self._params = self._params_ext[:self.n_params]  # the trainable parameters (then BN's running stats)
        self._slots = self._slots_buf[:, :self.n_params]
        self._W, self._b = self._views(self._params)
        self._gW, self._gb = self._views(self._grads)
        # batch norm: scale / shift (trained) and running mean / variance, None elsewhere
        self._gamma, self._beta = self._bn_views(self._params_ext, "gamma")
        self._ggamma, self._gbeta = self._bn_views(self._grads, "gamma")
        self._run_mean, self._run_var = self._bn_views(self._params_ext, "running")
        for l, bn in enumerate(self.batch_norm):
            if bn:
                self._gamma[l][...] = 1
                self._run_var[l][...] = 1
        for (W, b), (W0, b0) in zip(zip(self._W, self._b), init_weights(self._rng, self.sizes, self.init, self.dtype)):
            W[...] = W0
            b[...] = b0
        # the key of the dropout masks' counter-based stream (drawn only when needed, so the
        # shuffle order of models without dropout does not depend on it)
        self._dropout_key = int(self._rng.integers(0, 2**62)) if any(self.dropout) else 0

    def _field(self, name):
        """A field of the state record, as an int."""
        return int(self._fields[name][0])

    # The counts the kernels (and the reference's loop) keep in the state record, by name:
    # they move with the weights, so an interrupted fit leaves them right.
    _step = _state_count("step", "Optimizer updates applied.")
    _epoch = _state_count("epoch", "Epochs completed (the count epoch-unit schedules see).")
    _batches = _state_count("batches", "Mini-batches run by fit, applied or skipped (what step-unit schedules see).")
    _dropout_key = _state_count("dropout_key", "The key of the dropout masks' counter-based stream.")

    def _epoch_progress(self):
        """Batches done in the current epoch (the kernels / the reference's loop count them)."""
        return self._field("batch")

    # ------------------------------------------------------------------ hooks
    # Whether ``_run_epochs`` gains from several epochs per call (compiled code does); each call
    # holds the write lock, so readers wait for at most one call.
    _epochs_per_call = True

    def _check_optimizer(self):
        """The optimizer's ``lr`` (the one setting that may change after it is made) changed
        since the last training call: checked against the model's dtype before anything moves
        (as the constructor checks it), then ``_optimizer_changed``."""
        lr = self.optimizer.lr
        if lr != self._lr:
            check_representable(self.optimizer, self.l2, self.leaky_slope, self.clip_norm, self.dtype)
            self._lr = lr
            self._optimizer_changed()

    def _optimizer_changed(self):
        """Subclass hook: the optimizer's ``lr`` changed (the reference reads it at each step)."""

    def _setup(self):
        """Subclass hook: called once the buffers exist."""

    def _prepare_training(self, X, T, batch_size):
        """Subclass hook: allocate what training on the checked ``(X, T)`` in batches of
        ``batch_size`` needs, and have its compiled code ready, before ``fit`` changes any
        state or starts timing an epoch."""

    def _forward(self, X):
        """``(P, bad)``: the network output for a validated X and how many of its entries
        are NaN or inf."""
        raise NotImplementedError

    def _evaluate(self, X, T):
        """``(mean loss including the L2 term, metrics)`` for validated X, T; ``metrics``:
        ``{"accuracy": ...}`` for classifiers (``_accuracy``), else empty."""
        raise NotImplementedError

    def _loss_and_grads(self, X, T):
        """Loss of the batch; writes the gradient into ``self._grads``."""
        raise NotImplementedError

    def _train_step(self, X, T):
        """One forward + backward + clipping + optimizer update: ``(loss, status, layer)``.

        If the loss or a gradient is not finite, or the update would make a parameter or the
        optimizer's state non-finite, nothing is updated and ``status`` is ``STATUS_LOSS`` /
        ``STATUS_GRAD`` / ``STATUS_UPDATE``, ``layer`` the (first, from the output) bad layer.
        """
        raise NotImplementedError

    def _run_epochs(self, X, T, perms, batch_size, skip_nonfinite, rates, interrupts):
        """One epoch per row of ``perms`` (each over ``X[perm]`` in mini-batches), with the
        learning rates of the same row of ``rates`` (rows may be empty: the optimizer's).  The
        first may be an epoch stopped part-way: it goes on from batch ``batch`` of the state
        record.  Each batch moves the state record's position (``batch``, ``batches``,
        ``epoch``) with the weights; ``interrupts`` (``HeldInterrupts``) may stop the run only
        between two batches.

        Returns ``(losses, skipped, status, layer, batch)``: per completed epoch its
        sample-weighted mean loss over the applied batches and its count of skipped
        batches.  A non-finite batch is not applied; it ends training unless
        ``skip_nonfinite``, and then ``status, layer, batch`` say where (in the epoch after
        the last completed one).
        """
        raise NotImplementedError

    # the message of a non-finite step (``fastbp.training``), reachable from the model as before
    _nonfinite_message = staticmethod(nonfinite_message)

    # --------------------------------------------------------------- storage views
    def _bn_views(self, flat, field):
        """Per layer, views of the two ``n_out`` blocks at the layer table's ``field``
        (``gamma``: gamma and beta; ``running``: running mean and variance); None without."""
        first, second = [], []
        for lay in self._layers:
            off, n = int(lay[field]), int(lay["n_out"])
            first.append(flat[off:off + n] if off >= 0 else None)
            second.append(flat[off + n:off + 2 * n] if off >= 0 else None)
        return first, second

    def _views(self, flat):
        """Per layer, the views ``W`` (``n_in x n_out``) and ``b`` of a flat parameter-shaped buffer."""
        Ws, bs = [], []
        for lay in self._layers:
            w, b, n_in, n_out = (int(lay[k]) for k in ("w", "b", "n_in", "n_out"))
            Ws.append(flat[w:w + n_in * n_out].reshape(n_in, n_out))
            bs.append(flat[b:b + n_out])
        return Ws, bs

    @property
    def n_layers(self) -> int:
        """The number of weight layers (``len(sizes) - 1``: hidden layers and the output layer)."""
        return len(self.sizes) - 1

    @property
    def is_classifier(self) -> bool:
        """Whether the loss is a classification loss (``cross_entropy`` or
        ``binary_cross_entropy``): ``evaluate`` then reports an accuracy and
        ``predict_classes`` works."""
        return self.loss in CLASSIFICATION_LOSSES

    # --------------------------------------------------------------- data checks
    def _check_X(self, X):
        return check_X(X, self.sizes[0], self.dtype)

    def _check_y(self, y, n):
        """Targets as a dense float matrix T of shape (n, k) in the model's dtype."""
        return check_y(y, n, self.sizes[-1], self.loss, self.dtype)

    def _check_data(self, X, y):
        return check_data(X, y, self.sizes, self.loss, self.dtype)

    # ----------------------------------------------------------- public API
    def _exclusive(self, writes_in_chunks=False):
        """Refuse a second thread that tries to change the model while another one does, and
        keep readers out while this one changes it (``writes_in_chunks``: the caller takes
        ``self._access.writing()`` itself, for each consistent step: ``fit``'s chunks)."""
        return self._changing_in_chunks if writes_in_chunks else self._changing

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 1, batch_size: int = 32, shuffle: bool = True,
            on_nonfinite: Literal["raise", "stop", "skip_batch"] = "raise",
            lr_schedule: Callable[[int], float] | None = None,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None, validation_split: float = 0.0,
            early_stopping: EarlyStopping | None = None, verbose: int = 0) -> History:
        """Train on (X, y) for ``epochs`` passes in mini-batches of ``batch_size``; returns a
        :class:`History`.

        **One epoch by default**: ``fit(X, y)`` makes a single pass over the data, which rarely
        trains a network far; ask for more with ``fit(X, y, epochs=20)``.  Each call goes on
        from where the last one stopped (optimizer state, schedule counts and the shuffle
        order carry on), so ``fit`` may also be called in a loop of your own.

        Parameters
        ----------
        X : array-like, shape (n, n_features)
            Inputs; any numeric dtype or layout, converted once to the model's dtype.
        y : array-like
            Targets: for ``cross_entropy``, integer class labels of shape (n,) or (n, 1), or
            one-hot / probability rows (n, k); otherwise one target per output (n, k), or (n,)
            when k == 1.
        epochs : int, default 1
            Passes over the data (0 trains nothing).
        batch_size : int, default 32
            Rows per mini-batch (the last one of an epoch may be smaller; a batch size above n
            is one batch of n).
        shuffle : bool, default True
            Draw each epoch's order from the model's seeded generator; else the rows' order.
        on_nonfinite : {"raise", "stop", "skip_batch"}, default "raise"
            A batch whose loss or gradient is NaN or inf, or whose update would make a
            parameter or the optimizer's state NaN or inf, is never applied (checked inside
            the compiled epoch, before any of the update is written). ``"raise"``:
            ``FloatingPointError`` naming the epoch, batch and layer; ``"stop"``: a
            ``RuntimeWarning`` and training stops (``history.stopped`` says why);
            ``"skip_batch"``: the batch is skipped and training goes on
            (``history.history["skipped_batches"]`` counts them).
        lr_schedule : callable, optional
            A schedule from :mod:`fastbp.schedules` (or any callable of the epoch / step
            count): the optimizer's learning rate for each epoch or mini-batch.
        validation_data : (X_val, y_val), optional
            Held-out data evaluated after every epoch: ``val_loss`` (and ``val_accuracy`` for
            classifiers) are recorded.
        validation_split : float, default 0.0
            Instead of ``validation_data``: the fraction of the data (its last rows, before
            any shuffling) held out.
        early_stopping : EarlyStopping, optional
            Stop when the monitored metric has not improved for ``patience`` epochs, and
            (``restore_best``) go back to the best epoch's weights.
        verbose : int, default 0
            0 silent; 1 one line per epoch with the loss, validation metrics and samples/s
            (compile time excluded), and on a terminal a progress bar while the epoch runs.

        Returns
        -------
        History
            The list of per-epoch mean training losses; ``history.history`` holds every
            recorded metric per epoch.

        The first ``fit`` of each dtype in a fresh installation compiles the kernels (~30 s
        on a 2-core machine; cached on disk afterwards, for every later process).  A compile
        about to start is announced, whatever ``verbose``, on the ``logging`` logger
        ``"fastbp"`` (level WARNING: on stderr unless the application configured logging),
        "fastbp: compiling the training kernels for float32 (first use; ...)";
        ``logging.getLogger("fastbp").setLevel(logging.ERROR)`` silences it.

        Interrupted (Ctrl-C: ``KeyboardInterrupt``, raised between two batches, or compiled
        chunks) or stopped by a non-finite batch, the model is one that trained the batches it
        applied, its counts and shuffle generator included.  An epoch stopped part-way is finished first by the
        next ``fit`` over data of the same shape (from its next batch, in its order) and counts
        as one of that fit's ``epochs``.
        """
        check_fit_options(shuffle, on_nonfinite, lr_schedule, early_stopping, verbose)
        self._check_optimizer()
        X, T = self._check_data(X, y)
        check_fit_counts(epochs, batch_size)
        X, T, val = split_validation(X, T, validation_data, validation_split, self.sizes, self.loss, self.dtype)
        monitor = early_stopping_monitor(early_stopping, val is not None, self.is_classifier)
        stopper = None if early_stopping is None else EarlyStopper(early_stopping, monitor)
        batch_size = int(min(batch_size, X.shape[0]))
        log = EpochLog(self, epochs, X.shape[0], batch_size, on_nonfinite, lr_schedule is not None, val, stopper,
                       verbose)
        # Ctrl-C stops fit only where the model is whole (HeldInterrupts), with the lock released
        with HeldInterrupts() as interrupts, self._exclusive(writes_in_chunks=True):
            # may fail (MemoryError): nothing has changed yet; loads or compiles the kernels
            # first, so that no epoch's time (samples/s) or progress display includes it
            self._prepare_training(X, T, batch_size)
            self._fit_epochs(X, T, batch_size, shuffle, lr_schedule, log, interrupts)
        return log.history

    def _fit_epochs(self, X, T, batch_size, shuffle, lr_schedule, log, interrupts):
        """``fit``'s loop over checked arguments: ``log.epochs`` epochs over (X, T), recorded
        by ``log``, then (early stopping) back to the best epoch's parameters.

        An epoch an earlier fit stopped part-way (Ctrl-C, a non-finite batch) is this fit's
        first and counts as one of its ``epochs``: it goes on at its next batch, in its order
        and with its rates, so a stopped fit continued ends where an unstopped one would (over
        data of another shape it is closed instead: ``training.begin_chunk``).
        """
        n, epochs = X.shape[0], log.epochs
        # Epochs run in chunks, one compiled call each; the chunk's permutations are drawn
        # first, in order, from the model's generator (identically in both implementations).
        # Anything to do between epochs (validation, early stopping, progress) makes the
        # chunks one epoch long.
        chunk = 1 if log.per_epoch or not self._epochs_per_call else max(1, _EPOCH_CHUNK_SAMPLES // n)
        while log.done < epochs and not log.history.stopped:
            count = min(chunk, int(epochs) - log.done)
            # the rates first: a schedule that fails is refused before anything moves
            rates = epoch_rates(lr_schedule, self, n, batch_size, shuffle, count, log.n_batches)
            with self._access.writing():  # readers see the model between chunks, never inside one
                begin_chunk(self, n, batch_size, shuffle)
                first_epoch, drawn_from = self._epoch, self._rng.bit_generator.state if shuffle else None
                try:
                    perms = epoch_orders(self._rng, count, n, shuffle)
                    start = time.perf_counter()
                    with progress_bar(self, log.verbose, log.done + 1, epochs, log.n_batches, batch_size):
                        losses, skipped, status, layer, batch = self._run_epochs(X, T, perms, batch_size, log.skip,
                                                                                 rates, interrupts)
                    log.record(losses, skipped, rates, time.perf_counter() - start)
                finally:  # however the chunk ended: the generator at the first unfinished epoch
                    rewind_generator(self._rng, drawn_from, count, self._epoch - first_epoch, n, shuffle)
            if len(losses) < count:  # stopped by a non-finite batch
                log.nonfinite(status, layer, batch)  # raises, or stops training
            interrupts.deliver()
        if log.stopper is not None:  # not reached when a non-finite batch raised
            with self._access.writing():
                log.stopper.restore_best(self._params_ext)

    def _accuracy(self, P, T):
        """Classifiers' accuracy of outputs ``P`` against targets ``T``: the share of rows whose
        largest output is the target's (cross-entropy) or of outputs on the target's side of
        0.5 (binary cross-entropy)."""
        if self.loss == "cross_entropy":
            return self._accuracy_from_count(int(np.count_nonzero(P.argmax(axis=1) == T.argmax(axis=1))), T)
        if self.loss == "binary_cross_entropy":
            return self._accuracy_from_count(int(np.count_nonzero((P > 0.5) == (T > 0.5))), T)
        return {}

    def _accuracy_from_count(self, correct, T):
        """``_accuracy`` from its count of correct rows (cross-entropy) or outputs (binary
        cross-entropy) against targets ``T`` (as the fast model's kernel counts them)."""
        if not self.is_classifier:
            return {}
        return {"accuracy": correct / (T.size if self.loss == "binary_cross_entropy" else T.shape[0])}

    def _outputs(self, X, caller):
        """The network's outputs for a checked X; warns (``RuntimeWarning``, at the line that
        called ``caller``) when some are NaN or inf."""
        with self._access.reading():
            P, bad = self._forward(X)
        if bad:
            warnings.warn(f"{caller}: {bad} outputs are NaN or inf: the inputs' "
                          f"scale overflows {self.dtype.name} inside the network; scale the inputs",
                          RuntimeWarning, stacklevel=3)
        return P

    def predict(self, X: ArrayLike) -> NDArray[np.floating]:
        """Network output: probabilities for softmax / sigmoid outputs, values for linear.

        Warns (``RuntimeWarning``) when an output is NaN or inf: finite inputs whose scale
        overflows the model's dtype inside the network (scale the inputs).
        """
        return self._outputs(self._check_X(X), "predict")

    @property
    def predict_proba(self) -> Callable[[ArrayLike], NDArray[np.floating]]:
        """``predict`` under scikit-learn's name, for classifiers (``is_classifier``): the
        softmax's class probabilities ``(n, k)``, or each sigmoid output's probability of 1
        (one column for a single sigmoid, where scikit-learn's binary classifiers give two;
        ``fastbp.sklearn.MLPClassifier`` gives those).

        A model with loss ``mse`` has no ``predict_proba`` (``AttributeError``, so
        ``hasattr(model, "predict_proba")`` is False, as for scikit-learn's regressors): its
        outputs are values, not probabilities, whatever its output activation.
        """
        if not self.is_classifier:
            raise AttributeError(f"a model with loss {self.loss!r} has no predict_proba: its outputs are regression "
                                 "values, not class probabilities (as scikit-learn's regressors have none); "
                                 "predict gives the outputs")
        return self.predict

    def predict_classes(self, X: ArrayLike) -> NDArray[np.int64]:
        """Class labels: argmax for softmax, ``p > 0.5`` for sigmoid (per output)."""
        if not self.is_classifier:
            raise ValueError(f"predict_classes needs a classification loss; this model uses {self.loss!r}")
        P = self.predict(X)
        if self.loss == "cross_entropy":
            return P.argmax(axis=1)
        labels = (P > 0.5).astype(np.int64)
        return labels[:, 0] if labels.shape[1] == 1 else labels

    def evaluate(self, X: ArrayLike, y: ArrayLike) -> dict[str, float]:
        """``{"loss": mean loss (with the L2 term), "accuracy": ...}`` (accuracy for classifiers)."""
        X, T = self._check_data(X, y)
        with self._access.reading():
            loss, metrics = self._evaluate(X, T)
        return {"loss": float(loss), **metrics}

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """scikit-learn's score of the model on (X, y), with ``y`` as ``fit`` takes it:

        * classifiers (``is_classifier``): the accuracy, the share of samples whose predicted
          class is the label (``accuracy_score``). For sigmoid outputs a sample counts only
          when every output is on its target's side of 0.5 (subset accuracy: ``evaluate``'s
          accuracy counts outputs instead); one-hot or probability rows name the class of
          their largest entry;
        * loss ``mse``: R², ``1 - SSE / SST`` per output, averaged uniformly over the outputs
          (``r2_score``'s defaults: a constant target scores 1.0 when predicted exactly, else
          0.0; fewer than two samples give nan with a ``RuntimeWarning``).

        Computed in float64 from the targets as given. Warns as ``predict`` does when an
        output is NaN or inf.
        """
        X = self._check_X(X)
        # the targets in float64, not the model's dtype: scikit-learn scores the targets as given
        T = check_y(y, X.shape[0], self.sizes[-1], self.loss, np.float64)
        P = self._outputs(X, "score")
        if self.is_classifier:
            return metrics.accuracy(P, T, self.loss)
        return metrics.r2(P, T, stacklevel=2)

    def loss_and_grads(self, X: ArrayLike, y: ArrayLike) -> tuple[float, list[tuple[NDArray[np.floating],
                                                                                  NDArray[np.floating]]]]:
        """Loss on (X, y) and its gradient, without updating: ``(loss, [(dW, db), ...])``."""
        X, T = self._check_data(X, y)
        with self._exclusive():
            loss = self._loss_and_grads(X, T)
        return float(loss), [(dW.copy(), db.copy()) for dW, db in zip(self._gW, self._gb)]

    def train_step(self, X: ArrayLike, y: ArrayLike) -> float:
        """One forward + backward + optimizer update on this batch; returns its loss.

        Raises ``FloatingPointError`` (and updates nothing) if the loss or a gradient is
        NaN or inf, or if the update would make a parameter or the optimizer's state NaN or inf.
        """
        self._check_optimizer()
        X, T = self._check_data(X, y)
        with self._exclusive():
            loss, status, layer = self._train_step(X, T)
        if status != STATUS_OK:
            raise FloatingPointError(self._nonfinite_message(status, layer, f"step {self._step + 1}"))
        return float(loss)

    def get_weights(self) -> list[tuple[NDArray[np.floating], NDArray[np.floating]]]:
        """Copies of the weights and biases: a list of ``(W, b)``, W shaped ``(n_in, n_out)``.
        (Batch norm's scale, shift and running averages too: ``get_state``.)"""
        with self._access.reading():
            return [(W.copy(), b.copy()) for W, b in zip(self._W, self._b)]

    def set_weights(self, weights: Iterable[tuple[ArrayLike, ArrayLike]]) -> None:
        """Replace the parameters with a list of ``(W, b)`` of the right shapes (checked first)."""
        checked = check_weights(weights, [(W.shape, b.shape) for W, b in zip(self._W, self._b)], self.dtype)
        with self._exclusive():
            for l, (W, b) in enumerate(checked):
                self._W[l][...] = W
                self._b[l][...] = b

    def _state_views(self):
        """The model's state as views into the parameter buffer, by name (``layout.state_views``)."""
        return state_views(self._layers, self._params_ext)

    def get_state(self) -> dict[str, NDArray[np.floating]]:
        """Copies of everything that makes the model's predictions: a dict of named arrays,
        layer by layer (0-based, as in ``get_weights``):

        * ``"W0"``, ``"b0"``, ``"W1"``, ...: weights ``(n_in, n_out)`` and biases ``(n_out,)``;
        * for a batch-normalised layer ``l`` also ``"gamma{l}"``, ``"beta{l}"`` (its trained
          scale and shift) and ``"running_mean{l}"``, ``"running_var{l}"`` (the running
          averages inference uses, not trained).  Its bias ``b{l}`` is stored but unused.

        ``set_state`` puts such a dict into a model of the same configuration, which then
        predicts exactly what this one does.  Not included: the optimizer's state, the step
        counts and the random generator (``save`` / ``load`` carry those, to resume training).
        """
        with self._access.reading():
            return {name: view.copy() for name, view in self._state_views().items()}

    def set_state(self, state: Mapping[str, ArrayLike]) -> None:
        """Replace the model's state with ``state``, a dict like ``get_state``'s (arrays or
        array-likes, converted to the model's dtype).

        All or nothing: the names must be exactly this model's, every array of its shape and
        finite, every running variance >= 0; otherwise ``ValueError`` (``TypeError`` for what
        is not a dict or not numeric) and nothing changes.  The optimizer's state and counts
        are left as they are.
        """
        views = self._state_views()
        checked = check_state(state, {name: view.shape for name, view in views.items()}, self.dtype)
        with self._exclusive():
            for name, value in checked.items():
                views[name][...] = value

    # -------------------------------------------------------- save and load
    def get_config(self) -> dict[str, Any]:
        """The model's configuration as a JSON-serialisable dict (what ``save`` records).

        The constructor's arguments as checked and normalised: ``sizes``; ``activation`` (one
        name per hidden layer), ``output`` (resolved: the loss's own when not given), ``loss``
        (aliases resolved), ``init``, ``dtype`` (a name), ``seed``, ``l2``, ``clip_norm``,
        ``leaky_slope``, ``dropout`` and ``batch_norm`` (one value per hidden layer); the
        optimizer as ``optimizer`` (its class name) and ``optimizer_config`` (its arguments).
        The weights and training state are not part of it (``get_state``, ``save``).
        """
        return {
            "sizes": self.sizes, "activation": self.activations, "output": self.output,
            "loss": self.loss, "init": self.init, "dtype": self.dtype.name, "seed": self.seed,
            "l2": self.l2, "clip_norm": self.clip_norm, "leaky_slope": self.leaky_slope, "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "optimizer": type(self.optimizer).__name__, "optimizer_config": self.optimizer.get_config(),
        }

    def save(self, path: PathLike) -> None:
        """Write the model (config, weights, optimizer state and step) to an ``.npz`` file.

        The file is written to a temporary file in the same directory, flushed, fsynced
        and renamed over ``path``, so an interrupted save never destroys an older file.
        Its permissions are those ``np.savez`` would give it (``0o666 & ~umask`` for a new
        file; a file replaced keeps its permission bits).  A symbolic link is followed (the
        link stays, the file it leads to is replaced); a read-only file is not replaced
        (``PermissionError``, also for root).
        Each array carries a CRC32 checksum; nothing is pickled (``fastbp.fileformat``).
        """
        with self._access.reading():  # a consistent copy; written to disk outside the lock
            arrays = fileformat.snapshot(self)
        fileformat.write(path, arrays)

    def __reduce__(self):
        """Pickling (``pickle``, ``copy.deepcopy``, joblib, multiprocessing) stores what ``save``
        writes — weights, optimizer state, counts, the generator's state — as the bytes of a
        model file, and rebuilds the model as ``load`` does; nothing of its locks, workspaces
        or compiled code."""
        with self._access.reading():
            arrays = fileformat.snapshot(self)
        return fileformat.from_bytes, (type(self), fileformat.to_bytes(arrays))

    @classmethod
    def load(cls: type[_Model], path: PathLike) -> _Model:
        """Rebuild a model written by ``save`` (by either implementation).

        A damaged or foreign file, or one holding what no model holds (what ``set_state``
        refuses, a negative second moment of the optimizer, impossible counts), is refused
        with a ``ValueError`` naming it, before anything large is read or allocated."""
        return fileformat.load(cls, path)

    # ------------------------------------------------------------ describing the model
    def _public_name(self, cls):
        """``cls`` as a user reaches it: ``fastbp.MLP`` (defined in ``fastbp.model``),
        ``fastbp.reference.MLP``, ``fastbp.Adam`` (``fastbp.optimizers``), or a user's own
        ``module.Class``."""
        module = cls.__module__
        if module in _PUBLIC_MODULES:
            module = "fastbp.reference" if type(self).__module__ == "fastbp.reference" else "fastbp"
        return f"{module}.{cls.__qualname__}"

    def _arguments(self):
        """The constructor arguments that differ from their defaults, as ``(name, value)``,
        in the signature's order: the values that rebuild this configuration."""
        per_layer = {"activation": self.activations, "dropout": self.dropout, "batch_norm": self.batch_norm}
        values = {"output": self.output, "loss": self.loss, "optimizer": self.optimizer, "init": self.init,
                  "dtype": self.dtype.name, "seed": self.seed, "l2": self.l2, "clip_norm": self.clip_norm,
                  "leaky_slope": self.leaky_slope}
        for name, values_per_layer in per_layer.items():  # one value when all layers share it
            values[name] = values_per_layer[0] if len(set(values_per_layer)) == 1 else list(values_per_layer)
        defaults = {"output": DEFAULT_OUTPUTS[self.loss], "optimizer": get_optimizer(_DEFAULTS["optimizer"])}
        changed = []
        for name in _DEFAULTS:
            if name == "sizes" or name not in values:
                continue
            default = defaults.get(name, _DEFAULTS[name])
            if name in per_layer and not per_layer[name]:  # no hidden layer: nothing to say
                continue
            if values[name] != default:
                changed.append((name, values[name]))
        return changed

    def __repr__(self) -> str:
        """``fastbp.MLP([sizes], ...)`` with every argument that differs from its default;
        ``eval`` of it (with ``fastbp`` imported) builds a model of the same configuration
        (not its trained weights: see ``get_state`` / ``save``)."""
        args = [repr(self.sizes)]
        for name, value in self._arguments():
            if name == "optimizer":
                settings = ", ".join(f"{k}={v!r}" for k, v in value.get_config().items())
                args.append(f"optimizer={self._public_name(type(value))}({settings})")
            else:
                args.append(f"{name}={value!r}")
        return f"{self._public_name(type(self))}({', '.join(args)})"

    def summary(self, file: TextIO | None = None) -> str:
        """Print a table of the model to ``file`` (default ``sys.stdout``) and return it as a
        string: per layer its weight shape ``(n_in, n_out)``, activation, parameter count,
        batch norm and dropout rate; the totals (trained parameters, and batch norm's running
        statistics, which are not trained); the dtype, loss, optimizer with its settings, and
        ``l2`` / ``clip_norm`` when set.

        A layer's parameters are its entries in the trained parameter buffer: ``W`` and ``b``,
        and for a batch-normalised layer its scale and shift too (its bias is stored, and
        held at 0: batch norm's shift replaces it).
        """
        rows = [("layer", "shape", "activation", "parameters", "batch norm", "dropout")]
        for l, lay in enumerate(self._layers):
            hidden = l < self.n_layers - 1
            rows.append((str(l), f"({int(lay['n_in'])}, {int(lay['n_out'])})",
                         self.activations[l] if hidden else self.output, f"{int(lay['end'] - lay['w']):,}",
                         "yes" if hidden and self.batch_norm[l] else "-",
                         f"{self.dropout[l]:g}" if hidden and self.dropout[l] else "-"))
        n_running = self._params_ext.size - self.n_params
        rows.append(("total", "", "", f"{self.n_params:,}", f"+ {n_running:,} running statistics (not trained)"
                     if n_running else "", ""))
        widths = [max(len(row[i]) for row in rows[:-1] if row) for i in range(len(rows[0]))]
        widths[3] = max(widths[3], len(rows[-1][3]))

        def line(row):
            cells = [cell.rjust(width) if i == 3 else cell.ljust(width) for i, (cell, width) in
                     enumerate(zip(row, widths))]
            return "  ".join(cells).rstrip()

        table = [f"{self._public_name(type(self))}: {' -> '.join(map(str, self.sizes))}", line(rows[0]),
                 "  ".join("-" * w for w in widths)]
        table += [line(row) for row in rows[1:-1]]
        table += ["  ".join("-" * w for w in widths), line(rows[-1])]
        settings = f"dtype {self.dtype.name}, loss {self.loss}, optimizer {self.optimizer!r}"
        extras = [f"l2 {self.l2:g}" if self.l2 else "", f"clip_norm {self.clip_norm:g}" if self.clip_norm else "",
                  f"seed {self.seed}" if self.seed is not None else ""]
        table.append(", ".join([settings] + [e for e in extras if e]))
        text = "\n".join(table)
        print(text, file=sys.stdout if file is None else file)
        return text


# The constructor's defaults, by argument name (for ``__repr__``).
_DEFAULTS = {name: p.default for name, p in inspect.signature(BaseMLP.__init__).parameters.items()
             if name != "self"}

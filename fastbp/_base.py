"""What ``fastbp.MLP`` and ``fastbp.reference.MLP`` share: configuration, validation,
initialisation, parameter storage, the training loop's bookkeeping, save and load.

The two implementations differ only in how they compute (compiled kernels or plain
NumPy); everything a user can get wrong is checked here, once, before any state changes.

Storage (identical in both): the flat buffers of ``fastbp.layout``, with per-layer views
``self._W[l]`` and ``self._b[l]``.
"""

import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
import warnings
import zlib

import numpy as np

from . import schedules
from .training import EarlyStopping, History, _Progress
from .layout import allocate_state, carve, init_weights, layer_layout  # noqa: F401  (carve: model.py)
from .optimizers import get_optimizer, optimizer_from_config

# ---------------------------------------------------------------------------
# Name tables -> integer codes (the codes are what the kernels understand).
# ---------------------------------------------------------------------------
LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = 0, 1, 2, 3, 4, 5
HIDDEN_ACTIVATIONS = {"linear": LINEAR, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "leaky_relu": LEAKY_RELU}
OUTPUT_ACTIVATIONS = {"linear": LINEAR, "sigmoid": SIGMOID, "softmax": SOFTMAX}

MSE, BINARY_CROSS_ENTROPY, CROSS_ENTROPY = 0, 1, 2
LOSSES = {"mse": MSE, "binary_cross_entropy": BINARY_CROSS_ENTROPY, "cross_entropy": CROSS_ENTROPY}
LOSS_ALIASES = {
    "mean_squared_error": "mse",
    "bce": "binary_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
    "ce": "cross_entropy",
    "categorical_cross_entropy": "cross_entropy",
    "categorical_crossentropy": "cross_entropy",
}
# Which output activation each loss may be paired with.
LOSS_OUTPUTS = {MSE: ("linear", "sigmoid", "softmax"), BINARY_CROSS_ENTROPY: ("sigmoid",), CROSS_ENTROPY: ("softmax",)}

INITIALISERS = ("he", "xavier", "normal")
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # batch norm, PyTorch's defaults
NONFINITE_POLICIES = ("raise", "stop", "skip_batch")
# fit hands the compiled code up to this many samples' worth of epochs per call.
_EPOCH_CHUNK_SAMPLES = 1 << 16
# What a training step reports (kernels and reference alike).
STATUS_OK, STATUS_LOSS, STATUS_GRAD = 0, 1, 2
DTYPES = {"float32": np.float32, "float64": np.float64}

FORMAT_NAME = "fastbp-mlp"
FORMAT_VERSION = 1


def _lookup(kind, name, table):
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a string, got {type(name).__name__}")
    key = name.lower()
    if key not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {sorted(table)}")
    return key


def _all_finite(a, block=1 << 20):
    """``np.isfinite(a).all()`` in blocks of rows, so a memory-mapped dataset larger than
    RAM is checked without a temporary of its size."""
    if a.size <= block or a.ndim < 2:
        return bool(np.isfinite(a).all())
    rows = max(1, block // max(1, a.shape[1]))
    return all(np.isfinite(a[i:i + rows]).all() for i in range(0, a.shape[0], rows))


class BaseMLP:
    """A fully connected network ``Z = A @ W + b`` with a fused output activation + loss.

    Parameters
    ----------
    sizes : list of int
        Layer widths, input first: ``[n_features, hidden..., n_outputs]`` (at least two).
    activation : str or list of str
        Hidden activation(s): ``linear``, ``sigmoid``, ``tanh``, ``relu``, ``leaky_relu``;
        one name for all hidden layers or one per hidden layer.
    output : str
        Output activation: ``linear``, ``sigmoid`` or ``softmax``.
    loss : str
        ``mse`` (mean over all elements), ``binary_cross_entropy`` (needs ``sigmoid``
        output) or ``cross_entropy`` (needs ``softmax`` output; targets are integer labels
        of shape (n,) or one-hot / probability rows of shape (n, k)).  PyTorch's
        definitions, mean reduction; the cross-entropies are computed from the logits.
    optimizer : Optimizer or str
        ``fastbp.SGD/RMSprop/Adam/AdamW/AdaGrad`` instance, or a name for its defaults.
    init : str
        ``he``, ``xavier`` or ``normal`` (std 0.01).  Biases start at zero.
    dtype : str
        ``float32`` or ``float64``; inputs are converted once at the API boundary.
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
    """

    def __init__(self, sizes, activation="relu", output="softmax", loss="cross_entropy",
                 optimizer="adam", init="he", dtype="float32", seed=None, l2=0.0,
                 clip_norm=None, leaky_slope=0.01, dropout=0.0, batch_norm=False):
        # ---- validate everything before building anything ----
        try:
            sizes = [s for s in sizes]
        except TypeError:
            raise TypeError("sizes must be a list of layer widths, e.g. [4, 16, 3]") from None
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output width, got {sizes!r}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
                raise ValueError(f"layer widths must be positive integers, got {sizes!r}")
        sizes = [int(s) for s in sizes]
        n_hidden = len(sizes) - 2
        if isinstance(activation, str):
            activations = [activation] * n_hidden
        else:
            try:
                activations = list(activation)
            except TypeError:
                raise TypeError(f"activation must be a name or a list of names, got {type(activation).__name__}") \
                    from None
            if len(activations) != n_hidden:
                raise ValueError(f"activation lists {len(activations)} names for {n_hidden} hidden layers")
        activations = [_lookup("activation", a, HIDDEN_ACTIVATIONS) for a in activations]
        output = _lookup("output activation", output, OUTPUT_ACTIVATIONS)
        if isinstance(loss, str):
            loss = LOSS_ALIASES.get(loss.lower(), loss)
        loss = _lookup("loss", loss, LOSSES)
        if output not in LOSS_OUTPUTS[LOSSES[loss]]:
            raise ValueError(
                f"loss {loss!r} needs output activation {' or '.join(LOSS_OUTPUTS[LOSSES[loss]])}, got {output!r}"
            )
        if output == "softmax" and sizes[-1] < 2 and loss == "cross_entropy":
            raise ValueError("softmax + cross_entropy needs at least 2 output units; "
                             "for two classes with one unit use output='sigmoid', loss='binary_cross_entropy'")
        optimizer = get_optimizer(optimizer)
        init = _lookup("init", init, {k: k for k in INITIALISERS})
        if isinstance(dtype, type) or isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype).name
        dtype = _lookup("dtype", dtype, DTYPES)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        l2 = self._check_float("l2", l2, allow_zero=True)
        if clip_norm is not None:
            clip_norm = self._check_float("clip_norm", clip_norm, allow_zero=False)
        leaky_slope = self._check_float("leaky_slope", leaky_slope, allow_zero=True)
        rates = [dropout] * n_hidden if not isinstance(dropout, (list, tuple, np.ndarray)) else list(dropout)
        if len(rates) != n_hidden:
            raise ValueError(f"dropout lists {len(rates)} rates for {n_hidden} hidden layers")
        rates = [self._check_float("dropout", r, allow_zero=True) for r in rates]
        if any(r >= 1 for r in rates):
            raise ValueError(f"dropout rates must be in [0, 1), got {rates}")
        bn = [batch_norm] * n_hidden if not isinstance(batch_norm, (list, tuple)) else list(batch_norm)
        if len(bn) != n_hidden or not all(isinstance(v, (bool, np.bool_)) for v in bn):
            raise ValueError(f"batch_norm must be True/False or one bool per hidden layer ({n_hidden}), "
                             f"got {batch_norm!r}")

        self.sizes = sizes
        self.activations = activations
        self.output = output
        self.loss = loss
        self.optimizer = optimizer
        self.init = init
        self.dtype = np.dtype(DTYPES[dtype])
        self.seed = None if seed is None else int(seed)
        self.l2 = l2
        self.clip_norm = clip_norm
        self.leaky_slope = leaky_slope
        self.dropout = rates
        self.batch_norm = [bool(v) for v in bn]
        self._rng = np.random.default_rng(self.seed)
        self._training = threading.Lock()  # held while any call changes the model

        (self._w_off, self._b_off, self._g_off, self._end, self.n_params,
         self._r_off, n_running) = layer_layout(sizes, self.batch_norm + [False])
        self._params_ext, self._grads, self._slots_buf = allocate_state(
            self.n_params, n_running, optimizer.n_slots, self.dtype)
        self._params = self._params_ext[:self.n_params]  # the trainable parameters (then BN's running stats)
        self._slots = self._slots_buf[:, :self.n_params]
        self._step = 0  # optimizer updates applied
        self._epoch = 0  # epochs completed (the count epoch-unit schedules see)
        self._batches = 0  # mini-batches run (the count step-unit schedules see)
        self._W, self._b = self._views(self._params)
        self._gW, self._gb = self._views(self._grads)
        # batch norm: scale / shift (trained) and running mean / variance, None elsewhere
        self._gamma, self._beta = self._bn_views(self._params_ext, self._g_off)
        self._ggamma, self._gbeta = self._bn_views(self._grads, self._g_off)
        self._run_mean, self._run_var = self._bn_views(self._params_ext, self._r_off)
        for l, bn in enumerate(self.batch_norm):
            if bn:
                self._gamma[l][...] = 1
                self._run_var[l][...] = 1
        for (W, b), (W0, b0) in zip(zip(self._W, self._b), init_weights(self._rng, sizes, init, self.dtype)):
            W[...] = W0
            b[...] = b0
        # the key of the dropout masks' counter-based stream (drawn only when needed, so the
        # shuffle order of models without dropout does not depend on it)
        self._dropout_key = int(self._rng.integers(0, 2**62)) if any(rates) else 0
        self._setup()

    # ------------------------------------------------------------------ hooks
    def _setup(self):
        """Subclass hook: called once the buffers exist."""

    def _forward(self, X):
        """Network output for a validated X."""
        raise NotImplementedError

    def _evaluate(self, X, T):
        """(mean loss including the L2 term, output) for validated X, T."""
        raise NotImplementedError

    def _loss_and_grads(self, X, T):
        """Loss of the batch; writes the gradient into ``self._grads``."""
        raise NotImplementedError

    def _train_batch(self, X, T):
        """One forward + backward + clipping + optimizer update: ``(loss, status, layer)``.

        If the loss or a gradient is not finite nothing is updated and ``status`` is
        ``STATUS_LOSS`` / ``STATUS_GRAD``, ``layer`` the (first, from the output) bad layer.
        """
        raise NotImplementedError

    def _run_epochs(self, X, T, perms, batch_size, skip_nonfinite, rates):
        """One epoch per row of ``perms`` (each over ``X[perm]`` in mini-batches), with the
        learning rates of the same row of ``rates`` (rows may be empty: the optimizer's).

        Returns ``(losses, skipped, status, layer, batch)``: per completed epoch its
        sample-weighted mean loss over the applied batches and its count of skipped
        batches.  A non-finite batch is not applied; it ends training unless
        ``skip_nonfinite``, and then ``status, layer, batch`` say where (in the epoch after
        the last completed one).
        """
        raise NotImplementedError

    def _nonfinite_message(self, status, layer, where):
        what = "loss" if status == STATUS_LOSS else f"gradient of layer {layer}"
        return (f"training diverged: the {what} is NaN or inf at {where}; that batch was not applied, so "
                "the weights are the last finite ones. Lower the learning rate, set clip_norm, or check "
                "the data's scale")

    # --------------------------------------------------------------- helpers
    @staticmethod
    def _check_float(name, value, allow_zero):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            need = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be a finite number {need}, got {value!r}")
        return value

    def _bn_views(self, flat, offsets):
        first, second = [], []
        for off, n in zip(offsets, self.sizes[1:]):
            first.append(flat[off:off + n] if off >= 0 else None)
            second.append(flat[off + n:off + 2 * n] if off >= 0 else None)
        return first, second

    def _views(self, flat):
        Ws, bs = [], []
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            Ws.append(flat[self._w_off[l]:self._w_off[l] + n_in * n_out].reshape(n_in, n_out))
            bs.append(flat[self._b_off[l]:self._b_off[l] + n_out])
        return Ws, bs

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    @property
    def is_classifier(self):
        return self.loss in ("cross_entropy", "binary_cross_entropy")

    def _as_float_array(self, a, what):
        if isinstance(a, np.ndarray) and a.dtype == self.dtype and a.flags.c_contiguous:
            arr = a
        else:
            try:
                arr = np.asarray(a)
            except Exception as exc:  # ragged lists and the like
                raise ValueError(f"{what} could not be read as an array: {exc}") from None
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{what} must be numeric (bool, int or float), got dtype {arr.dtype}")
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
        return arr

    def _check_X(self, X):
        X = self._as_float_array(X, "X")
        if X.ndim != 2:
            hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}{hint}")
        if X.shape[0] == 0:
            raise ValueError("X is empty (0 samples)")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"X has {X.shape[1]} features but the model expects {self.sizes[0]}")
        if not _all_finite(X):
            raise ValueError("X contains NaN or inf; clean or impute the data first")
        return X

    def _check_y(self, y, n):
        """Targets as a dense float matrix T of shape (n, k) in the model's dtype."""
        k = self.sizes[-1]
        try:
            y_arr = np.asarray(y)
        except Exception as exc:
            raise ValueError(f"y could not be read as an array: {exc}") from None
        if y_arr.dtype.kind not in "biuf":
            raise TypeError(f"y must be numeric (bool, int or float), got dtype {y_arr.dtype}")
        if y_arr.shape[:1] != (n,):
            raise ValueError(f"X has {n} samples but y has {y_arr.shape[0] if y_arr.ndim else 0}")
        if not np.isfinite(y_arr).all():
            raise ValueError("y contains NaN or inf")
        if self.loss == "cross_entropy" and y_arr.ndim == 1:
            if y_arr.dtype.kind == "f" and not np.all(y_arr == np.round(y_arr)):
                raise ValueError("cross_entropy labels of shape (n,) must be integer class indices")
            labels = y_arr.astype(np.int64)
            if labels.min() < 0 or labels.max() >= k:
                bad = labels[(labels < 0) | (labels >= k)][0]
                raise ValueError(f"class label {bad} is outside [0, {k}) for a model with {k} outputs")
            T = np.zeros((n, k), dtype=self.dtype)
            T[np.arange(n), labels] = 1
            return T
        if y_arr.ndim == 1 and k == 1:
            y_arr = y_arr.reshape(n, 1)
        if y_arr.ndim != 2 or y_arr.shape[1] != k:
            raise ValueError(f"y must have shape ({n}, {k}){' or (n,)' if k == 1 else ''} for a model "
                             f"with {k} outputs, got {y_arr.shape}")
        T = np.ascontiguousarray(y_arr, dtype=self.dtype)
        if self.is_classifier and (T.min() < 0 or T.max() > 1):
            raise ValueError(f"{self.loss} targets must lie in [0, 1]")
        if self.loss == "cross_entropy" and not np.allclose(T.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError("cross_entropy targets of shape (n, k) must be one-hot or probability rows summing to 1")
        return T

    def _check_data(self, X, y):
        X = self._check_X(X)
        return X, self._check_y(y, X.shape[0])

    # ----------------------------------------------------------- public API
    @contextlib.contextmanager
    def _exclusive(self):
        """Refuse a second thread that tries to change the model while another one does."""
        if not self._training.acquire(blocking=False):
            raise RuntimeError(
                "this model is being trained or modified in another thread; train a model from one thread "
                "at a time (predict and evaluate may be called from several threads)"
            )
        try:
            yield
        finally:
            self._training.release()

    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, on_nonfinite="raise", lr_schedule=None,
            validation_data=None, validation_split=0.0, early_stopping=None, verbose=0):
        """Train on (X, y) for ``epochs`` passes in mini-batches of ``batch_size``.

        Each epoch draws a permutation from the model's seeded generator (when
        ``shuffle``) and runs the whole pass; the last batch may be smaller.
        Returns a :class:`History`: the list of per-epoch mean training losses, with
        ``history.history`` holding every recorded metric per epoch.

        lr_schedule
            A schedule from :mod:`fastbp.schedules` (or any callable of the epoch / step
            count): the optimizer's learning rate for each epoch or mini-batch.
        validation_data, validation_split
            ``(X_val, y_val)``, or the fraction of the data (its last rows, before any
            shuffling) held out; ``val_loss`` (and ``val_accuracy``) are recorded per epoch.
        early_stopping
            An :class:`EarlyStopping`: stop when the monitored metric has not improved for
            ``patience`` epochs, and (``restore_best``) go back to the best epoch's weights.
        verbose
            0 silent; 1 one line per epoch with the loss, validation metrics and samples/s.
        on_nonfinite
            A batch whose loss or gradient is NaN or inf is never applied (checked inside
            the compiled epoch). ``"raise"`` (default): ``FloatingPointError`` naming the
            epoch, batch and layer; ``"stop"``: a ``RuntimeWarning`` and training stops
            (``history.stopped`` says why); ``"skip_batch"``: the batch is skipped and
            training goes on (``history.history["skipped_batches"]`` counts them).
        """
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        if on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {on_nonfinite!r}")
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError("lr_schedule must be a schedule (a callable of the epoch or step count)")
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError("early_stopping must be a fastbp.EarlyStopping instance")
        if verbose not in (0, 1, False, True):
            raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
        X, T = self._check_data(X, y)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        X, T, val = self._validation_split(X, T, validation_data, validation_split)
        monitor = None
        if early_stopping is not None:
            monitor = early_stopping.monitor or ("val_loss" if val is not None else "loss")
            if monitor.startswith("val_") and val is None:
                raise ValueError(f"early_stopping monitors {monitor!r} but no validation data was given")
        n = X.shape[0]
        batch_size = int(min(batch_size, n))
        n_batches = -(-n // batch_size)
        history = History()
        skip = on_nonfinite == "skip_batch"
        # Epochs run in chunks, one compiled call each; the chunk's permutations are drawn
        # first, in order, from the model's generator (identically in both implementations).
        # Anything to do between epochs (validation, early stopping, progress) makes the
        # chunks one epoch long.
        per_epoch = val is not None or early_stopping is not None or verbose
        chunk = 1 if per_epoch else max(1, _EPOCH_CHUNK_SAMPLES // n)
        best, best_params, waited = math.inf, None, 0
        done = 0
        with self._exclusive():
            while done < epochs:
                count = min(chunk, int(epochs) - done)
                perms = np.empty((count, n), dtype=np.int64)
                perms[:] = np.arange(n)
                if shuffle:  # in place: the same draws as rng.permutation(n), without its allocations
                    for e in range(count):
                        self._rng.shuffle(perms[e])
                if lr_schedule is None:
                    rates = np.empty((count, 0))
                else:
                    rates = schedules.rates_for_epochs(lr_schedule, self._epoch, self._batches, count, n_batches)
                start = time.perf_counter()
                progress = None
                if verbose:
                    progress = _Progress(self, done + 1, epochs, n_batches, batch_size, sys.stdout)
                    progress.start()
                try:
                    losses, skipped, status, layer, batch = self._run_epochs(X, T, perms, batch_size, skip, rates)
                finally:
                    if progress is not None:
                        progress.finished.set()
                        progress.join()
                seconds = time.perf_counter() - start
                completed = len(losses)
                if not (per_epoch or skip or lr_schedule is not None):  # only the losses to record
                    history._record_losses(losses)
                    done += len(losses)
                    self._epoch += len(losses)
                    self._batches += n_batches * len(losses)
                    losses = losses[:0]  # nothing left for the per-epoch loop
                for i, (loss, n_skipped) in enumerate(zip(losses, skipped)):
                    done += 1
                    self._epoch += 1
                    self._batches += n_batches
                    metrics = {"loss": float(loss)}
                    if skip:
                        metrics["skipped_batches"] = int(n_skipped)
                        if n_skipped:
                            warnings.warn(f"epoch {done}: skipped {n_skipped} batch(es) with a NaN or inf loss "
                                          "or gradient", RuntimeWarning, stacklevel=2)
                    if lr_schedule is not None:
                        metrics["lr"] = float(rates[i, -1])  # the epoch's last rate
                    if val is not None:
                        val_loss, P = self._evaluate(*val)
                        metrics["val_loss"] = float(val_loss)
                        metrics.update({"val_" + k: v for k, v in self._accuracy(P, val[1]).items()})
                    history._record(**metrics)
                    if verbose:
                        rate = n * len(losses) / max(seconds, 1e-9)
                        shown = " - ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                        text = f"epoch {done}/{epochs} - {shown} - {rate:,.0f} samples/s"
                        print("\r" + text.ljust(72), flush=True)
                    if early_stopping is not None:
                        value = metrics[monitor]
                        if value < best - early_stopping.min_delta:
                            best, waited = value, 0
                            history.best_epoch = done
                            if early_stopping.restore_best:
                                best_params = self._params_ext.copy()  # with running averages
                        else:
                            waited += 1
                            if waited >= early_stopping.patience:
                                history.stopped = (f"early stopping: {monitor} did not improve by more than "
                                                   f"{early_stopping.min_delta} for {waited} epochs")
                                break
                if completed < count:  # stopped by a non-finite batch
                    message = self._nonfinite_message(status, layer, f"epoch {done + 1}, batch {batch + 1}")
                    if on_nonfinite == "raise":
                        raise FloatingPointError(message)
                    warnings.warn(message + "; training stopped", RuntimeWarning, stacklevel=2)
                    history.stopped = message
                    break
                if history.stopped:
                    break
            if best_params is not None:
                self._params_ext[...] = best_params
        return history

    def _validation_split(self, X, T, validation_data, validation_split):
        """Training data and the validation pair ``(X_val, T_val)`` (or None), checked."""
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
        if validation_data is not None and validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if validation_data is not None:
            try:
                X_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, y_val)") from None
            return X, T, self._check_data(X_val, y_val)
        if validation_split:
            n_val = int(round(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} of {X.shape[0]} samples leaves an empty "
                                 "training or validation set")
            return X[:-n_val], T[:-n_val], (X[-n_val:], T[-n_val:])
        return X, T, None

    def _accuracy(self, P, T):
        if self.loss == "cross_entropy":
            return {"accuracy": float(np.mean(P.argmax(axis=1) == T.argmax(axis=1)))}
        if self.loss == "binary_cross_entropy":
            return {"accuracy": float(np.mean((P > 0.5) == (T > 0.5)))}
        return {}

    def predict(self, X):
        """Network output: probabilities for softmax / sigmoid outputs, values for linear."""
        return self._forward(self._check_X(X))

    def predict_classes(self, X):
        """Class labels: argmax for softmax, ``p > 0.5`` for sigmoid (per output)."""
        if not self.is_classifier:
            raise ValueError(f"predict_classes needs a classification loss; this model uses {self.loss!r}")
        P = self.predict(X)
        if self.loss == "cross_entropy":
            return P.argmax(axis=1)
        labels = (P > 0.5).astype(np.int64)
        return labels[:, 0] if labels.shape[1] == 1 else labels

    def evaluate(self, X, y):
        """``{"loss": mean loss (with the L2 term), "accuracy": ...}`` (accuracy for classifiers)."""
        X, T = self._check_data(X, y)
        loss, P = self._evaluate(X, T)
        return {"loss": float(loss), **self._accuracy(P, T)}

    def loss_and_grads(self, X, y):
        """Loss on (X, y) and its gradient, without updating: ``(loss, [(dW, db), ...])``."""
        X, T = self._check_data(X, y)
        with self._exclusive():
            loss = self._loss_and_grads(X, T)
        return float(loss), [(dW.copy(), db.copy()) for dW, db in zip(self._gW, self._gb)]

    def train_step(self, X, y):
        """One forward + backward + optimizer update on this batch; returns its loss.

        Raises ``FloatingPointError`` (and updates nothing) if the loss or a gradient is
        NaN or inf.
        """
        X, T = self._check_data(X, y)
        with self._exclusive():
            loss, status, layer = self._train_batch(X, T)
        if status != STATUS_OK:
            raise FloatingPointError(self._nonfinite_message(status, layer, f"step {self._step + 1}"))
        return float(loss)

    def get_weights(self):
        """Copies of the parameters: a list of ``(W, b)``, W shaped ``(n_in, n_out)``."""
        return [(W.copy(), b.copy()) for W, b in zip(self._W, self._b)]

    def set_weights(self, weights):
        """Replace the parameters with a list of ``(W, b)`` of the right shapes (checked first)."""
        try:
            weights = list(weights)
        except TypeError:
            raise TypeError(f"weights must be a list of (W, b) pairs, got {type(weights).__name__}") from None
        if len(weights) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} (W, b) pairs, got {len(weights)}")
        checked = []
        for l, pair in enumerate(weights):
            try:
                W, b = pair
            except (TypeError, ValueError):
                raise ValueError(f"layer {l}: expected a (W, b) pair, got {type(pair).__name__}") from None
            W = self._as_float_array(W, f"W[{l}]")
            b = self._as_float_array(b, f"b[{l}]")
            if W.shape != self._W[l].shape or b.shape != self._b[l].shape:
                raise ValueError(f"layer {l}: expected W {self._W[l].shape} and b {self._b[l].shape}, "
                                 f"got {W.shape} and {b.shape}")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise ValueError(f"layer {l}: weights contain NaN or inf")
            checked.append((W, b))
        with self._exclusive():
            for l, (W, b) in enumerate(checked):
                self._W[l][...] = W
                self._b[l][...] = b

    # -------------------------------------------------------- save and load
    def get_config(self):
        return {
            "sizes": self.sizes, "activation": self.activations, "output": self.output,
            "loss": self.loss, "init": self.init, "dtype": self.dtype.name, "seed": self.seed,
            "l2": self.l2, "clip_norm": self.clip_norm, "leaky_slope": self.leaky_slope, "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "optimizer": type(self.optimizer).__name__, "optimizer_config": self.optimizer.get_config(),
        }

    def save(self, path):
        """Write the model (config, weights, optimizer state and step) to an ``.npz`` file.

        The file is written to a temporary file in the same directory, flushed, fsynced
        and renamed over ``path``, so an interrupted save never destroys an older file.
        Each array carries a CRC32 checksum; nothing is pickled.
        """
        path = os.fspath(path)
        arrays = {"params": self._params_ext, "slots": self._slots,
                  "step": np.array([self._step, self._epoch, self._batches, self._dropout_key], dtype=np.int64),
                  "rng_state": np.frombuffer(json.dumps(self._rng.bit_generator.state).encode(), dtype=np.uint8)}
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": self.get_config(),
                  "crc32": {k: zlib.crc32(np.ascontiguousarray(v).view(np.uint8)) for k, v in arrays.items()}}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path):
        """Rebuild a model written by ``save`` (by either implementation)."""
        path = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{path}: not a readable fastbp model file ({type(exc).__name__}: {exc})") from None
        try:
            header = json.loads(arrays.pop("header").tobytes().decode())
        except Exception:
            raise ValueError(f"{path}: not a fastbp model file (no valid header)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: not a fastbp model file")
        if header.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: file format version {header.get('version')!r} is not supported "
                             f"(this fastbp reads version {FORMAT_VERSION})")
        try:
            checksums = header["crc32"]
            for key in ("params", "slots", "step", "rng_state"):
                if key not in checksums or key not in arrays:
                    raise ValueError(f"array {key!r} is missing; the file is truncated or corrupt")
            for key, crc in checksums.items():
                if key not in arrays:
                    raise ValueError(f"array {key!r} is missing; the file is truncated or corrupt")
                if zlib.crc32(np.ascontiguousarray(arrays[key]).view(np.uint8)) != crc:
                    raise ValueError(f"checksum mismatch in {key!r}; the file is corrupt")
            cfg = dict(header["config"])
            optimizer = optimizer_from_config(cfg.pop("optimizer"), cfg.pop("optimizer_config"))
            model = cls(cfg.pop("sizes"), optimizer=optimizer, **cfg)
            if arrays["params"].shape != model._params_ext.shape or arrays["slots"].shape != model._slots.shape:
                raise ValueError("array shapes do not match the saved configuration")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: not a valid fastbp model file ({exc})") from None
        model._params_ext[...] = arrays["params"]
        model._slots[...] = arrays["slots"]
        model._step, model._epoch, model._batches, model._dropout_key = (int(v) for v in arrays["step"][:4])
        model._rng.bit_generator.state = json.loads(arrays["rng_state"].tobytes().decode())
        return model

    def __repr__(self):
        return (f"{type(self).__module__.split('.')[-1]}.MLP({self.sizes}, activation={self.activations}, "
                f"output={self.output!r}, loss={self.loss!r}, optimizer={self.optimizer!r}, dtype={self.dtype.name!r})")

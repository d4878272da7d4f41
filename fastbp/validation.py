"""Everything a user can get wrong, checked once for both implementations: the tables of
accepted names and the checks of the constructor's, ``fit``'s and the data's arguments.

Free functions of plain values (sizes, dtype, loss ...), never of a model: each either
returns the normalised value or raises, and ``BaseMLP`` calls them before it changes
anything (a rejected call leaves the model, and its random generator, as they were).
The integer codes the names map to are the kernels' (``fastbp.kernels.codes``).
"""

import math
from collections.abc import Mapping

import numpy as np

from .kernels.codes import (
    BINARY_CROSS_ENTROPY,
    CROSS_ENTROPY,
    LEAKY_RELU,
    LINEAR,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
)
from .optimizers import get_optimizer
from .representable import problem_in_dtype
from .training import EarlyStopping

# ---------------------------------------------------------------------------
# Name tables -> integer codes (the codes are what the kernels understand).
# ---------------------------------------------------------------------------
HIDDEN_ACTIVATIONS = {"linear": LINEAR, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "leaky_relu": LEAKY_RELU}
OUTPUT_ACTIVATIONS = {"linear": LINEAR, "sigmoid": SIGMOID, "softmax": SOFTMAX}

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
# The output activation a loss implies when ``output`` is not given (``output=None``).
DEFAULT_OUTPUTS = {"mse": "linear", "binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}
# The losses whose targets are classes (or class probabilities), with an accuracy.
CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")

INITIALISERS = ("he", "xavier", "normal")
NONFINITE_POLICIES = ("raise", "stop", "skip_batch")
DTYPES = {"float32": np.float32, "float64": np.float64}


# ---------------------------------------------------------------- primitives
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


def _check_float(name, value, allow_zero):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {need}, got {value!r}")
    return value


def _is_count(value, minimum):
    """An integer (not a bool) of at least ``minimum``."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= minimum


# ------------------------------------------------------------ the constructor
def check_config(sizes, activation, output, loss, optimizer, init, dtype, seed, l2, clip_norm, leaky_slope,
                 dropout, batch_norm):
    """The constructor's arguments, checked in order and normalised: a dict keyed by the
    model's attribute names (``sizes``, ``activations``, ``output``, ``loss``, ``optimizer``,
    ``init``, ``dtype``, ``seed``, ``l2``, ``clip_norm``, ``leaky_slope``, ``dropout``,
    ``batch_norm``)."""
    sizes = _check_sizes(sizes)
    n_hidden = len(sizes) - 2
    activations = _check_activations(activation, n_hidden)
    output, loss = _check_output_and_loss(output, loss, sizes[-1])
    optimizer = get_optimizer(optimizer)
    init = _lookup("init", init, {k: k for k in INITIALISERS})
    if isinstance(dtype, type) or isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype).name
    dtype = _lookup("dtype", dtype, DTYPES)
    if seed is not None and not _is_count(seed, 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    l2 = _check_float("l2", l2, allow_zero=True)
    if clip_norm is not None:
        clip_norm = _check_float("clip_norm", clip_norm, allow_zero=False)
    leaky_slope = _check_float("leaky_slope", leaky_slope, allow_zero=True)
    rates = _check_dropout(dropout, n_hidden)
    bn = _check_batch_norm(batch_norm, n_hidden)
    check_representable(optimizer, l2, leaky_slope, clip_norm, np.dtype(DTYPES[dtype]))
    return {
        "sizes": sizes, "activations": activations, "output": output, "loss": loss, "optimizer": optimizer,
        "init": init, "dtype": np.dtype(DTYPES[dtype]), "seed": None if seed is None else int(seed),
        "l2": l2, "clip_norm": clip_norm, "leaky_slope": leaky_slope, "dropout": rates, "batch_norm": bn,
    }


# The settings the arithmetic takes in the model's dtype (as NumPy casts a Python float
# against an array): the optimizer's lr, momentum, rho, beta1, beta2, eps, and l2,
# leaky_slope and clip_norm (the kernels compute its coefficient from it in float64, where a
# subnormal clip_norm is flushed to 0 and clipping is off; in float32 a clip_norm below the
# smallest normal float32 makes a coefficient flushed to 0 for any gradient norm >= 1).
# (weight_decay only enters as ``1 - lr * weight_decay``, computed in float64.)
_CAST_HYPER = ("lr", "momentum", "rho", "beta1", "beta2", "eps")


def check_representable(optimizer, l2, leaky_slope, clip_norm, dtype):
    """Refuse a setting that is not 0 but would be 0 or subnormal in ``dtype``, or that
    overflows to inf in ``dtype`` (``representable.problem_in_dtype``); ``clip_norm`` None is
    no clipping."""
    settings = [(f"{type(optimizer).__name__}({name}=...)", getattr(optimizer, name)) for name in _CAST_HYPER
                if hasattr(optimizer, name)] + [("l2", l2), ("leaky_slope", leaky_slope)]
    if clip_norm is not None:
        settings.append(("clip_norm", clip_norm))
    for name, value in settings:
        problem = problem_in_dtype(value, dtype)
        if problem:
            raise ValueError(f"{name}: {value!r} {problem}")


def _check_sizes(sizes):
    try:
        sizes = [s for s in sizes]
    except TypeError:
        raise TypeError("sizes must be a list of layer widths, e.g. [4, 16, 3]") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output width, got {sizes!r}")
    for s in sizes:
        if not _is_count(s, 1):
            raise ValueError(f"layer widths must be positive integers, got {sizes!r}")
    return [int(s) for s in sizes]


def _check_activations(activation, n_hidden):
    """One hidden activation name per hidden layer, lower-cased."""
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
    return [_lookup("activation", a, HIDDEN_ACTIVATIONS) for a in activations]


def _check_output_and_loss(output, loss, n_outputs):
    """The output activation and the loss (aliases resolved), checked to fit each other.

    ``output=None`` is the loss's own output activation (``DEFAULT_OUTPUTS``).  A softmax of
    one unit is refused with any loss: it is the constant 1.0, whose gradient is 0, so such a
    model would train to nothing, silently."""
    if isinstance(loss, str):
        loss = LOSS_ALIASES.get(loss.lower(), loss)
    loss = _lookup("loss", loss, LOSSES)
    output = DEFAULT_OUTPUTS[loss] if output is None else _lookup("output activation", output, OUTPUT_ACTIVATIONS)
    if output not in LOSS_OUTPUTS[LOSSES[loss]]:
        raise ValueError(
            f"loss {loss!r} needs output activation {' or '.join(LOSS_OUTPUTS[LOSSES[loss]])}, got {output!r}"
        )
    if output == "softmax" and n_outputs < 2:
        raise ValueError("a softmax output needs at least 2 output units: a one-unit softmax is always 1.0 and "
                         "never trains; with one output unit use output='linear' for regression (loss='mse') "
                         "or output='sigmoid' for two classes (loss='binary_cross_entropy')")
    return output, loss


def _check_dropout(dropout, n_hidden):
    """One dropout rate in [0, 1) per hidden layer."""
    if isinstance(dropout, np.ndarray) and dropout.ndim == 0:
        dropout = dropout.item()  # a 0-d array is one rate
    if isinstance(dropout, (list, tuple, np.ndarray)):
        rates = list(dropout)
    else:
        rates = [dropout] * n_hidden
    if len(rates) != n_hidden:
        raise ValueError(f"dropout lists {len(rates)} rates for {n_hidden} hidden layers")
    rates = [_check_float("dropout", r, allow_zero=True) for r in rates]
    if any(r >= 1 for r in rates):
        raise ValueError(f"dropout rates must be in [0, 1), got {rates}")
    return rates


def _check_batch_norm(batch_norm, n_hidden):
    """One bool per hidden layer."""
    bn = [batch_norm] * n_hidden if not isinstance(batch_norm, (list, tuple)) else list(batch_norm)
    if len(bn) != n_hidden or not all(isinstance(v, (bool, np.bool_)) for v in bn):
        raise ValueError(f"batch_norm must be True/False or one bool per hidden layer ({n_hidden}), "
                         f"got {batch_norm!r}")
    return [bool(v) for v in bn]


# ------------------------------------------------------------------ the data
def as_float_array(a, what, dtype):
    """``a`` as a C-contiguous array of ``dtype`` (``a`` itself when it already is one)."""
    if isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous:
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{what} could not be read as an array: {exc}") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be numeric (bool, int or float), got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr


def check_X(X, n_features, dtype, allow_empty=False):
    """Inputs as a finite, non-empty ``(n, n_features)`` array of ``dtype`` (``allow_empty``:
    of 0 rows too, for a part of the data such as ``fastbp.distributed``'s shards)."""
    X = as_float_array(X, "X", dtype)
    if X.ndim != 2:
        hint = f"; {_one_dimensional_hint(X.shape[0], n_features)}" if X.ndim == 1 else ""
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}{hint}")
    if X.shape[0] == 0 and not allow_empty:
        raise ValueError("X is empty (0 samples)")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the model expects {n_features}")
    if not _all_finite(X):
        raise ValueError("X contains NaN or inf; clean or impute the data first")
    return X


def _one_dimensional_hint(length, n_features):
    """How to make a 1-D X of ``length`` values 2-D for a model of ``n_features`` inputs.

    A 1-D X is one sample or one feature of many samples; which one can only be told from
    the model, so the hint follows it (a one-input model: a column; a row of the model's
    width: one sample) and states both readings when X fits neither."""
    if n_features == 1:
        return f"for {length} samples of the model's single feature use X.reshape(-1, 1)"
    if length == n_features:
        return f"for one sample of the model's {n_features} features use X.reshape(1, -1)"
    return (f"X.reshape(1, -1) would be one sample and X.reshape(-1, 1) samples of one feature, but this model "
            f"takes {n_features} features per sample and X has {length} values")


def check_y(y, n, k, loss, dtype):
    """Targets as a dense float matrix T of shape (n, k) in ``dtype``, for ``loss``.

    Accepted shapes (``accepted_y_shapes``): for ``cross_entropy``, integer class labels of
    shape (n,) or (n, 1) (one-hot encoded here) or one-hot / probability rows (n, k); for
    the other losses (n, k), and (n,) too when k == 1."""
    try:
        y_arr = np.asarray(y)
    except Exception as exc:
        raise ValueError(f"y could not be read as an array: {exc}") from None
    if y_arr.dtype.kind not in "biuf":
        raise TypeError(f"y must be numeric (bool, int or float), got dtype {y_arr.dtype}"
                        f"{_STRING_LABELS_HINT if _holds_text(y_arr) else ''}")
    if y_arr.shape[:1] != (n,):
        raise ValueError(f"X has {n} samples but y has {y_arr.shape[0] if y_arr.ndim else 0}")
    if y_arr.dtype.kind == "f" and not np.isfinite(y_arr).all():  # (integers always are)
        raise ValueError("y contains NaN or inf")
    if loss == "cross_entropy" and (y_arr.ndim == 1 or y_arr.shape == (n, 1)):  # (k > 1: one-hot rows are wider)
        return _one_hot(y_arr.reshape(n), n, k, dtype)
    if y_arr.ndim == 1 and k == 1:
        y_arr = y_arr.reshape(n, 1)
    if y_arr.ndim != 2 or y_arr.shape[1] != k:
        raise ValueError(_y_shape_message(y_arr, n, k, loss))
    T = np.ascontiguousarray(y_arr, dtype=dtype)
    if not np.isfinite(T).all():
        raise ValueError(f"y has values too large for the model's dtype {np.dtype(dtype).name} "
                         f"(largest {np.finfo(dtype).max:.3g})")
    if loss in CLASSIFICATION_LOSSES and T.size and (T.min() < 0 or T.max() > 1):
        raise ValueError(f"{loss} targets must lie in [0, 1]")
    if loss == "cross_entropy" and not np.allclose(T.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("cross_entropy targets of shape (n, k) must be one-hot or probability rows summing to 1")
    return T


# Text targets are class labels; the estimator that encodes them is one import away.
_STRING_LABELS_HINT = ("; string class labels: use fastbp.sklearn.MLPClassifier, which accepts labels of any kind, "
                       "or encode them as integers 0..k-1 (classes, y = numpy.unique(y, return_inverse=True))")


def _holds_text(a):
    """Whether the non-numeric array ``a`` holds strings (an object array is looked into:
    pandas keeps strings in object columns). Not bytes: scikit-learn refuses those as labels."""
    if a.dtype.kind == "U":
        return True
    return a.dtype.kind == "O" and any(isinstance(v, str) for v in a.flat)


def accepted_y_shapes(n, k, loss):
    """The shapes of ``y`` a model with ``k`` outputs and ``loss`` accepts for ``n`` samples, in words."""
    if loss == "cross_entropy":
        return f"class labels of shape ({n},) or ({n}, 1), or one-hot / probability rows of shape ({n}, {k})"
    if k == 1:
        return f"of shape ({n}, 1) or ({n},)"
    return f"of shape ({n}, {k}) (one target per output)"


def _y_shape_message(y, n, k, loss):
    """Why ``y`` (n rows) has the wrong shape for the model, and what it accepts."""
    message = (f"y for a model with {k} output{'s' if k > 1 else ''} and loss {loss!r} must be "
               f"{accepted_y_shapes(n, k, loss)}; got shape {y.shape}")
    if loss != "cross_entropy" and y.dtype.kind in "biu" and y.shape in ((n,), (n, 1)):
        # one integer per row for several outputs: class labels, a classification habit
        message += (f"; for class labels use loss='cross_entropy' (softmax output), which takes labels of shape "
                    f"({n},) or ({n}, 1)")
    return message


def _one_hot(labels, n, k, dtype):
    """Integer class labels of shape (n,) as one-hot rows (n, k) of ``dtype``."""
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        raise ValueError("cross_entropy labels of shape (n,) or (n, 1) must be integer class indices")
    # (no labels: an empty shard, allow_empty; a bad label is reported as given: a huge float would wrap as an int64)
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        bad = labels[(labels < 0) | (labels >= k)][0].item()
        raise ValueError(f"class label {bad!r} is outside [0, {k}) for a model with {k} outputs")
    labels = labels.astype(np.int64)
    T = np.zeros((n, k), dtype=dtype)
    T[np.arange(n), labels] = 1
    return T


def check_data(X, y, sizes, loss, dtype, allow_empty=False):
    """``(X, T)`` checked for a model of these ``sizes``, ``loss`` and ``dtype`` (``allow_empty``:
    ``check_X``'s)."""
    X = check_X(X, sizes[0], dtype, allow_empty)
    return X, check_y(y, X.shape[0], sizes[-1], loss, dtype)


# ------------------------------------------------------------------- fit
def check_weights(weights, shapes, dtype):
    """``weights`` (a list of ``(W, b)`` pairs, one per layer) as arrays of ``dtype``, checked
    against the layers' ``shapes`` (a list of ``(W shape, b shape)``) and for NaN / inf."""
    try:
        weights = list(weights)
    except TypeError:
        raise TypeError(f"weights must be a list of (W, b) pairs, got {type(weights).__name__}") from None
    if len(weights) != len(shapes):
        raise ValueError(f"expected {len(shapes)} (W, b) pairs, got {len(weights)}")
    checked = []
    for l, (pair, (w_shape, b_shape)) in enumerate(zip(weights, shapes)):
        try:
            W, b = pair
        except (TypeError, ValueError):
            raise ValueError(f"layer {l}: expected a (W, b) pair, got {type(pair).__name__}") from None
        W = as_float_array(W, f"W[{l}]", dtype)
        b = as_float_array(b, f"b[{l}]", dtype)
        if W.shape != w_shape or b.shape != b_shape:
            raise ValueError(f"layer {l}: expected W {w_shape} and b {b_shape}, got {W.shape} and {b.shape}")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ValueError(f"layer {l}: weights contain NaN or inf")
        checked.append((W, b))
    return checked


def check_state(state, shapes, dtype):
    """``state`` (a mapping of names to arrays, as ``get_state`` returns) as arrays of
    ``dtype``, checked all at once against the model's ``shapes`` (name -> shape): exactly
    these names, these shapes, finite values, and running variances >= 0."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict of named arrays (as get_state returns), got {type(state).__name__}")
    missing = [name for name in shapes if name not in state]
    unknown = [name for name in state if name not in shapes]
    if missing or unknown:
        problems = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + \
                   ([f"unknown {', '.join(map(repr, unknown))}"] if unknown else [])
        raise ValueError(f"state does not fit this model ({'; '.join(problems)}); it needs exactly "
                         f"{', '.join(shapes)}")
    checked = {}
    for name, shape in shapes.items():
        with np.errstate(over="ignore"):  # a value too large for dtype becomes inf: refused below
            value = as_float_array(state[name], f"state[{name!r}]", dtype)
        if value.shape != shape:
            raise ValueError(f"state[{name!r}] has shape {value.shape}; this model needs {shape}")
        if not _all_finite(value):
            raise ValueError(f"state[{name!r}] contains NaN or inf (or values too large for "
                             f"{np.dtype(dtype).name})")
        if name.startswith("running_var") and (value < 0).any():
            raise ValueError(f"state[{name!r}] holds a negative variance")
        checked[name] = value
    return checked


def check_optimizer_state(optimizer, slots, dtype):
    """``slots`` (``optimizer``'s state, one row per slot, as ``save`` stores it) as an array of
    ``dtype``: finite, and the rows of squared gradients (``optimizer.squared_slots``) >= 0."""
    with np.errstate(over="ignore"):  # a value too large for dtype becomes inf: refused below
        slots = as_float_array(slots, "the optimizer state", dtype)
    if not _all_finite(slots):
        raise ValueError(f"the optimizer state contains NaN or inf (or values too large for "
                         f"{np.dtype(dtype).name})")
    for row in optimizer.squared_slots:
        if (slots[row] < 0).any():
            raise ValueError(f"the optimizer state holds a negative value in {type(optimizer).__name__}'s slot {row}, "
                             "an average or sum of squared gradients (never negative)")
    return slots


def check_flag(name, value):
    """``value`` as a bool, refused unless it is one (a string such as ``'no'`` would be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_fit_options(shuffle, on_nonfinite, lr_schedule, early_stopping, verbose):
    """``fit``'s options, checked before its data."""
    check_flag("shuffle", shuffle)
    if on_nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {on_nonfinite!r}")
    if lr_schedule is not None and not callable(lr_schedule):
        raise TypeError("lr_schedule must be a schedule (a callable of the epoch or step count)")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError("early_stopping must be a fastbp.EarlyStopping instance")
    if verbose not in (0, 1, False, True):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")


def check_fit_counts(epochs, batch_size):
    """``fit``'s epoch count and batch size, checked after its data."""
    if not _is_count(epochs, 0):
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not _is_count(batch_size, 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def validation_pair(validation_data):
    """``validation_data`` as its two parts ``(X_val, y_val)``, unchecked."""
    try:
        X_val, y_val = validation_data
    except (TypeError, ValueError):
        raise ValueError("validation_data must be a pair (X_val, y_val)") from None
    return X_val, y_val


def split_validation(X, T, validation_data, validation_split, sizes, loss, dtype):
    """Training data and the validation pair ``(X_val, T_val)`` (or None), checked.

    ``validation_data`` is checked as data for a model of ``sizes``, ``loss`` and ``dtype``;
    ``validation_split`` holds out the last rows of (X, T).
    """
    if isinstance(validation_split, (bool, np.bool_)) \
            or not isinstance(validation_split, (int, float, np.integer, np.floating)) or not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
    if validation_data is not None and validation_split:
        raise ValueError("give validation_data or validation_split, not both")
    if validation_data is not None:
        return X, T, check_data(*validation_pair(validation_data), sizes, loss, dtype)
    if validation_split:
        n_val = int(round(X.shape[0] * validation_split))
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(f"validation_split={validation_split} of {X.shape[0]} samples leaves an empty "
                             "training or validation set")
        return X[:-n_val], T[:-n_val], (X[-n_val:], T[-n_val:])
    return X, T, None


def early_stopping_monitor(early_stopping, has_validation, is_classifier):
    """The metric ``early_stopping`` watches (None without early stopping): its ``monitor``,
    else ``val_loss`` when there is validation data and ``loss`` when there is not; checked
    to be one this fit records."""
    if early_stopping is None:
        return None
    monitor = early_stopping.monitor or ("val_loss" if has_validation else "loss")
    if monitor.startswith("val_") and not has_validation:
        raise ValueError(f"early_stopping monitors {monitor!r} but no validation data was given")
    if monitor.endswith("accuracy") and not is_classifier:
        raise ValueError(f"early_stopping monitors {monitor!r}, but a model with loss 'mse' records no accuracy; "
                         "monitor 'val_loss' or 'loss'")
    return monitor

"""scikit-learn estimators trained by fastbp's compiled epochs: ``MLPClassifier``, ``MLPRegressor``.

    from fastbp.sklearn import MLPClassifier      # instead of sklearn.neural_network's

The constructor takes scikit-learn's own MLP parameters where the concept is the same, with
the same defaults, plus fastbp's (``dtype``, ``dropout``, ``batch_norm``, ``clip_norm``,
``lr_schedule``). They pass scikit-learn's estimator checks (``tests/test_sklearn.py`` lists
the few that are skipped, with the reason), pickle, clone, and work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score``. scikit-learn is an optional extra
(``pip install "fastbp[sklearn]"``); ``import fastbp`` never imports this module.

Where fastbp differs from ``sklearn.neural_network`` (README, "scikit-learn estimators"):

* ``alpha``: scikit-learn adds ``alpha / 2 * ||W||^2 / batch_size`` to each mini-batch's loss;
  fastbp's model takes ``l2 = alpha / batch_size`` (the same term, with the nominal batch
  size of the fit that made the model also for a smaller last batch, and for a later
  ``partial_fit`` of fewer rows).
* ``MLPRegressor``'s loss is the mean squared error (scikit-learn: half of it), so
  ``loss_curve_`` is twice scikit-learn's for the same fit, and plain SGD steps are twice
  as long for the same ``learning_rate_init``.
* Initial weights: Glorot normal (fastbp's ``"xavier"``), of the same variance as
  scikit-learn's Glorot uniform (``2 / (fan_in + fan_out)``; scikit-learn uses a third of
  that for a logistic output layer).
* ``solver``: ``"adam"``, ``"sgd"`` (constant rate; ``momentum``, ``nesterovs_momentum``) and
  fastbp's ``"rmsprop"``, ``"adamw"``, ``"adagrad"``; no ``"lbfgs"``. ``learning_rate``
  schedules other than constant come as ``lr_schedule`` (``fastbp.schedules``).
  ``epsilon`` is Adam's / AdamW's (RMSprop and AdaGrad keep fastbp's defaults).
* ``activation``: scikit-learn's names (``"identity"``, ``"logistic"``, ``"tanh"``,
  ``"relu"``) and fastbp's (``"linear"``, ``"sigmoid"``, ``"leaky_relu"``).
* ``sample_weight`` (``fit``, ``partial_fit``) and ``class_weight`` are not supported yet
  (fastbp trains with an unweighted loss): refused by name, except ``sample_weight=None``.
  scikit-learn's ``learning_rate``, ``power_t`` and ``max_fun`` are refused by name too.
* Input: dense arrays only (no sparse matrices).
* ``dtype``: the dtype fastbp computes in; None (default) follows X as scikit-learn does
  (float32 stays float32, anything else becomes float64).

Parameters changed on a fitted estimator (``set_params`` between calls), as scikit-learn
reads them:

* Each ``fit`` reads every parameter again. A warm start (``warm_start=True``, fitted) keeps
  the fitted weights (batch norm's statistics too), the classes and the record (``n_iter_``,
  ``t_``, ``loss_curve_``, ``best_loss_``, ...) and trains them with a new optimizer, as
  scikit-learn's ``fit`` makes one each time: the current ``solver``, ``learning_rate_init``,
  ``momentum``, ``nesterovs_momentum``, ``beta_1``, ``beta_2``, ``epsilon``, ``alpha``,
  ``clip_norm`` and ``dropout`` apply, the optimizer's state and step count (so
  ``lr_schedule``) start over, and ``random_state`` is read again (an int seeds the
  shuffling, dropout and early-stopping hold-out as at the first fit). Turning
  ``early_stopping`` on or off starts that rule's record afresh.
* ``partial_fit`` goes on with the fitted model and its optimizer (state included), as
  scikit-learn's goes on with its optimizer; a new ``learning_rate_init`` applies to it.
  fastbp's model fixes the others when it is made, so a changed ``solver``, ``momentum``,
  ``nesterovs_momentum``, ``beta_1``, ``beta_2``, ``epsilon``, ``alpha``, ``clip_norm`` or
  ``dropout`` is refused by name (a warm-start ``fit`` applies them; scikit-learn's
  ``partial_fit`` ignores a new solver or rate and applies a new alpha). ``early_stopping=True``
  is refused, as scikit-learn refuses it.
* Neither can change the network: a changed ``hidden_layer_sizes``, ``activation``,
  ``batch_norm`` or ``dtype`` (None keeps the fitted one) is refused by name (``ValueError``),
  as are other classes (scikit-learn's rules and messages), another number of outputs or of
  features; ``fit`` with ``warm_start=False`` trains a new network.
* ``batch_size``, ``shuffle``, ``max_iter``, ``tol``, ``n_iter_no_change``,
  ``validation_fraction``, ``verbose`` and ``lr_schedule`` are read by every call.

Threads: an estimator runs one ``fit``, ``partial_fit`` or ``set_params`` at a time; one
called while another thread runs one raises ``RuntimeError`` naming the estimator (as
``fastbp.MLP`` refuses training from two threads): use a clone in each thread.

Stopping follows scikit-learn exactly: without ``early_stopping``, training stops once the
training loss has failed to fall below ``best_loss_ - tol`` more than ``n_iter_no_change``
epochs running; with it, once the validation score (accuracy or R²) has failed to rise
above ``best_validation_score_ + tol`` as often, and the best epoch's parameters are kept.
Epochs that no stopping test can end run as one compiled call, so the estimator trains
at the speed of ``fastbp.MLP.fit``.
"""

import contextlib
import copy
import inspect
import numbers
import threading
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import optimizers
from .model import MLP
from .validation import check_config, check_representable

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names and fastbp's, -> fastbp's
ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "linear": "linear", "sigmoid": "sigmoid", "leaky_relu": "leaky_relu"}
SOLVERS = ("adam", "sgd", "rmsprop", "adamw", "adagrad")
# fastbp's output activation -> scikit-learn's name for it (``out_activation_``)
OUT_ACTIVATION_NAMES = {"softmax": "softmax", "sigmoid": "logistic", "linear": "identity"}


def _optimizer(p):
    """The fastbp optimizer for the parameters ``p`` (name -> value): ``solver`` and its settings."""
    lr = p["learning_rate_init"]
    if p["solver"] == "adam":
        return optimizers.Adam(lr, beta1=p["beta_1"], beta2=p["beta_2"], eps=p["epsilon"])
    if p["solver"] == "adamw":
        return optimizers.AdamW(lr, beta1=p["beta_1"], beta2=p["beta_2"], eps=p["epsilon"])
    if p["solver"] == "sgd":
        return optimizers.SGD(lr, momentum=p["momentum"], nesterov=bool(p["nesterovs_momentum"]) and p["momentum"] > 0)
    if p["solver"] == "rmsprop":
        return optimizers.RMSprop(lr)
    return optimizers.AdaGrad(lr)


def _hidden_sizes(value):
    """``hidden_layer_sizes`` as a list (one int is one hidden layer)."""
    return [value] if isinstance(value, numbers.Integral) else list(value)


def _check_params(est):
    """The constructor's arguments (scikit-learn checks them in ``fit``, not ``__init__``)."""
    sizes = _hidden_sizes(est.hidden_layer_sizes)
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
        raise ValueError(f"hidden_layer_sizes must be positive integers, got {est.hidden_layer_sizes!r}")
    if est.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {est.activation!r}")
    if est.solver not in SOLVERS:
        hint = " (lbfgs is not supported by fastbp)" if est.solver == "lbfgs" else ""
        raise ValueError(f"solver must be one of {SOLVERS}, got {est.solver!r}{hint}")
    batch = est.batch_size
    if not (batch == "auto" or (isinstance(batch, numbers.Integral) and not isinstance(batch, bool) and batch >= 1)):
        raise ValueError(f"batch_size must be 'auto' or a positive integer, got {batch!r}")
    for name in ("max_iter", "n_iter_no_change"):
        value = getattr(est, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name in ("alpha", "tol", "learning_rate_init", "momentum", "beta_1", "beta_2", "epsilon"):
        value = getattr(est, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if est.learning_rate_init <= 0:
        raise ValueError(f"learning_rate_init must be > 0, got {est.learning_rate_init!r}")
    if not 0 <= est.momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {est.momentum!r}")
    for name in ("beta_1", "beta_2"):
        if not 0 <= getattr(est, name) < 1:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(est, name)!r}")
    if est.early_stopping and not 0 < est.validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {est.validation_fraction!r}")
    if est.dtype is not None and np.dtype(est.dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {est.dtype!r}")
    return sizes


# Constructor arguments the estimators do not take, with the reason (the end of a sentence
# that starts with the class's name); a class's ``_unsupported`` table adds its own.
_UNSUPPORTED_PARAMS = {
    "learning_rate": "has no learning_rate: rates other than a constant one come as lr_schedule (fastbp.schedules)",
    "power_t": "has no power_t: rates other than a constant one come as lr_schedule (fastbp.schedules)",
    "max_fun": "has no max_fun: it bounds the lbfgs solver, which fastbp does not have",
}
# The same for ``fit`` / ``partial_fit``'s arguments; these accept None (scikit-learn's
# meta-estimators pass ``sample_weight=None``), which asks for nothing. They arrive through
# ``**fit_params``: a fit that names ``sample_weight`` tells scikit-learn (has_fit_parameter,
# its estimator checks, metadata routing) that weighting works.
_UNSUPPORTED_FIT_PARAMS = {
    "sample_weight": "does not support sample_weight yet (fastbp trains with an unweighted loss); to weight "
                     "samples, repeat or resample the rows in proportion to their weights",
}


# The parameters the fastbp model is made from. A warm start (``fit`` with ``warm_start=True``)
# and a later ``partial_fit`` go on training the fitted network: the architecture cannot change
# (refused by name). A warm start builds a new model from the fitted weights with the others (a
# new optimizer: scikit-learn's ``fit`` makes one each time); ``partial_fit`` goes on with the
# model's optimizer (as scikit-learn's does) and takes a new learning rate only.
_ARCHITECTURE = ("hidden_layer_sizes", "activation", "batch_norm", "dtype")
_SETTINGS = ("solver", "momentum", "nesterovs_momentum", "beta_1", "beta_2", "epsilon", "alpha", "clip_norm",
             "dropout")
_MODEL_PARAMS = _ARCHITECTURE + _SETTINGS + ("learning_rate_init",)
# The optimizer's settings (fastbp's names) -> the parameters (scikit-learn's)
_OPTIMIZER_PARAMS = {"momentum": "momentum", "nesterov": "nesterovs_momentum", "beta1": "beta_1", "beta2": "beta_2",
                     "eps": "epsilon", "lr": "learning_rate_init"}


def _changed(built, now, model):
    """The parameters (names, in ``_MODEL_PARAMS``) whose values in ``now`` make another fastbp
    model than those in ``built`` (both: name -> value), the fitted ``model``: compared as the
    model takes them (by its own checks), so hidden_layer_sizes ``8`` and ``(8,)`` are one
    network, ``dropout=0.5`` and ``[0.5]`` one rate, and momentum is nothing to Adam. ``dtype``:
    None keeps the model's."""
    if _hidden_sizes(now["hidden_layer_sizes"]) != _hidden_sizes(built["hidden_layer_sizes"]):
        return ["hidden_layer_sizes"]  # (the others are read per hidden layer)
    changed = []
    if now["dtype"] is not None and np.dtype(now["dtype"]) != model.dtype:
        changed.append("dtype")
    old, new = (check_config(model.sizes, ACTIVATIONS[p["activation"]], model.output, model.loss, _optimizer(p),
                             "xavier", model.dtype, None, p["alpha"], p["clip_norm"], model.leaky_slope, p["dropout"],
                             p["batch_norm"]) for p in (built, now))
    for param, key in (("activation", "activations"), ("batch_norm", "batch_norm"), ("alpha", "l2"),
                       ("clip_norm", "clip_norm"), ("dropout", "dropout")):
        if old[key] != new[key]:
            changed.append(param)
    if type(old["optimizer"]) is not type(new["optimizer"]):
        changed.append("solver")
    else:
        old_opt, new_opt = old["optimizer"].get_config(), new["optimizer"].get_config()
        changed += [_OPTIMIZER_PARAMS[key] for key in old_opt if old_opt[key] != new_opt[key]]
    return changed


class _InitSignature:
    """A class's ``inspect.signature``: its ``__init__``'s parameters after ``self``. (Python
    would read the catch-all ``*args, **kwargs`` of ``_BaseMLP.__new__``; scikit-learn's
    checks and ``help`` read the class's signature.)"""

    def __get__(self, obj, cls):
        return inspect.Signature(list(inspect.signature(cls.__init__).parameters.values())[1:])


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, building the fastbp model,
    the training loop with scikit-learn's stopping rules, and the fitted attributes."""

    _unsupported = _UNSUPPORTED_PARAMS
    __signature__ = _InitSignature()

    def __new__(cls, *args, **kwargs):
        # Python's own error for an unknown argument names the function that refused it,
        # ``_BaseMLP.__init__``, a private class. Checked here, so that ``__init__`` keeps
        # the explicit keyword parameters scikit-learn's get_params and clone read.
        try:
            inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        except TypeError as exc:
            for name in kwargs:
                if name in cls._unsupported:
                    raise TypeError(f"{cls.__name__} {cls._unsupported[name]}") from None
            raise TypeError(f"{cls.__name__}(): {exc}") from None
        est = super().__new__(cls)
        # Held by each fit, partial_fit and set_params (``_alone``). Made here: clones, pickled
        # and copied estimators skip ``__init__``, and each needs a lock of its own.
        est._busy = threading.Lock()
        return est

    def __getstate__(self):
        state = dict(super().__getstate__())  # (a copy: object's is the instance's own dict)
        state.pop("_busy", None)  # a lock does not pickle; the copy has its own (``__new__``)
        return state

    @contextlib.contextmanager
    def _alone(self, method):
        """Run a call that trains or changes the estimator, refusing (``RuntimeError``) one
        while another thread runs one: two fits would share the model and the stopping
        counters, and a parameter changed during a fit would change it half-way."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"{type(self).__name__}.{method}: this estimator is being fitted or changed in "
                               "another thread; fit, partial_fit and set_params run one at a time: use an estimator "
                               "from one thread at a time, or a clone of it in each thread (sklearn.base.clone)")
        try:
            yield
        finally:
            self._busy.release()

    def set_params(self, **params):
        """scikit-learn's ``set_params``, refused (``RuntimeError``) while another thread fits
        the estimator."""
        with self._alone("set_params"):
            return super().set_params(**params)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, dtype=None, dropout=0.0, batch_norm=False, clip_norm=None, lr_schedule=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.clip_norm = clip_norm
        self.lr_schedule = lr_schedule

    # ------------------------------------------------------------- subclass hooks
    # _output_and_loss(self): fastbp's (output, loss) for the encoded targets
    # _encode_targets(self, y, first, incremental, classes): y checked -> fastbp's targets (first:
    #     learn the encoding; partial_fit's ``classes``)
    # _decode(self, T): fastbp's targets back to y
    # _validation_score(self, X, y): the score early stopping watches
    _split_stratified = False  # the early-stopping hold-out keeps the classes' shares
    _y_numeric = True  # regression targets (numbers); classifiers: labels

    # --------------------------------------------------------------- fitted state
    @property
    def coefs_(self):
        """Weight matrices, one per layer, ``(n_in, n_out)`` (copies)."""
        check_is_fitted(self, "_model")
        return [W for W, _ in self._model.get_weights()]

    @property
    def intercepts_(self):
        """Bias vectors, one per layer (copies)."""
        check_is_fitted(self, "_model")
        return [b for _, b in self._model.get_weights()]

    # ------------------------------------------------------------------ training
    def _validate_input(self, X, y, reset):
        X, y = validate_data(self, X, y, accept_sparse=False, multi_output=True, dtype=(np.float64, np.float32),
                             reset=reset, y_numeric=self._y_numeric)
        if y.ndim == 2 and y.shape[1] == 1 and self._y_numeric is False:  # a column of labels
            y = column_or_1d(y, warn=True)
        return X, y

    def _compute_dtype(self, X):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)

    def _batch(self, n):
        return min(200, n) if self.batch_size == "auto" else min(self.batch_size, n)

    def _new_model(self, n_features, n_outputs, batch, dtype):
        """A fastbp model of the estimator's parameters; its seed from ``random_state`` (as
        scikit-learn draws from it)."""
        output, loss = self._output_and_loss()
        params = self.get_params(deep=False)
        seed = int(self._random_state.randint(0, 2**31 - 1))
        model = MLP([n_features, *self._hidden, n_outputs], activation=ACTIVATIONS[self.activation], output=output,
                    loss=loss, optimizer=_optimizer(params), init="xavier", dtype=dtype, seed=seed,
                    l2=self.alpha / batch, clip_norm=self.clip_norm, dropout=self.dropout, batch_norm=self.batch_norm)
        # what the model was made from (copies: a list the caller changes in place is a change)
        self._model_params = copy.deepcopy({name: params[name] for name in _MODEL_PARAMS})
        return model

    def _start_record(self):
        """The stopping rule's record as a first fit starts it: for the training loss
        (``best_loss_``), or with ``early_stopping`` for the validation score."""
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_, self.best_validation_score_ = None, None
            self.best_loss_ = np.inf

    def _check_continuation(self, incremental):
        """A warm start or a later ``partial_fit`` goes on training the fitted network: refuse
        a parameter that would need another one; ``partial_fit`` also goes on with the fitted
        model's optimizer and settings (as scikit-learn's goes on with its optimizer): refuse a
        change to those too, but the learning rate (``_continue_with_new_rate``)."""
        cls = type(self).__name__
        built = self._model_params
        now = {name: getattr(self, name) for name in _MODEL_PARAMS}
        changed = _changed(built, now, self._model)

        def listed(names):
            return ", ".join(f"{name}={now[name]!r} (fitted with {built[name]!r})" if name != "dtype" else
                             f"dtype={now[name]!r} (fitted in {self._model.dtype.name})" for name in names)

        caller = f"{cls}.partial_fit" if incremental else f"{cls}.fit with warm_start=True"
        architecture = [name for name in changed if name in _ARCHITECTURE]
        if architecture:
            raise ValueError(f"{caller} goes on training the fitted network, and {listed(architecture)} would need "
                             f"a new one: fit with warm_start=False to train a new network, or set "
                             f"{' and '.join(architecture)} back")
        settings = [name for name in changed if name in _SETTINGS]
        if incremental and settings:
            raise ValueError(f"{caller} goes on with the fitted model's optimizer and settings (as scikit-learn's "
                             f"partial_fit goes on with its optimizer), and {listed(settings)} changed since it was "
                             f"built: fit with warm_start=True applies them to the fitted weights (with a new "
                             f"optimizer), or set {' and '.join(settings)} back")
        return "learning_rate_init" in changed

    def _continue_with_new_rate(self):
        """``partial_fit`` with a new ``learning_rate_init``: the model's optimizer takes it
        (its state goes on), checked against the model's dtype first."""
        check_representable(_optimizer(self.get_params(deep=False)), self._model.l2, self._model.leaky_slope,
                            self._model.clip_norm, self._model.dtype)
        self._model.optimizer.lr = self.learning_rate_init
        self._model_params["learning_rate_init"] = self.learning_rate_init

    def _fit(self, X, y, incremental, fit_params, classes=None):
        """``fit`` (``incremental`` False) or ``partial_fit`` (one epoch, no stopping test);
        ``fit_params``: their keyword arguments beyond X, y and classes (refused but for
        ``sample_weight=None``)."""
        method = "partial_fit" if incremental else "fit"
        with self._alone(method):
            for name, value in fit_params.items():
                if name not in _UNSUPPORTED_FIT_PARAMS:
                    raise TypeError(f"{type(self).__name__}.{method}() got an unexpected keyword argument {name!r}")
                if value is not None:
                    raise TypeError(f"{type(self).__name__}.{method} {_UNSUPPORTED_FIT_PARAMS[name]}")
            # A refused call leaves the estimator as it was: the checks below set attributes as they
            # go (validate_data sets n_features_in_, the classifier its classes_), so they are put
            # back if any of them fails. (Training itself starts only once every check has passed.)
            before = dict(vars(self))
            try:
                X, T, batch = self._prepare(X, y, incremental, classes)
            except BaseException:
                vars(self).clear()
                vars(self).update(before)
                raise
            self._no_improvement_count = 0
            if incremental:
                self._epochs(X, T, batch, 1)
                return self
            X_val = y_val = None
            if self.early_stopping:
                X, X_val, T, T_val = train_test_split(X, T, random_state=self._random_state,
                                                      test_size=self.validation_fraction,
                                                      stratify=y if self._split_stratified else None)
                y_val = self._decode(T_val)
                batch = self._batch(X.shape[0])
            self._train(X, T, batch, X_val, y_val)
            return self

    def _prepare(self, X, y, incremental, classes):
        """Every check of a ``fit`` / ``partial_fit`` call, then the model it trains (a new one
        on a first fit or a warm start): ``(X, T, batch)``, the inputs in the model's dtype and
        the encoded targets."""
        self._hidden = _check_params(self)
        if incremental and self.early_stopping:
            raise ValueError(f"{type(self).__name__}.partial_fit does not support early_stopping=True (as "
                             "scikit-learn's): it trains one epoch, with no stopping test; fit stops early")
        first = not hasattr(self, "_model") or not (incremental or self.warm_start)
        new_rate = False if first else self._check_continuation(incremental)
        X, y = self._validate_input(X, y, reset=first)
        if first or not incremental:  # read again by each fit, as scikit-learn does
            self._random_state = check_random_state(self.random_state)
        T = self._encode_targets(y, first, incremental, classes)
        n_outputs = T.shape[1] if T.ndim == 2 else len(self.classes_)
        dtype = self._compute_dtype(X) if first else self._model.dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        batch = self._batch(X.shape[0])
        if first:
            self._model = self._new_model(X.shape[1], n_outputs, batch, dtype)
            self.n_outputs_ = n_outputs
            self.n_layers_ = len(self._hidden) + 2
            self.out_activation_ = OUT_ACTIVATION_NAMES[self._model.output]
            self.n_iter_, self.t_ = 0, 0
            self.loss_curve_ = []
            self._start_record()
        elif not incremental:  # a warm start: the fitted network, with every other parameter as it is now
            model = self._new_model(X.shape[1], n_outputs, batch, dtype)
            model.set_state(self._model.get_state())
            self._model = model
            if (self.best_loss_ is None) != bool(self.early_stopping):  # early_stopping turned on or off
                self._start_record()
        elif new_rate:
            self._continue_with_new_rate()
        return X, T, batch

    def _train(self, X, T, batch, X_val, y_val):
        """Epochs until ``max_iter`` or scikit-learn's stopping rule; with early stopping, the
        best epoch's parameters are put back at the end."""
        best_params = None
        done = 0
        while done < self.max_iter:
            # No stopping test can end training before the count passes n_iter_no_change:
            # the epochs until then run as one compiled call (the test is applied after each).
            if self.early_stopping:
                chunk = 1  # the validation score needs each epoch's parameters
            else:
                chunk = max(1, self.n_iter_no_change + 1 - self._no_improvement_count)
            chunk = min(chunk, self.max_iter - done)
            losses = self._epochs(X, T, batch, chunk)
            done += chunk
            stop = False
            for i, loss in enumerate(losses):
                if self.early_stopping:
                    score = self._validation_score(X_val, y_val)
                    self.validation_scores_.append(score)
                    if score > self.best_validation_score_:
                        best_params = self._model._params_ext.copy()  # (with batch norm's running averages)
                    self._count_no_improvement(-score, -self.best_validation_score_)
                    self.best_validation_score_ = max(self.best_validation_score_, score)
                else:
                    self._count_no_improvement(loss, self.best_loss_)
                    self.best_loss_ = min(self.best_loss_, loss)
                if self.verbose:
                    extra = f", validation score = {self.validation_scores_[-1]:.8f}" if self.early_stopping else ""
                    print(f"Iteration {self.n_iter_ - len(losses) + 1 + i}, loss = {loss:.8f}{extra}")
                if self._no_improvement_count > self.n_iter_no_change:
                    stop = True
            if stop:
                if self.verbose:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol} for {self.n_iter_no_change} "
                          "consecutive epochs. Stopping.")
                break
        else:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning)
        if best_params is not None:
            with self._model._exclusive():
                self._model._params_ext[...] = best_params

    def _count_no_improvement(self, value, best):
        """scikit-learn's rule: an epoch whose value is not below ``best - tol`` counts."""
        if value > best - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0

    def _epochs(self, X, T, batch, count):
        """``count`` epochs in one compiled call; their losses (a list)."""
        history = self._model.fit(X, T, epochs=count, batch_size=batch, shuffle=bool(self.shuffle),
                                  lr_schedule=self.lr_schedule)
        losses = [float(v) for v in history]
        self.loss_curve_.extend(losses)
        self.loss_ = losses[-1]
        self.n_iter_ += len(losses)
        self.t_ += X.shape[0] * len(losses)
        return losses

    def _network_output(self, X):
        check_is_fitted(self, "_model")
        X = validate_data(self, X, accept_sparse=False, dtype=(np.float64, np.float32), reset=False)
        return self._model.predict(np.ascontiguousarray(X, dtype=self._model.dtype))


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained by fastbp (scikit-learn's estimator API).

    Binary targets train one sigmoid output with binary cross-entropy, multi-class targets a
    softmax output with cross-entropy, multi-label indicator matrices one sigmoid output per
    label. Labels may be integers, strings or booleans.

    Parameters are those of ``sklearn.neural_network.MLPClassifier`` with the same meaning and
    defaults, except where the module docstring says otherwise; fastbp's own:

    dtype : None, "float32" or "float64"
        What fastbp computes in (None: float32 for float32 X, else float64).
    dropout : float or list of float
        Inverted dropout rate per hidden layer.
    batch_norm : bool or list of bool
        Batch normalisation per hidden layer.
    clip_norm : float or None
        Clip the global gradient norm to this before each update.
    lr_schedule : callable or None
        A ``fastbp.schedules`` schedule (or any callable of the epoch / step count).

    Attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (DataFrame input),
    ``n_iter_``, ``t_``, ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``,
    ``best_validation_score_``, ``coefs_``, ``intercepts_``, ``n_layers_``, ``n_outputs_``,
    ``out_activation_``.
    """

    _split_stratified = True
    _y_numeric = False
    _unsupported = {**_UNSUPPORTED_PARAMS,
                    "class_weight": "does not support class_weight yet (fastbp trains with an unweighted loss); "
                                    "to balance the classes, resample the training rows"}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = False
        return tags

    def _encode_targets(self, y, first, incremental, classes):
        """The labels checked as scikit-learn checks them and encoded; ``first``: learn the
        classes (from ``classes`` when given: partial_fit's first call)."""
        check_classification_targets(y)
        multilabel = type_of_target(y).startswith("multilabel")
        if incremental and first and classes is None and not multilabel:
            raise ValueError("classes must be passed on the first call to partial_fit")
        if incremental and not first and classes is not None \
                and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to partial_fit "
                             f"({self.classes_!r})")
        if first:
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if classes is None else classes)
            self.classes_ = self._label_binarizer.classes_
            if len(self.classes_) < 2 and not self._label_binarizer.y_type_.startswith("multilabel"):
                raise ValueError(f"MLPClassifier needs at least 2 classes to train; y has 1 class "
                                 f"({self.classes_[0]!r})")
        elif multilabel != self._multilabel:
            raise ValueError("y is multi-label (an indicator matrix) in one call and not in the other")
        labels = unique_labels(y)
        if incremental and (not first or classes is not None):
            # partial_fit trains the classes it was given: a label outside them has no output
            if len(np.setdiff1d(labels, self.classes_)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {labels}.")
        elif not first and set(labels) != set(self.classes_):  # a warm start: the classes of its first fit
            raise ValueError("warm_start can only be used where `y` has the same classes as in the previous call "
                             f"to fit. Previously got {self.classes_}, `y` has {labels}")
        self._multilabel = self._label_binarizer.y_type_.startswith("multilabel")
        if self._multilabel:
            return np.ascontiguousarray(self._label_binarizer.transform(y), dtype=np.float64)
        if len(self.classes_) == 2:  # one sigmoid output: the second class's probability
            return (np.asarray(y) == self.classes_[1]).astype(np.float64).reshape(-1, 1)
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _output_and_loss(self):
        if self._multilabel or len(self.classes_) == 2:
            return "sigmoid", "binary_cross_entropy"
        return "softmax", "cross_entropy"

    def _decode(self, codes):
        """Encoded targets (as ``_encode_targets`` makes them) back to the labels."""
        if self._multilabel:
            return codes
        if codes.ndim == 2:  # binary: one column
            return self.classes_[(codes[:, 0] > 0.5).astype(int)]
        return self.classes_[codes]

    def _validation_score(self, X, y):
        return accuracy_score(y, self.predict(X))

    def fit(self, X, y, **fit_params):
        """Fit the model to data matrix X and targets y (labels, or a multi-label indicator
        matrix). Returns self. ``sample_weight`` is not supported yet (only None)."""
        return self._fit(X, y, incremental=False, fit_params=fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """One epoch over (X, y) (scikit-learn's one iteration). ``classes``: every label the
        calls will see, required on the first call (not for multi-label indicator targets).
        ``sample_weight`` is not supported yet (only None)."""
        return self._fit(X, y, incremental=True, fit_params=fit_params, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, ``(n_samples, n_classes)`` in the order of ``classes_`` (for
        multi-label targets: each label's probability)."""
        P = self._network_output(X).astype(np.float64, copy=False)
        if not self._multilabel and len(self.classes_) == 2:
            return np.hstack([1 - P, P])
        return P

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted labels (a multi-label indicator matrix for multi-label targets)."""
        P = self._network_output(X)
        if self._multilabel:
            return (P > 0.5).astype(int)
        if len(self.classes_) == 2:
            return self.classes_[(P[:, 0] > 0.5).astype(int)]
        return self.classes_[P.argmax(axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor trained by fastbp (scikit-learn's estimator API):
    linear outputs and the mean squared error, one output per target column.

    Parameters and attributes as ``MLPClassifier``'s (without ``classes_``), with scikit-learn's
    ``MLPRegressor`` defaults; the module docstring lists the differences.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = False
        return tags

    def _encode_targets(self, y, first, incremental, classes=None):
        T = np.asarray(y, dtype=np.float64)
        if first:
            self._y_1d = T.ndim == 1
        n = 1 if T.ndim == 1 else T.shape[1]
        if not first and n != self.n_outputs_:
            raise ValueError(f"y has {n} outputs but this model was fitted with {self.n_outputs_}")
        return T.reshape(-1, 1) if T.ndim == 1 else T

    def _decode(self, T):
        return T[:, 0] if self._y_1d else T

    def _output_and_loss(self):
        return "linear", "mse"

    def _validation_score(self, X, y):
        return r2_score(y, self.predict(X))

    def fit(self, X, y, **fit_params):
        """Fit the model to data matrix X and target(s) y. Returns self. ``sample_weight``
        is not supported yet (only None)."""
        return self._fit(X, y, incremental=False, fit_params=fit_params)

    def partial_fit(self, X, y, **fit_params):
        """One epoch over (X, y) (scikit-learn's one iteration). Returns self.
        ``sample_weight`` is not supported yet (only None)."""
        return self._fit(X, y, incremental=True, fit_params=fit_params)

    def predict(self, X):
        """Predicted values, ``(n_samples,)`` for a 1-D target, else ``(n_samples, n_outputs)``."""
        P = self._network_output(X).astype(np.float64, copy=False)
        return P[:, 0] if self._y_1d else P

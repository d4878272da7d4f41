"""``fastbp.sklearn``: scikit-learn's own conformance checks, and the estimators' behaviour
next to ``sklearn.neural_network`` and ``fastbp.MLP``."""

import pickle
import re

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is an optional extra: pip install 'fastbp[sklearn]'")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Checks expected to fail, with the reason (scikit-learn marks them xfail, so a check that
# starts passing is reported as XPASS): none.
EXPECTED_FAILED = {}
# Checks scikit-learn itself skips (pytest reports them as skipped), 3 of 112 with
# scikit-learn 1.9.1:
# - check_array_api_input (both estimators): runs only with SCIPY_ARRAY_API=1, for estimators
#   that take Array API inputs; these take NumPy arrays (their array_api_support tag is False).
# - check_classifiers_multilabel_output_format_decision_function: MLPClassifier has no
#   decision_function (neither has scikit-learn's).


def expected_failed_checks(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@pytest.mark.slow
@parametrize_with_checks([MLPClassifier(random_state=0), MLPRegressor(random_state=0)],
                         expected_failed_checks=expected_failed_checks)
def test_scikit_learn_conformance(estimator, check):
    check(estimator)


def test_feature_names_of_a_dataframe_are_checked():
    pytest.importorskip("pandas", reason="pandas is a test dependency: pip install 'fastbp[test]'")
    from sklearn.utils.estimator_checks import check_dataframe_column_names_consistency
    for est in (MLPClassifier(random_state=0, max_iter=5), MLPRegressor(random_state=0, max_iter=5)):
        check_dataframe_column_names_consistency(type(est).__name__, est)


# --------------------------------------------------------------------------- behaviour
import subprocess  # noqa: E402
import sys  # noqa: E402

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastbp  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def classification(n=200, classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=8, n_informative=5, n_classes=classes, random_state=seed)
    return X, y


def test_import_fastbp_does_not_import_scikit_learn():
    code = "import sys, fastbp; assert 'sklearn' not in sys.modules, 'fastbp imported scikit-learn'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("solver", ["adam", "sgd", "rmsprop", "adamw", "adagrad"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_is_fastbp_fit_with_the_mapped_settings(solver, dtype):
    """With the stopping test out of reach, ``fit`` gives bit for bit the weights of
    ``fastbp.MLP.fit`` with the documented mapping (l2 = alpha / batch, Glorot init, the
    seed drawn from random_state)."""
    X, y = classification()
    est = MLPClassifier((16, 8), solver=solver, alpha=1e-3, batch_size=32, max_iter=7, n_iter_no_change=100,
                        random_state=3, dtype=dtype).fit(X, y)
    seed = int(np.random.RandomState(3).randint(0, 2**31 - 1))
    opt = {"adam": fastbp.Adam(1e-3), "sgd": fastbp.SGD(1e-3, momentum=0.9, nesterov=True),
           "rmsprop": fastbp.RMSprop(1e-3), "adamw": fastbp.AdamW(1e-3), "adagrad": fastbp.AdaGrad(1e-3)}[solver]
    model = fastbp.MLP([8, 16, 8, 3], activation="relu", output="softmax", loss="cross_entropy", optimizer=opt,
                       init="xavier", dtype=dtype, seed=seed, l2=1e-3 / 32)
    history = model.fit(X.astype(dtype), y, epochs=7, batch_size=32)
    assert est.n_iter_ == 7 and est.loss_curve_ == list(history)
    for (W, b), W_est, b_est in zip(model.get_weights(), est.coefs_, est.intercepts_):
        assert np.array_equal(W, W_est) and np.array_equal(b, b_est)
    assert np.array_equal(est.predict_proba(X), model.predict(X.astype(dtype)).astype(np.float64))


def replay_stopping(values, tol, patience, higher_is_better=False):
    """scikit-learn's stopping rule replayed on per-epoch values: the epoch (1-based) it stops
    after, or None."""
    best, count = (-np.inf if higher_is_better else np.inf), 0
    for epoch, v in enumerate(values, 1):
        v = -v if higher_is_better else v
        b = -best if higher_is_better else best
        count = count + 1 if v > b - tol else 0
        best = max(best, -v) if higher_is_better else min(best, v)
        if count > patience:
            return epoch
    return None


@pytest.mark.parametrize("patience", [1, 3, 10])
def test_training_loss_stopping_follows_scikit_learn(patience):
    X, y = classification()
    est = MLPClassifier((8,), learning_rate_init=0.05, tol=1e-3, n_iter_no_change=patience, max_iter=300,
                        random_state=0).fit(X, y)
    assert est.n_iter_ < 300, "the rule never stopped: the test shows nothing"
    assert replay_stopping(est.loss_curve_, 1e-3, patience) == est.n_iter_
    assert est.best_loss_ == min(est.loss_curve_)


class Recording(MLPClassifier):
    """Keeps a copy of the parameters at each validation score (a test double)."""

    def _validation_score(self, X, y):
        self.snapshots_ = getattr(self, "snapshots_", []) + [self._model._params_ext.copy()]
        return super()._validation_score(X, y)


def test_early_stopping_keeps_the_best_epoch():
    X, y = classification(400)
    est = Recording((8,), learning_rate_init=0.05, early_stopping=True, n_iter_no_change=3, tol=0.0,
                    max_iter=200, random_state=1).fit(X, y)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_ < 200 and est.best_loss_ is None
    assert replay_stopping(scores, 0.0, 3, higher_is_better=True) == est.n_iter_
    best = int(np.argmax(scores))  # the first best epoch
    assert est.best_validation_score_ == scores[best]
    assert best < len(scores) - 1, "the last epoch was the best: nothing to restore"
    assert np.array_equal(est._model._params_ext, est.snapshots_[best])


def test_partial_fit_is_one_epoch_at_a_time():
    X, y = classification()
    a = MLPClassifier((8,), random_state=0, batch_size=50)
    for _ in range(4):
        a.partial_fit(X, y, classes=np.unique(y))
    b = MLPClassifier((8,), random_state=0, batch_size=50, max_iter=4, n_iter_no_change=100).fit(X, y)
    assert a.n_iter_ == 4 and a.loss_curve_ == b.loss_curve_
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)


def test_warm_start_trains_the_fitted_weights_with_the_parameters_as_they_are_now():
    """As scikit-learn's: each fit makes a new optimizer from the current parameters and reads
    random_state again; a warm start keeps the weights and the record. Here the solver,
    learning rate, momentum, alpha, clip_norm and dropout all change: the second fit is a
    fastbp.MLP with those settings, started from the first fit's weights."""
    X, y = classification()
    est = MLPClassifier((8,), batch_size=32, max_iter=3, n_iter_no_change=100, warm_start=True, random_state=4)
    est.fit(X, y)
    fitted = list(zip(est.coefs_, est.intercepts_))
    est.set_params(solver="sgd", learning_rate_init=0.05, momentum=0.5, nesterovs_momentum=False, alpha=1e-2,
                   clip_norm=1.0, dropout=0.5)
    est.fit(X, y)
    seed = int(np.random.RandomState(4).randint(0, 2**31 - 1))  # random_state read again, as at the first fit
    model = fastbp.MLP([8, 8, 3], activation="relu", output="softmax", loss="cross_entropy",
                       optimizer=fastbp.SGD(0.05, momentum=0.5), init="xavier", dtype="float64", seed=seed,
                       l2=1e-2 / 32, clip_norm=1.0, dropout=0.5)
    model.set_weights(fitted)
    history = model.fit(X, y, epochs=3, batch_size=32)
    assert est.n_iter_ == 6 and est.t_ == 6 * len(X) and est.loss_curve_[3:] == list(history)
    for (W, b), W_est, b_est in zip(model.get_weights(), est.coefs_, est.intercepts_):
        assert np.array_equal(W, W_est) and np.array_equal(b, b_est)


def test_a_warm_start_applies_a_new_learning_rate():
    """scikit-learn's weights move ~1e-12 per step after learning_rate_init=1e-12 (before, fastbp
    went on at the old rate)."""
    X, y = classification()
    est = MLPClassifier((8,), max_iter=3, n_iter_no_change=100, warm_start=True, random_state=0).fit(X, y)
    before = est.coefs_
    est.set_params(learning_rate_init=1e-12).fit(X, y)
    moved = max(np.abs(W - W0).max() for W, W0 in zip(est.coefs_, before))
    assert 0 < moved < 1e-10


def test_a_warm_start_can_turn_early_stopping_on_and_off():
    X, y = classification(300)
    est = MLPClassifier((8,), max_iter=3, n_iter_no_change=100, warm_start=True, random_state=0).fit(X, y)
    est.set_params(early_stopping=True).fit(X, y)
    assert est.n_iter_ == 6 and len(est.validation_scores_) == 3 and est.best_loss_ is None
    est.set_params(early_stopping=False).fit(X, y)
    assert est.n_iter_ == 9 and est.validation_scores_ is None and est.best_loss_ == min(est.loss_curve_[6:])


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("params, fitted", [
    (dict(hidden_layer_sizes=(3, 3)), "(8,)"),
    (dict(hidden_layer_sizes=(4,)), "(8,)"),
    (dict(activation="tanh"), "'relu'"),
    (dict(batch_norm=True), "False"),
    (dict(dtype="float32"), "float64"),
])
def test_a_continuation_refuses_another_network_by_name(method, params, fitted):
    """A warm start and a later partial_fit go on training the fitted network: a parameter
    that would need another one is refused by name, and nothing changes."""
    X, y = classification()
    est = MLPClassifier((8,), max_iter=2, warm_start=True, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    name, value = next(iter(params.items()))
    est.set_params(**params)
    with pytest.raises(ValueError, match=rf"^MLPClassifier\.{method}.* goes on training the fitted network, and "
                                         rf"{name}={re.escape(repr(value))} \(fitted (with|in) {re.escape(fitted)}\) "
                                         r"would need a new one"):
        getattr(est, method)(X, y)
    assert est.n_iter_ == 2 and np.array_equal(est.predict_proba(X), before)
    est.set_params(warm_start=False).fit(X, y)  # a new network
    assert est.n_iter_ == 2


def test_a_continuation_takes_the_same_network_however_it_is_written():
    X, y = classification()
    est = MLPClassifier((8,), activation="logistic", max_iter=2, warm_start=True, random_state=0).fit(X, y)
    est.set_params(hidden_layer_sizes=8, activation="sigmoid", dtype="float64", momentum=0.5).fit(X, y)
    est.partial_fit(X, y)
    assert est.n_iter_ == 5


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_continuation_refuses_another_number_of_outputs(method):
    X, Y = make_regression(100, 4, n_targets=2, random_state=0)
    reg = MLPRegressor((4,), max_iter=2, warm_start=True, random_state=0).fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="y has 2 outputs but this model was fitted with 1"):
        getattr(reg, method)(X, Y)
    assert reg.n_iter_ == 2


def test_partial_fit_takes_a_new_learning_rate_and_refuses_the_other_settings_by_name():
    """partial_fit goes on with the model's optimizer, as scikit-learn's does: a new
    learning_rate_init applies to it; solver, alpha, ... (which fit with warm_start applies) are
    refused by name. (Before, partial_fit went on with the old ones silently.)"""
    X, y = classification()
    est = MLPClassifier((8,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    before = est.coefs_
    est.set_params(learning_rate_init=1e-12).partial_fit(X, y)
    assert 0 < max(np.abs(W - W0).max() for W, W0 in zip(est.coefs_, before)) < 1e-10
    for params, listed in [(dict(solver="sgd"), "solver='sgd' (fitted with 'adam')"),
                           (dict(alpha=10.0), "alpha=10.0 (fitted with 0.0001)"),
                           (dict(beta_1=0.5, epsilon=1e-4),
                            "beta_1=0.5 (fitted with 0.9), epsilon=0.0001 (fitted with 1e-08)"),
                           (dict(dropout=0.5), "dropout=0.5 (fitted with 0.0)"),
                           (dict(clip_norm=1.0), "clip_norm=1.0 (fitted with None)")]:
        est2 = clone(est).partial_fit(X, y, classes=[0, 1, 2])
        est2.set_params(**params)
        with pytest.raises(ValueError, match=r"^MLPClassifier\.partial_fit goes on with the fitted model's optimizer "
                                             r"and settings .*, and " + re.escape(listed)
                                             + " changed since it was built: fit with warm_start=True applies them"):
            est2.partial_fit(X, y)
        assert est2.n_iter_ == 1
        est2.set_params(warm_start=True).fit(X, y)  # applies them
    est.set_params(momentum=0.1, nesterovs_momentum=False).partial_fit(X, y)  # nothing to Adam


def test_partial_fit_refuses_early_stopping_as_scikit_learn_does():
    X, y = classification()
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([3, 7, 11]), np.array([False, True])])
def test_labels_of_any_kind(labels):
    X, y = classification(classes=len(labels))
    y_labels = labels[y]
    est = MLPClassifier((16,), random_state=0, max_iter=200, learning_rate_init=0.01).fit(X, y_labels)
    assert list(est.classes_) == sorted(labels)
    assert set(est.predict(X)) <= set(labels) and est.score(X, y_labels) > 0.7
    P = est.predict_proba(X)
    assert P.shape == (len(X), len(labels)) and np.allclose(P.sum(axis=1), 1)
    assert np.allclose(np.exp(est.predict_log_proba(X)), P)
    assert est.out_activation_ == ("logistic" if len(labels) == 2 else "softmax")


def test_multilabel_and_multioutput():
    X, y = classification()
    Y = np.stack([y == 0, y == 1, y >= 1], axis=1).astype(int)
    est = MLPClassifier((16,), random_state=0, max_iter=80, batch_size=32).fit(X, Y)
    assert est.predict(X).shape == Y.shape and est.predict_proba(X).shape == Y.shape
    assert est.out_activation_ == "logistic" and est.score(X, Y) > 0.5
    X, Y = make_regression(200, 6, n_targets=2, random_state=0)
    reg = MLPRegressor((32,), random_state=0, max_iter=200, learning_rate_init=0.01).fit(X, Y / 100)
    assert reg.predict(X).shape == (200, 2) and reg.score(X, Y / 100) > 0.8
    reg1 = MLPRegressor((32,), random_state=0, max_iter=5).fit(X, Y[:, 0])
    assert reg1.predict(X).shape == (200,)


def test_pipeline_grid_search_cross_validation_clone_pickle():
    X, y = classification(300)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), random_state=0, max_iter=30, batch_size=32))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.6
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__solver": ["adam", "rmsprop"]},
                        cv=2, n_jobs=2).fit(X, y)
    assert grid.best_score_ > 0.45  # (chance: 1/3)
    twin = clone(grid.best_estimator_)
    assert twin.get_params()["mlpclassifier__alpha"] == grid.best_params_["mlpclassifier__alpha"]
    restored = pickle.loads(pickle.dumps(grid.best_estimator_))
    assert np.array_equal(restored.predict_proba(X), grid.best_estimator_.predict_proba(X))


@pytest.mark.parametrize("params, match", [
    (dict(solver="lbfgs"), "lbfgs is not supported"),
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(activation="softplus"), "activation"),
    (dict(batch_size=0), "batch_size"),
    (dict(max_iter=0), "max_iter"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(early_stopping=True, validation_fraction=1.0), "validation_fraction"),
    (dict(dtype="float16"), "dtype"),
    (dict(clip_norm=1e-320, dtype="float64"), "clip_norm: 1e-320 underflows in float64"),
    (dict(clip_norm=1e-40, dtype="float32"), "clip_norm: 1e-40 underflows in float32"),
    (dict(lr_schedule=lambda t: 1e39, dtype="float32"), r"lr_schedule returned 1e\+39, which overflows to inf in float32"),
])
def test_bad_parameters_are_named(params, match):
    X, y = classification()
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_one_class_is_refused_and_unseen_labels_too():
    X, y = classification()
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier().fit(X, np.zeros(len(X), dtype=int))
    est = MLPClassifier((8,), max_iter=2).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        est.partial_fit(X, np.where(y == 2, 5, y))


# ----------------------------------------------------------------- unsupported arguments
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("name, value, match", [
    ("learning_rate", "adaptive", "has no learning_rate: rates other than a constant one come as lr_schedule"),
    ("power_t", 0.5, "has no power_t"),
    ("max_fun", 15000, "has no max_fun: it bounds the lbfgs solver"),
])
def test_scikit_learns_parameters_fastbp_lacks_are_refused_by_name(cls, name, value, match):
    with pytest.raises(TypeError, match=f"^{cls.__name__} {match}"):
        cls(**{name: value})


def test_class_weight_is_refused_with_the_reason():
    with pytest.raises(TypeError, match=r"^MLPClassifier does not support class_weight yet \(fastbp trains with an "
                                        r"unweighted loss\)"):
        MLPClassifier(class_weight="balanced")


@pytest.mark.parametrize("cls, args, kwargs, match", [
    (MLPClassifier, (), dict(hidden_layer_size=(8,)), "got an unexpected keyword argument 'hidden_layer_size'"),
    (MLPRegressor, (), dict(hidden_layer_size=(8,)), "got an unexpected keyword argument 'hidden_layer_size'"),
    (MLPRegressor, (), dict(class_weight="balanced"), "got an unexpected keyword argument 'class_weight'"),
    (MLPClassifier, ((8,), "relu", "adam"), {}, "too many positional arguments"),
    (MLPRegressor, ((8,), "relu", "adam"), {}, "too many positional arguments"),
])
def test_unknown_arguments_name_the_public_class(cls, args, kwargs, match):
    with pytest.raises(TypeError, match=f"^{cls.__name__}\\(\\): {match}$") as info:
        cls(*args, **kwargs)
    assert "_BaseMLP" not in str(info.value)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_sample_weight_is_refused_by_name_and_none_is_accepted(cls, method):
    X, y = classification(60)
    classes = {"classes": np.unique(y)} if cls is MLPClassifier and method == "partial_fit" else {}
    est = cls((4,), max_iter=2, random_state=0)
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\.{method} does not support sample_weight yet "
                                        r"\(fastbp trains with an unweighted loss\)"):
        getattr(est, method)(X, y, sample_weight=np.ones(len(X)), **classes)
    assert not hasattr(est, "n_iter_")  # refused before anything was trained
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\.{method}\(\) got an unexpected keyword argument 'epochs'"):
        getattr(est, method)(X, y, epochs=3, **classes)
    weighted = getattr(clone(est), method)(X, y, sample_weight=None, **classes)  # as meta-estimators pass it
    plain = getattr(clone(est), method)(X, y, **classes)
    assert weighted.loss_curve_ == plain.loss_curve_


def test_refusing_arguments_leaves_the_estimator_contract_alone():
    """The check sits outside ``__init__``: its signature (and the class's) is still the
    explicit parameters scikit-learn's get_params and clone read, and fit shows no
    sample_weight parameter (which would make scikit-learn's checks expect it to work)."""
    import inspect
    from sklearn.utils.validation import has_fit_parameter
    for cls in (MLPClassifier, MLPRegressor):
        est = cls((8,), alpha=1e-3)
        assert not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
        assert list(inspect.signature(cls).parameters) == list(inspect.signature(cls.__init__).parameters)[1:]
        assert clone(est).get_params() == est.get_params() and est.get_params()["alpha"] == 1e-3
        assert not has_fit_parameter(est, "sample_weight")
        restored = pickle.loads(pickle.dumps(est))
        assert restored.get_params() == est.get_params()


# ------------------------------------------------------------ labels a continuation cannot take
@pytest.mark.parametrize("classes, y", [
    ([0, 1], [0, 1, 2, 0, 1, 2]),
    (["a", "b"], ["a", "b", "c", "a", "b", "c"]),
    ([0, 1, 2], [0, 1, 3, 0, 1, 2]),
])
def test_partial_fit_refuses_labels_not_in_classes_on_the_first_call(classes, y):
    """scikit-learn's rule and message; before, a label outside ``classes`` was trained as one
    of them (2 as class 0, 'c' as 'a'). Nothing is fitted by the refused call."""
    X = np.random.RandomState(0).normal(size=(len(y), 4))
    est = MLPClassifier((4,), random_state=0)
    with pytest.raises(ValueError, match=r"^`y` has classes not in `self.classes_`"):
        est.partial_fit(X, np.array(y), classes=classes)
    assert not hasattr(est, "classes_") and not hasattr(est, "n_iter_") and not hasattr(est, "n_features_in_")


def test_later_partial_fits_and_warm_starts_refuse_other_classes_as_scikit_learn_does():
    X, y = classification()
    est = MLPClassifier((8,), max_iter=2, random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    before = est.predict_proba(X)
    with pytest.raises(ValueError, match=r"^`y` has classes not in `self.classes_`"):
        est.partial_fit(X, np.where(y == 2, 5, y))
    assert est.n_iter_ == 1 and np.array_equal(est.predict_proba(X), before)
    est.partial_fit(X[y < 2], y[y < 2])  # a subset of the classes: fine in partial_fit
    warm = MLPClassifier((8,), max_iter=2, random_state=0, warm_start=True).fit(X, y)
    for other in (np.where(y == 2, 5, y), np.where(y == 2, 0, y)):  # a new class; one class fewer
        with pytest.raises(ValueError, match=r"^warm_start can only be used where `y` has the same classes as in "
                                             r"the previous call to fit"):
            warm.fit(X, other)
    assert warm.n_iter_ == 2


# ----------------------------------------------------------------------- threads
import threading  # noqa: E402


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_calls_while_another_thread_fits_are_refused_and_the_fit_goes_on_untouched(cls):
    """One estimator, one fit at a time: a fit, partial_fit or set_params from another thread
    raises RuntimeError naming the estimator (before, a second fit shared the first's model
    and counters, and set_params(early_stopping=True) crashed it). The overlap is made
    certain by an lr_schedule that holds the first fit inside its training until released."""
    X, y = classification()
    inside, release = threading.Event(), threading.Event()

    def schedule(epoch):
        if not inside.is_set():  # the first call only: the first fit's first epoch
            inside.set()
            release.wait(60)
        return 1e-3

    est = cls((8,), max_iter=5, n_iter_no_change=100, random_state=0, lr_schedule=schedule)
    errors = []

    def fit():
        try:
            est.fit(X, y)
        except BaseException as exc:  # (reported below, in the test's thread)
            errors.append(exc)

    thread = threading.Thread(target=fit)
    thread.start()
    try:
        assert inside.wait(60), "the fit never started training"
        classes = {"classes": np.unique(y)} if cls is MLPClassifier else {}
        for method, call in [("fit", lambda: est.fit(X, y)), ("partial_fit", lambda: est.partial_fit(X, y, **classes)),
                             ("set_params", lambda: est.set_params(early_stopping=True))]:
            with pytest.raises(RuntimeError, match=rf"^{cls.__name__}\.{method}: this estimator is being fitted or "
                                                   r"changed in another thread"):
                call()
    finally:
        release.set()
        thread.join(60)
    assert not thread.is_alive() and not errors
    assert est.n_iter_ == 5 and est.early_stopping is False
    assert est.loss_curve_ == clone(est).fit(X, y).loss_curve_  # as if it had been alone


def test_the_estimators_lock_is_its_own_and_released_however_a_call_ends():
    import copy
    X, y = classification()
    est = MLPClassifier((8,), max_iter=2, random_state=0)
    with pytest.raises(ValueError, match="max_iter"):
        est.set_params(max_iter=0).fit(X, y)
    est.set_params(max_iter=2).fit(X, y)
    for twin in (clone(est), pickle.loads(pickle.dumps(est)), copy.deepcopy(est), copy.copy(est)):
        assert twin._busy is not est._busy
        twin.set_params(max_iter=3).fit(X, y)
    assert est.max_iter == 2

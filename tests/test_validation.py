"""Bad input is refused with a ValueError / TypeError naming the problem, before anything
changes; good input of any numeric dtype and memory layout is accepted and converted, with
the same results as the canonical C-ordered float array.  Both implementations."""

import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
import fastbp.schedules

N = 6
X_GOOD = np.linspace(-1, 1, N * 3).reshape(N, 3)
LABELS = np.array([0, 1, 2, 0, 1, 2])
ONE_HOT = np.eye(3)[LABELS]

MODELS = {
    "ce": dict(sizes=[3, 4, 3], output="softmax", loss="cross_entropy"),
    "bce": dict(sizes=[3, 4, 2], output="sigmoid", loss="binary_cross_entropy"),
    "mse": dict(sizes=[3, 4, 2], output="linear", loss="mse"),
}
GOOD_Y = {"ce": LABELS, "bce": (ONE_HOT[:, :2] > 0).astype(float), "mse": np.linspace(-2, 2, N * 2).reshape(N, 2)}


def make(fb, kind="ce", **kw):
    cfg = dict(MODELS[kind])
    return fb.MLP(cfg.pop("sizes"), activation="tanh", optimizer=fb.Adam(0.01), dtype="float64", seed=0,
                  **cfg, **kw)


def with_value(a, index, value, dtype=float):
    a = np.array(a, dtype=dtype)
    a[index] = value
    return a


def assert_same_weights(a, b):
    for (Wa, ba), (Wb, bb) in zip(a, b):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def assert_rejected_and_unchanged(fb, kind, call, exc, match):
    """``call(model)`` raises ``exc`` matching ``match``; afterwards the model's weights are
    unchanged and it trains exactly like a twin that never saw the bad call (so neither the
    optimizer state, nor the step count, nor the shuffle generator moved)."""
    model, twin = make(fb, kind), make(fb, kind)
    before = model.get_weights()
    with pytest.raises(exc, match=match):
        call(model)
    assert_same_weights(model.get_weights(), before)
    y = GOOD_Y[kind]
    assert model.fit(X_GOOD, y, epochs=2, batch_size=4) == twin.fit(X_GOOD, y, epochs=2, batch_size=4)
    assert model.train_step(X_GOOD, y) == twin.train_step(X_GOOD, y)
    assert_same_weights(model.get_weights(), twin.get_weights())


# ---------------------------------------------------------------- bad X
BAD_X = {
    "too-many-features": (np.zeros((N, 4)), ValueError, "4 features but the model expects 3"),
    "too-few-features": (np.zeros((N, 2)), ValueError, "2 features but the model expects 3"),
    "1-D": (X_GOOD[:, 0], ValueError, r"2-D.*one sample and X\.reshape\(-1, 1\) samples of one feature.*"
                                        r"3 features per sample and X has 6 values"),
    "3-D": (X_GOOD.reshape(N, 3, 1), ValueError, "2-D"),
    "0-D": (np.float64(1.0), ValueError, "2-D"),
    "empty": (np.zeros((0, 3)), ValueError, "empty"),
    "nan": (with_value(X_GOOD, (2, 1), np.nan), ValueError, "X contains NaN or inf"),
    "inf": (with_value(X_GOOD, (0, 0), np.inf), ValueError, "X contains NaN or inf"),
    "-inf": (with_value(X_GOOD, (5, 2), -np.inf), ValueError, "X contains NaN or inf"),
    "nan-float32": (with_value(X_GOOD, (1, 1), np.nan, np.float32), ValueError, "NaN or inf"),
    "strings": (X_GOOD.astype(str), TypeError, "X must be numeric"),
    "bytes": (X_GOOD.astype(bytes), TypeError, "X must be numeric"),
    "object": (X_GOOD.astype(object), TypeError, "X must be numeric"),
    "complex": (X_GOOD.astype(complex), TypeError, "X must be numeric"),
    "datetime": (np.zeros((N, 3), dtype="datetime64[s]"), TypeError, "X must be numeric"),
    "none": (None, TypeError, "X must be numeric"),
    "ragged": ([[1.0, 2.0, 3.0], [1.0, 2.0]], ValueError, "X could not be read"),
}
X_METHODS = {
    "fit": lambda m, X: m.fit(X, LABELS),
    "train_step": lambda m, X: m.train_step(X, LABELS),
    "evaluate": lambda m, X: m.evaluate(X, LABELS),
    "score": lambda m, X: m.score(X, LABELS),
    "loss_and_grads": lambda m, X: m.loss_and_grads(X, LABELS),
    "predict": lambda m, X: m.predict(X),
    "predict_proba": lambda m, X: m.predict_proba(X),
    "predict_classes": lambda m, X: m.predict_classes(X),
}


@pytest.mark.parametrize("method", list(X_METHODS))
@pytest.mark.parametrize("problem", list(BAD_X))
def test_bad_X_is_rejected(fb, problem, method):
    X, exc, match = BAD_X[problem]
    assert_rejected_and_unchanged(fb, "ce", lambda m: X_METHODS[method](m, X), exc, match)


# A 1-D X: the hint follows the model (a row of its width is one sample; a one-input
# model takes a column; otherwise both readings, and why neither fits).
ONE_D_HINTS = {
    # (model inputs, length of X, must be in the message, must not be in it)
    "one-sample": (3, 3, "for one sample of the model's 3 features use X.reshape(1, -1)", "reshape(-1, 1)"),
    "one-feature": (1, 6, "for 6 samples of the model's single feature use X.reshape(-1, 1)", "reshape(1, -1)"),
    "one-feature-one-value": (1, 1, "use X.reshape(-1, 1)", "reshape(1, -1)"),
    "neither": (3, 5, "X.reshape(1, -1) would be one sample and X.reshape(-1, 1) samples of one feature, but this "
                      "model takes 3 features per sample and X has 5 values", None),
}
ONE_D_METHODS = {
    "fit": lambda m, X: m.fit(X, np.zeros(len(X), dtype=int)),
    "train_step": lambda m, X: m.train_step(X, np.zeros(len(X), dtype=int)),
    "evaluate": lambda m, X: m.evaluate(X, np.zeros(len(X), dtype=int)),
    "score": lambda m, X: m.score(X, np.zeros(len(X), dtype=int)),
    "loss_and_grads": lambda m, X: m.loss_and_grads(X, np.zeros(len(X), dtype=int)),
    "predict": lambda m, X: m.predict(X),
    "predict_proba": lambda m, X: m.predict_proba(X),
}


@pytest.mark.parametrize("method", list(ONE_D_METHODS))
@pytest.mark.parametrize("case", list(ONE_D_HINTS))
def test_a_1d_X_gets_the_hint_that_fits_the_model(fb, case, method):
    n_features, length, said, not_said = ONE_D_HINTS[case]
    model = fb.MLP([n_features, 4, 2], seed=0)
    with pytest.raises(ValueError, match=r"must be 2-D") as info:
        ONE_D_METHODS[method](model, np.linspace(-1, 1, length))
    assert said in str(info.value)
    assert not_said is None or not_said not in str(info.value)


# ---------------------------------------------------------------- bad y
BAD_Y = {
    # (model kind, y, exception, message)
    "shorter": ("ce", LABELS[:5], ValueError, "X has 6 samples but y has 5"),
    "longer": ("ce", np.append(LABELS, 0), ValueError, "X has 6 samples but y has 7"),
    "scalar": ("ce", 1, ValueError, "6 samples"),
    "nan-label": ("ce", with_value(LABELS, 3, np.nan), ValueError, "y contains NaN or inf"),
    "inf-one-hot": ("ce", with_value(ONE_HOT, (0, 0), np.inf), ValueError, "y contains NaN or inf"),
    "label-too-big": ("ce", with_value(LABELS, 4, 3, int), ValueError, r"class label 3 is outside \[0, 3\)"),
    "label-negative": ("ce", with_value(LABELS, 0, -1, int), ValueError, r"class label -1 is outside \[0, 3\)"),
    "label-huge": ("ce", with_value(LABELS, 0, 2**40, np.int64), ValueError, "outside"),
    "label-fraction": ("ce", with_value(LABELS, 2, 0.5), ValueError, "integer class indices"),
    "label-strings": ("ce", LABELS.astype(str), TypeError, "y must be numeric"),
    "label-object": ("ce", LABELS.astype(object), TypeError, "y must be numeric"),
    "label-complex": ("ce", LABELS.astype(complex), TypeError, "y must be numeric"),
    "one-hot-too-wide": ("ce", np.eye(4)[LABELS], ValueError,
                         re.escape("class labels of shape (6,) or (6, 1), or one-hot / probability rows of shape "
                                   "(6, 3); got shape (6, 4)")),
    "label-column-fraction": ("ce", with_value(LABELS, 2, 0.5).reshape(N, 1), ValueError, "integer class indices"),
    "label-column-too-big": ("ce", with_value(LABELS, 1, 3, int).reshape(N, 1), ValueError,
                             r"class label 3 is outside \[0, 3\)"),
    "mse-class-labels": ("mse", LABELS % 2, ValueError,
                         re.escape("loss 'mse' must be of shape (6, 2) (one target per output); got shape (6,); "
                                   "for class labels use loss='cross_entropy'")),
    "one-hot-3-D": ("ce", ONE_HOT[:, :, None], ValueError, "shape"),
    "one-hot-not-summing-to-1": ("ce", ONE_HOT * 0.5, ValueError, "summing to 1"),
    "one-hot-negative": ("ce", ONE_HOT * 2 - 0.5, ValueError, re.escape("[0, 1]")),
    "bce-above-1": ("bce", with_value(GOOD_Y["bce"], (1, 1), 1.5), ValueError, re.escape("targets must lie in [0, 1]")),
    "bce-negative": ("bce", with_value(GOOD_Y["bce"], (1, 0), -0.1), ValueError, re.escape("[0, 1]")),
    "bce-1-D-for-2-outputs": ("bce", GOOD_Y["bce"][:, 0], ValueError, r"shape \(6, 2\)"),
    "bce-wrong-width": ("bce", np.zeros((N, 3)), ValueError, r"shape \(6, 2\)"),
    "mse-wrong-width": ("mse", np.zeros((N, 1)), ValueError, r"shape \(6, 2\)"),
    "mse-nan": ("mse", with_value(GOOD_Y["mse"], (5, 1), np.nan), ValueError, "y contains NaN or inf"),
    "mse-strings": ("mse", GOOD_Y["mse"].astype(str), TypeError, "y must be numeric"),
}
Y_METHODS = {
    "fit": lambda m, y: m.fit(X_GOOD, y),
    "train_step": lambda m, y: m.train_step(X_GOOD, y),
    "evaluate": lambda m, y: m.evaluate(X_GOOD, y),
    "loss_and_grads": lambda m, y: m.loss_and_grads(X_GOOD, y),
}


@pytest.mark.parametrize("method", list(Y_METHODS))
@pytest.mark.parametrize("problem", list(BAD_Y))
def test_bad_y_is_rejected(fb, problem, method):
    kind, y, exc, match = BAD_Y[problem]
    assert_rejected_and_unchanged(fb, kind, lambda m: Y_METHODS[method](m, y), exc, match)


@pytest.mark.parametrize("method", list(Y_METHODS) + ["score"])
@pytest.mark.parametrize("labels", [LABELS.astype(str), np.array(["a", "b", "c"] * 2, dtype=object)],
                         ids=["str", "object"])
def test_string_labels_point_to_the_scikit_learn_classifier(fb, labels, method):
    call = Y_METHODS.get(method, lambda m, y: m.score(X_GOOD, y))
    assert_rejected_and_unchanged(fb, "ce", lambda m: call(m, labels), TypeError,
                                  r"y must be numeric.*use fastbp\.sklearn\.MLPClassifier, which accepts labels")


@pytest.mark.parametrize("y", [LABELS.astype(complex), LABELS.astype(bytes)])  # (scikit-learn refuses bytes labels)
def test_other_non_numeric_targets_get_no_label_hint(fb, y):
    with pytest.raises(TypeError, match="y must be numeric") as info:
        make(fb).fit(X_GOOD, y)
    assert "MLPClassifier" not in str(info.value)


# ------------------------------------------------------- bad fit arguments
BAD_FIT = {
    "batch_size=0": (dict(batch_size=0), "batch_size must be a positive integer"),
    "batch_size=-1": (dict(batch_size=-1), "batch_size"),
    "batch_size=2.5": (dict(batch_size=2.5), "batch_size"),
    "batch_size=True": (dict(batch_size=True), "batch_size"),
    "batch_size='8'": (dict(batch_size="8"), "batch_size"),
    "epochs=-1": (dict(epochs=-1), "epochs must be a non-negative integer"),
    "epochs=1.5": (dict(epochs=1.5), "epochs"),
    "epochs=None": (dict(epochs=None), "epochs"),
    "epochs='3'": (dict(epochs="3"), "epochs"),
    "on_nonfinite": (dict(on_nonfinite="ignore"), "on_nonfinite"),
}


@pytest.mark.parametrize("problem", list(BAD_FIT))
def test_bad_fit_arguments_are_rejected(fb, problem):
    kwargs, match = BAD_FIT[problem]
    assert_rejected_and_unchanged(fb, "ce", lambda m: m.fit(X_GOOD, LABELS, **kwargs), ValueError, match)


def test_zero_epochs_is_a_no_op(fb):
    model, twin = make(fb), make(fb)
    history = model.fit(X_GOOD, LABELS, epochs=0)
    assert list(history) == []
    assert_same_weights(model.get_weights(), twin.get_weights())
    assert model.fit(X_GOOD, LABELS, epochs=1, batch_size=2) == twin.fit(X_GOOD, LABELS, epochs=1, batch_size=2)


def test_predict_classes_needs_a_classifier(fb):
    assert_rejected_and_unchanged(fb, "mse", lambda m: m.predict_classes(X_GOOD), ValueError, "classification")


# -------------------------------------------------------- bad set_weights
def bad_weights():
    W0, b0 = np.ones((3, 4)), np.zeros(4)
    W1, b1 = np.ones((4, 3)), np.zeros(3)
    return {
        "too-few-layers": ([(W0, b0)], ValueError, "expected 2 .W, b. pairs, got 1"),
        "too-many-layers": ([(W0, b0), (W1, b1), (W1, b1)], ValueError, "expected 2"),
        "transposed-W": ([(W0.T, b0), (W1, b1)], ValueError, r"layer 0: expected W \(3, 4\)"),
        "wrong-b": ([(W0, b0), (W1, np.zeros(4))], ValueError, "layer 1"),
        "b-as-row": ([(W0, b0.reshape(1, 4)), (W1, b1)], ValueError, "layer 0"),
        "nan-in-second-layer": ([(W0, b0), (with_value(W1, (2, 2), np.nan), b1)], ValueError, "layer 1.*NaN"),
        "inf-bias": ([(W0, with_value(b0, 1, np.inf)), (W1, b1)], ValueError, "NaN or inf"),
        "string-W": ([(W0.astype(str), b0), (W1, b1)], TypeError, "numeric"),
        "complex-b": ([(W0, b0), (W1, b1.astype(complex))], TypeError, "numeric"),
        "not-a-pair": ([(W0, b0), (W1,)], ValueError, "layer 1"),
        "not-a-list": (None, TypeError, "weights"),
    }


@pytest.mark.parametrize("problem", list(bad_weights()))
def test_bad_set_weights_is_rejected(fb, problem):
    weights, exc, match = bad_weights()[problem]
    assert_rejected_and_unchanged(fb, "ce", lambda m: m.set_weights(weights), exc, match)


def test_set_weights_is_all_or_nothing(fb):
    """A valid first layer is not written when a later layer is bad."""
    model = make(fb)
    before = model.get_weights()
    new = [(W + 1, b + 1) for W, b in before]
    new[1] = (new[1][0], np.full(3, np.nan))
    with pytest.raises(ValueError, match="layer 1"):
        model.set_weights(new)
    assert_same_weights(model.get_weights(), before)


# ------------------------------------------------------ bad configuration
BAD_CONFIG = {
    "activation-name": (dict(activation="swish"), ValueError, "unknown activation 'swish'"),
    "activation-type": (dict(activation=3), TypeError, "activation"),
    "activation-none": (dict(activation=None), TypeError, "activation"),
    "activation-softmax-hidden": (dict(activation="softmax"), ValueError, "activation"),
    "activation-list-length": (dict(activation=["relu", "tanh"]), ValueError, "activation"),
    "activation-in-list": (dict(activation=["relu", "gelu"], sizes=[3, 4, 4, 3]), ValueError, "gelu"),
    "output-name": (dict(output="relu"), ValueError, "output activation"),
    "loss-name": (dict(loss="hinge"), ValueError, "unknown loss 'hinge'"),
    "optimizer-name": (dict(optimizer="lbfgs"), ValueError, "unknown optimizer 'lbfgs'"),
    "optimizer-type": (dict(optimizer=0.1), TypeError, "optimizer"),
    "init-name": (dict(init="zeros"), ValueError, "unknown init 'zeros'"),
    "dtype-name": (dict(dtype="float16"), ValueError, "unknown dtype 'float16'"),
    "dtype-int": (dict(dtype="int32"), ValueError, "dtype"),
    "dtype-numpy-float16": (dict(dtype=np.float16), ValueError, "dtype"),
    "l2-negative": (dict(l2=-0.1), ValueError, "l2 must be"),
    "l2-nan": (dict(l2=float("nan")), ValueError, "l2"),
    "l2-string": (dict(l2="0.1"), TypeError, "l2"),
    "clip_norm-zero": (dict(clip_norm=0.0), ValueError, "clip_norm must be"),
    "clip_norm-negative": (dict(clip_norm=-1.0), ValueError, "clip_norm"),
    "clip_norm-inf": (dict(clip_norm=float("inf")), ValueError, "clip_norm"),
    "leaky_slope-negative": (dict(leaky_slope=-0.1), ValueError, "leaky_slope"),
    "seed-negative": (dict(seed=-1), ValueError, "seed"),
    "seed-float": (dict(seed=1.5), ValueError, "seed"),
    "seed-string": (dict(seed="0"), ValueError, "seed"),
    "sizes-one": (dict(sizes=[3]), ValueError, "sizes"),
    "sizes-zero-width": (dict(sizes=[3, 0, 3]), ValueError, "widths"),
    "sizes-negative": (dict(sizes=[3, -4, 3]), ValueError, "widths"),
    "sizes-float": (dict(sizes=[3, 2.5, 3]), ValueError, "widths"),
    "sizes-bool": (dict(sizes=[3, True, 3]), ValueError, "widths"),
    "sizes-int": (dict(sizes=5), TypeError, "sizes"),
    "linear-bce": (dict(output="linear", loss="binary_cross_entropy"), ValueError,
                   "loss 'binary_cross_entropy' needs output activation sigmoid"),
    "softmax-bce": (dict(output="softmax", loss="binary_cross_entropy"), ValueError, "needs output activation"),
    "linear-ce": (dict(output="linear", loss="cross_entropy"), ValueError,
                  "loss 'cross_entropy' needs output activation softmax"),
    "sigmoid-ce": (dict(output="sigmoid", loss="cross_entropy"), ValueError, "needs output activation"),
    "softmax-ce-one-unit": (dict(sizes=[3, 4, 1]), ValueError, "at least 2 output units"),
}


@pytest.mark.parametrize("problem", list(BAD_CONFIG))
def test_bad_configuration_is_rejected(fb, problem):
    kw, exc, match = BAD_CONFIG[problem]
    kw = dict(dict(sizes=[3, 4, 3], activation="relu", output="softmax", loss="cross_entropy"), **kw)
    with pytest.raises(exc, match=match):
        fb.MLP(kw.pop("sizes"), **kw)


BAD_OPTIMIZERS = {
    "sgd-lr-zero": (lambda fb: fb.SGD(lr=0), ValueError, "lr must be"),
    "sgd-lr-negative": (lambda fb: fb.SGD(lr=-0.1), ValueError, "lr"),
    "sgd-lr-nan": (lambda fb: fb.SGD(lr=float("nan")), ValueError, "lr"),
    "sgd-lr-inf": (lambda fb: fb.SGD(lr=float("inf")), ValueError, "lr"),
    "sgd-lr-string": (lambda fb: fb.SGD(lr="0.1"), TypeError, "lr"),
    "sgd-lr-bool": (lambda fb: fb.SGD(lr=True), TypeError, "lr"),
    "rmsprop-lr": (lambda fb: fb.RMSprop(lr=0), ValueError, "lr"),
    "adam-lr": (lambda fb: fb.Adam(lr=-1e-3), ValueError, "lr"),
    "adamw-lr": (lambda fb: fb.AdamW(lr=0), ValueError, "lr"),
    "adagrad-lr": (lambda fb: fb.AdaGrad(lr=0), ValueError, "lr"),
    "momentum-negative": (lambda fb: fb.SGD(0.1, momentum=-0.5), ValueError, "momentum"),
    "momentum-one": (lambda fb: fb.SGD(0.1, momentum=1.0), ValueError, "momentum"),
    "nesterov-without-momentum": (lambda fb: fb.SGD(0.1, nesterov=True), ValueError, "Nesterov"),
    "nesterov-not-bool": (lambda fb: fb.SGD(0.1, momentum=0.9, nesterov="yes"), TypeError, "nesterov"),
    "rho": (lambda fb: fb.RMSprop(rho=1.5), ValueError, "rho"),
    "beta1": (lambda fb: fb.Adam(beta1=1.0), ValueError, "beta1"),
    "beta2": (lambda fb: fb.Adam(beta2=-0.1), ValueError, "beta2"),
    "eps": (lambda fb: fb.Adam(eps=0.0), ValueError, "eps"),
    "adagrad-eps": (lambda fb: fb.AdaGrad(eps=-1.0), ValueError, "eps"),
    "weight_decay": (lambda fb: fb.AdamW(weight_decay=-0.01), ValueError, "weight_decay"),
}


@pytest.mark.parametrize("problem", list(BAD_OPTIMIZERS))
def test_bad_optimizer_settings_are_rejected(fb, problem):
    make_opt, exc, match = BAD_OPTIMIZERS[problem]
    with pytest.raises(exc, match=match):
        make_opt(fb)


def test_names_are_case_insensitive_and_aliases_work(fb):
    a = fb.MLP([3, 4, 3], activation="ReLU", output="Softmax", loss="CE", optimizer="ADAM", init="He",
               dtype=np.float64, seed=0)
    b = fb.MLP([3, 4, 3], activation="relu", output="softmax", loss="cross_entropy", optimizer=fb.Adam(),
               init="he", dtype="float64", seed=0)
    assert (a.activations, a.output, a.loss, a.init, a.dtype) == (b.activations, b.output, b.loss, b.init, b.dtype)
    assert a.optimizer == b.optimizer
    assert a.fit(X_GOOD, LABELS, epochs=2) == b.fit(X_GOOD, LABELS, epochs=2)
    assert fb.MLP([3, 2], output="sigmoid", loss="bce").loss == "binary_cross_entropy"
    assert fb.MLP([3, 2], output="linear", loss="mean_squared_error").loss == "mse"


# ------------------------------------------------------ accepted and converted
def results(model, X, y):
    """Everything a call computes from (X, y), on a fresh copy of the model's state."""
    out = {"predict": model.predict(X), "evaluate": model.evaluate(X, y)}
    loss, grads = model.loss_and_grads(X, y)
    out["loss_and_grads"] = (loss, grads)
    return out


def assert_same_results(a, b):
    assert np.array_equal(a["predict"], b["predict"]) and a["predict"].dtype == b["predict"].dtype
    assert a["evaluate"] == b["evaluate"]
    assert a["loss_and_grads"][0] == b["loss_and_grads"][0]
    assert_same_weights(a["loss_and_grads"][1], b["loss_and_grads"][1])


def trained(fb, X, y, dtype="float64", **fit):
    model = fb.MLP([3, 5, 3], optimizer=fb.Adam(0.01), dtype=dtype, seed=4)
    history = model.fit(X, y, epochs=2, batch_size=4, **fit)
    return model, list(history)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", ["int64", "int8", "uint8", "bool", "float32", "float64", "list"])
def test_numeric_X_of_any_dtype_is_converted(fb, variant, dtype):
    """X of any numeric dtype (or a list) gives exactly what X.astype(model dtype) gives."""
    rng = np.random.default_rng(5)
    base = rng.integers(-3, 4, (N, 3)) if variant != "bool" else rng.integers(0, 2, (N, 3))
    base = base + (rng.standard_normal((N, 3)) if variant.startswith("float") else 0)
    X = base.tolist() if variant == "list" else base.astype(variant)
    canonical = np.array(X, dtype=dtype)
    model = fb.MLP([3, 5, 3], seed=1, dtype=dtype)
    assert_same_results(results(model, X, LABELS), results(model, canonical, LABELS))
    assert model.predict(X).dtype == np.dtype(dtype)
    a, ha = trained(fb, X, LABELS, dtype)
    b, hb = trained(fb, canonical, LABELS, dtype)
    assert ha == hb
    assert_same_weights(a.get_weights(), b.get_weights())


@pytest.mark.parametrize("variant", ["int32", "uint8", "float32", "bool-one-hot", "float-labels", "list",
                                     "one-hot-float32"])
def test_numeric_y_of_any_dtype_is_converted(fb, variant):
    y = {"int32": LABELS.astype(np.int32), "uint8": LABELS.astype(np.uint8), "float32": LABELS.astype(np.float32),
         "bool-one-hot": ONE_HOT.astype(bool), "float-labels": LABELS.astype(float), "list": LABELS.tolist(),
         "one-hot-float32": ONE_HOT.astype(np.float32)}[variant]
    model = make(fb)
    assert_same_results(results(model, X_GOOD, y), results(model, X_GOOD, LABELS))
    a, ha = trained(fb, X_GOOD, y)
    b, hb = trained(fb, X_GOOD, LABELS)
    assert ha == hb
    assert_same_weights(a.get_weights(), b.get_weights())


def layouts():
    rng = np.random.default_rng(6)
    wide = rng.standard_normal((2 * N, 7))
    C = np.ascontiguousarray(wide[::2, 1::2])  # the canonical array all layouts below equal
    reversed_rows = np.ascontiguousarray(C[::-1])[::-1]
    return C, {
        "fortran": np.asfortranarray(C),
        "strided-rows-and-columns": wide[::2, 1::2],
        "negative-strides": reversed_rows,
        "transposed-view": np.ascontiguousarray(C.T).T,
        "read-only": np.array(C, copy=True),
        "float32-fortran": np.asfortranarray(C.astype(np.float32)),
    }


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(layouts()[1]))
def test_any_memory_layout_gives_the_same_results(fb, layout, dtype):
    C, variants = layouts()
    X = variants[layout]
    if layout == "read-only":
        X.setflags(write=False)
    if layout == "float32-fortran":
        C = C.astype(np.float32)
    assert np.array_equal(X, C)
    snapshot = X.copy()
    y = LABELS
    y_strided = np.repeat(LABELS, 2)[::2]  # a strided y too
    model = fb.MLP([3, 5, 3], seed=1, dtype=dtype)
    assert_same_results(results(model, X, y_strided), results(model, np.ascontiguousarray(C, dtype=dtype), y))
    a, ha = trained(fb, X, y_strided, dtype)
    b, hb = trained(fb, np.ascontiguousarray(C, dtype=dtype), y, dtype)
    assert ha == hb
    assert_same_weights(a.get_weights(), b.get_weights())
    assert np.array_equal(X, snapshot)  # the caller's array was not modified


def test_inputs_are_never_modified(fb):
    X = X_GOOD.copy()
    y = ONE_HOT.copy()
    model = make(fb)
    model.fit(X, y, epochs=2, batch_size=4)
    model.train_step(X, y)
    model.loss_and_grads(X, y)
    model.evaluate(X, y)
    model.predict(X)
    assert np.array_equal(X, X_GOOD) and np.array_equal(y, ONE_HOT)
    # get_weights returns copies, set_weights copies in: no aliasing with the caller's arrays
    weights = model.get_weights()
    snapshot = [(W.copy(), b.copy()) for W, b in weights]
    for W, b in weights:
        W += 1
        b += 1
    assert_same_weights(model.get_weights(), snapshot)
    model.set_weights(weights)
    for W, b in weights:
        W -= 5
    assert_same_weights(model.get_weights(), [(W + 1, b + 1) for W, b in snapshot])


def test_batch_size_larger_than_the_data_is_one_batch(fb):
    a, b = make(fb), make(fb)
    assert a.fit(X_GOOD, LABELS, epochs=3, batch_size=1000) == b.fit(X_GOOD, LABELS, epochs=3, batch_size=N)
    assert_same_weights(a.get_weights(), b.get_weights())


# ------------------------------------------------- edge cases found by adversarial testing
def test_targets_are_checked_after_conversion_to_the_models_dtype(fb):
    X = np.zeros((3, 2))
    model = fb.MLP([2, 1], output="linear", loss="mse", dtype="float32", seed=0)
    with pytest.raises(ValueError, match="too large for the model's dtype float32"):
        model.fit(X, np.array([1.0, 1e39, 2.0]), epochs=1)
    fb.MLP([2, 1], output="linear", loss="mse", dtype="float64", seed=0).fit(X, np.array([1.0, 1e39, 2.0]))


def test_a_huge_class_label_is_reported_as_given(fb):
    model = fb.MLP([2, 3], seed=0)
    with pytest.raises(ValueError, match=r"class label 1e\+300 is outside \[0, 3\)"):
        model.fit(np.zeros((2, 2)), np.array([0.0, 1e300]))
    with pytest.raises(ValueError, match=r"class label 7 is outside \[0, 3\)"):
        model.fit(np.zeros((2, 2)), np.array([0, 7]))


@pytest.mark.parametrize("make,name", [
    (lambda: fastbp.schedules.StepDecay(0.1, step_size=float("inf")), "step_size"),
    (lambda: fastbp.schedules.Cosine(0.1, period=float("inf")), "period"),
    (lambda: fastbp.schedules.Warmup(fastbp.schedules.Constant(0.1), warmup=float("inf")), "warmup"),
    (lambda: fastbp.schedules.StepDecay(0.1, step_size=2.5), "step_size"),
    (lambda: fastbp.schedules.Cosine(0.1, period=None), "period"),
    (lambda: fastbp.schedules.Constant(None), "lr"),
    (lambda: fastbp.schedules.Exponential("fast"), "initial"),
])
def test_bad_schedule_arguments_are_named(make, name):
    with pytest.raises((ValueError, TypeError), match=name):
        make()


def test_schedule_counts_accept_integer_valued_numbers():
    assert fastbp.schedules.StepDecay(0.1, step_size=np.int64(3)).step_size == 3
    assert fastbp.schedules.Cosine(0.1, period=4.0).period == 4


@pytest.mark.parametrize("eps", [0, 0.0, -1e-6, float("nan"), float("inf"), True, "1e-6"])
def test_gradcheck_refuses_a_bad_step(fb, eps):
    model = fb.MLP([2, 2], dtype="float64", seed=0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        fb.gradcheck(model, np.zeros((2, 2)), np.array([0, 1]), eps=eps)


def test_numpy_scalars_and_bytes_paths_are_accepted(fb, tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 2)), rng.integers(0, 2, 20)
    model = fb.MLP([2, 4, 2], dtype="float64", seed=0, dropout=np.array(0.5))
    assert model.dropout == [0.5]
    history = model.fit(X, y, epochs=2, validation_split=np.float32(0.2),
                        early_stopping=fb.EarlyStopping(min_delta=np.float32(0.1)))
    assert "val_loss" in history.history
    path = os.fsencode(str(tmp_path / "model.npz"))
    model.save(path)
    np.testing.assert_array_equal(fb.load(path).get_weights()[0][0], model.get_weights()[0][0])


def test_predict_warns_when_finite_inputs_overflow(fb):
    model = fb.MLP([2, 8, 3], dtype="float32", seed=0)
    with pytest.warns(RuntimeWarning, match="outputs are NaN or inf"):
        model.predict(np.full((2, 2), 3e38, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(np.ones((2, 2), dtype=np.float32))  # finite outputs: no warning


# ------------------------------------------- the fast model's compiled data checks
# ``fastbp.MLP`` checks X for NaN / inf and one-hot encodes class labels in compiled code
# (``kernels.data``); it must accept, convert and refuse exactly what ``validation`` does.
SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 5e-324, 1e-45, 3.4e38, 3.5e38, 1.7976931348623157e308, -1e300]


def checked_or_error(check, X, y):
    try:
        return check(X, y)
    except (ValueError, TypeError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 9), special=st.sampled_from([None] + SPECIALS), where=st.integers(0, 10**6),
       x_dtype=st.sampled_from(["float32", "float64", "int64"]), label=st.integers(-3, 5),
       y_dtype=st.sampled_from(["int64", "int32", "float64"]), column=st.booleans())
def test_fast_checks_match_validation(dtype, loss, rows, special, where, x_dtype, label, y_dtype, column):
    from fastbp import validation
    model = fastbp.MLP([3, 4, 3], output="softmax" if loss == "ce" else "linear",
                       loss="cross_entropy" if loss == "ce" else "mse", dtype=dtype, seed=0)
    X = np.arange(rows * 3, dtype=float).reshape(rows, 3).astype(x_dtype)
    if special is not None and rows and x_dtype != "int64":
        X = X.astype("float64")
        X.flat[where % X.size] = special
        with np.errstate(over="ignore"):
            X = X.astype(x_dtype)
    if loss == "ce":
        y = (np.arange(rows) % 3).astype(y_dtype)
        if rows:
            y[where % rows] = label
        if column:  # a column of labels, (n, 1)
            y = y.reshape(rows, 1)
    else:
        y = np.linspace(-1, 1, rows * 3).reshape(rows, 3).astype(y_dtype)
    with np.errstate(over="ignore"):  # (validation's cast of 3.5e38 to float32 warns: inf)
        fast = checked_or_error(model._check_data, X, y)
        slow = checked_or_error(lambda X, y: validation.check_data(X, y, model.sizes, model.loss, model.dtype), X, y)
    if isinstance(slow[0], type):
        assert fast == slow
    else:
        for a, b in zip(fast, slow):
            assert a.dtype == b.dtype and a.shape == b.shape and a.flags.c_contiguous
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8))  # bit for bit


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_kernel(dtype):
    from fastbp.kernels import all_finite
    with np.errstate(over="ignore"):
        values = np.array(SPECIALS).astype(dtype)
    for v in values:
        for shape in [(1, 1), (3, 5), (40, 7)]:
            a = np.ones(shape, dtype=dtype)
            a.flat[a.size // 2] = v
            assert all_finite(a) == bool(np.isfinite(a).all())
    assert all_finite(np.zeros((0, 4), dtype=dtype))


def test_one_hot_kernel():
    from fastbp.kernels import one_hot
    labels = np.array([2, 0, 1, 1, 0])
    T = np.full((5, 3), 7.0)  # every entry is written
    assert one_hot(T, labels) == -1
    assert np.array_equal(T, np.eye(3)[labels])
    for bad in (-1, 3, 2**62):
        assert one_hot(np.empty((5, 3)), with_value(labels, 3, bad, np.int64)) == 3

"""Bad input, fuzzed: every public call either gives the reference's answer or raises a clear
ValueError / TypeError (FloatingPointError when the numbers themselves overflow) — the same
outcome in both implementations; never a crash, a Numba typing error, or a silent wrong answer."""

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fastbp
import fastbp.reference

CLEAR_ERRORS = (ValueError, TypeError, FloatingPointError)
DTYPES = ["float64", "float32", "float16", "int64", "int8", "bool", "complex64", "object", "U3"]


@st.composite
def inputs(draw):
    n = draw(st.integers(0, 12))
    n_features = draw(st.sampled_from([3, 3, 3, 2, 4]))  # mostly right, sometimes wrong
    dtype = draw(st.sampled_from(DTYPES))
    scale = draw(st.sampled_from([1.0, 1e-300, 1e-30, 1e30, 1e300]))
    layout = draw(st.sampled_from(["C", "F", "strided", "1d", "3d"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 2 * n_features)) * scale
    if layout == "strided":
        X = base[:, ::2]
    elif layout == "F":
        X = np.asfortranarray(base[:, :n_features])
    elif layout == "1d":
        X = base[:, 0]
    elif layout == "3d":
        X = base[:, :n_features].reshape(n, n_features, 1)
    else:
        X = np.ascontiguousarray(base[:, :n_features])
    with np.errstate(all="ignore"):
        if dtype == "U3":
            X = X.astype(str).astype("U3")
        elif dtype == "object":
            X = X.astype(object)
        else:
            X = X.astype(dtype)
    n_y = draw(st.sampled_from([n, n, n, max(n - 1, 0), n + 1]))
    label_kind = draw(st.sampled_from(["ok", "ok", "out_of_range", "float", "nan", "onehot"]))
    y = rng.integers(0, 3, n_y)
    if label_kind == "out_of_range" and n_y:
        y[0] = 3
    elif label_kind == "float":
        y = y + 0.5
    elif label_kind == "nan":
        y = y.astype(float)
        if n_y:
            y[-1] = np.nan
    elif label_kind == "onehot":
        y = np.eye(3)[y]
    batch_size = draw(st.sampled_from([1, 4, 64]))
    return X, y, batch_size


def outcome(fn):
    try:
        return "ok", fn()
    except CLEAR_ERRORS as exc:
        return type(exc).__name__, str(exc)


def assert_same_outcome(a, b, rtol):
    kind_a, value_a = a
    kind_b, value_b = b
    assert kind_a == kind_b, (a, b)
    if kind_a != "ok":
        assert value_a == value_b and value_a  # the same clear message
        return
    for x, z in zip(value_a if isinstance(value_a, list) else [value_a],
                    value_b if isinstance(value_b, list) else [value_b]):
        np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(z, dtype=float), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs())
def test_public_api_fuzzed(data, dtype):
    X, y, batch_size = data
    rtol = 1e-9 if dtype == "float64" else 2e-4
    models = [fb.MLP([3, 5, 3], activation="tanh", optimizer=fb.Adam(0.01), dtype=dtype, seed=1)
              for fb in (fastbp, fastbp.reference)]
    calls = [
        lambda m: m.predict(X),
        lambda m: m.evaluate(X, y)["loss"],
        lambda m: list(m.fit(X, y, epochs=2, batch_size=batch_size)),
        lambda m: m.train_step(X, y),
        lambda m: [w for pair in m.get_weights() for w in pair],
    ]
    with np.errstate(all="ignore"):
        for call in calls:
            before = [w.copy() for pair in models[0].get_weights() for w in pair]
            a, b = outcome(lambda: call(models[0])), outcome(lambda: call(models[1]))
            assert_same_outcome(a, b, rtol)
            event(a[0] if a[0] != "ok" else "ok")
            if a[0] not in ("ok", "FloatingPointError"):  # a rejected call changed nothing
                after = [w for pair in models[0].get_weights() for w in pair]
                assert all(np.array_equal(u, v) for u, v in zip(before, after))

"""The drop-in promise: ``fastbp`` and ``fastbp.reference`` give the same numbers.

Same seed, same data, same batch order -> the same initial weights, per-step losses,
gradients, weights after 50 ``train_step`` calls and after a few epochs of ``fit``, and the
same predictions / evaluations: float64 to ~1e-9 relative, float32 to ~1e-4.  Covered for
every optimizer, with clipping that really clips, l2, a 1-unit hidden layer, batch size 1,
odd sizes, and every output / loss pair.

Both implementations are also checked against independent math where it is cheap: the
documented initialisation and shuffle order, PyTorch's update rules and ``clip_grad_norm_``.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp
import fastbp.reference

FAST, REF = fastbp, fastbp.reference
TOL = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}

OPTIMIZERS = {
    "sgd": lambda fb: fb.SGD(0.05),
    "momentum": lambda fb: fb.SGD(0.05, momentum=0.9),
    "nesterov": lambda fb: fb.SGD(0.05, momentum=0.8, nesterov=True),
    "rmsprop": lambda fb: fb.RMSprop(0.005, rho=0.85, eps=1e-7),
    "adam": lambda fb: fb.Adam(0.01, beta1=0.85, beta2=0.99, eps=1e-7),
    "adamw": lambda fb: fb.AdamW(0.01, weight_decay=0.1),
    "adagrad": lambda fb: fb.AdaGrad(0.05),
    # gentler, for the variants (batch size 1 on regression targets)
    "slow-momentum": lambda fb: fb.SGD(0.01, momentum=0.9),
}
MAIN_OPTIMIZERS = ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad"]


# ------------------------------------------------------------------ helpers
def flat(weights):
    return np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in weights])


def unflat(vector, like):
    out, i = [], 0
    for W, b in like:
        out.append((vector[i:i + W.size].reshape(W.shape).copy(), vector[i + W.size:i + W.size + b.size].copy()))
        i += W.size + b.size
    return out


def twins(sizes, opt="adam", dtype="float64", seed=3, **kw):
    """The same model in both implementations."""
    return [fb.MLP(sizes, optimizer=OPTIMIZERS[opt](fb), dtype=dtype, seed=seed, **kw) for fb in (FAST, REF)]


def assert_weights_close(a, b, dtype):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for l, ((Wa, ba), (Wb, bb)) in enumerate(zip(wa, wb)):
        assert Wa.dtype == Wb.dtype == np.dtype(dtype)
        np.testing.assert_allclose(Wa, Wb, **TOL[dtype], err_msg=f"W[{l}]")
        np.testing.assert_allclose(ba, bb, **TOL[dtype], err_msg=f"b[{l}]")


def decided_by_less_than(P, loss, margin):
    """Where a classifier's decision from outputs ``P`` is within ``margin`` of its boundary:
    per row, the two largest softmax outputs (cross-entropy); per output, 0.5 (binary).
    There, outputs that agree to rounding may still decide differently (BLAS builds round
    differently, so this is where the two implementations' labels may part)."""
    if loss == "cross_entropy":
        top2 = np.sort(P, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0] < margin
    return np.abs(P - 0.5) < margin


def assert_same_outputs(fast, ref, X, y, dtype):
    """predict, evaluate, predict_classes and loss_and_grads agree."""
    Pa, Pb = fast.predict(X), ref.predict(X)
    assert Pa.dtype == Pb.dtype == np.dtype(dtype) and Pa.shape == Pb.shape
    np.testing.assert_allclose(Pa, Pb, **TOL[dtype])
    ea, eb = fast.evaluate(X, y), ref.evaluate(X, y)
    assert ea.keys() == eb.keys()
    np.testing.assert_allclose(ea["loss"], eb["loss"], rtol=TOL[dtype]["rtol"])
    if "accuracy" in ea:
        # a tie at the decision boundary could flip one label in float32; never more.  In
        # float64 only decisions within 1e-9 of the boundary may differ (there were none in
        # these tests on the machines tried: then the accuracies are equal)
        ties = int(np.count_nonzero(decided_by_less_than(Pb, ref.loss, 1e-9)))
        assert abs(ea["accuracy"] - eb["accuracy"]) <= ((ties / (Pb.size if ref.loss == "binary_cross_entropy"
                                                                else len(X))) if dtype == "float64" else 1 / len(X))
    la, ga = fast.loss_and_grads(X, y)
    lb, gb = ref.loss_and_grads(X, y)
    np.testing.assert_allclose(la, lb, rtol=TOL[dtype]["rtol"])
    np.testing.assert_allclose(flat(ga), flat(gb), **TOL[dtype])


def targets(rng, output, loss, n, k, labels=True):
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
        return y if labels else np.eye(k)[y]
    if loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, k)).astype(float)
        return y[:, 0] if labels and k == 1 else y
    return rng.standard_normal((n, k))


def run_steps(fast, ref, rng, n_steps, batch_sizes, make_y):
    """``n_steps`` train_steps on identical batches; per-step losses must agree."""
    dtype = fast.dtype.name
    for step in range(n_steps):
        m = batch_sizes[step % len(batch_sizes)]
        X = rng.standard_normal((m, fast.sizes[0]))
        y = make_y(m)
        la, lb = fast.train_step(X, y), ref.train_step(X, y)
        assert isinstance(la, float) and isinstance(lb, float)
        np.testing.assert_allclose(la, lb, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"],
                                   err_msg=f"loss of step {step + 1}")


# ------------------------------------------------------------ initialisation
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("init", ["he", "xavier", "normal"])
@pytest.mark.parametrize("seed", [0, 7, 2**40])
def test_same_seed_same_initial_weights_as_documented(init, dtype, seed):
    """Bitwise identical in both implementations, and the documented scheme: one Generator
    seeded with ``seed`` draws each layer's W from N(0, std^2) in float64; biases are zero."""
    sizes = [5, 9, 1, 4]
    fast, ref = (fb.MLP(sizes, init=init, dtype=dtype, seed=seed) for fb in (FAST, REF))
    rng = np.random.default_rng(seed)
    for (Wa, ba), (Wb, bb), (n_in, n_out) in zip(fast.get_weights(), ref.get_weights(), zip(sizes, sizes[1:])):
        std = {"he": math.sqrt(2 / n_in), "xavier": math.sqrt(2 / (n_in + n_out)), "normal": 0.01}[init]
        expected = (rng.standard_normal((n_in, n_out)) * std).astype(dtype)
        assert Wa.dtype == Wb.dtype == np.dtype(dtype)
        assert np.array_equal(Wa, Wb) and np.array_equal(Wa, expected)
        assert np.array_equal(ba, bb) and not ba.any() and ba.shape == (n_out,)


# ---------------------------------------------------------- train_step / fit
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", MAIN_OPTIMIZERS)
def test_50_train_steps_agree(opt, dtype):
    rng = np.random.default_rng(101)
    fast, ref = twins([6, 9, 5, 4], opt, dtype, activation=["tanh", "leaky_relu"])
    assert np.array_equal(flat(fast.get_weights()), flat(ref.get_weights()))
    run_steps(fast, ref, rng, 50, [1, 7, 16, 3], lambda m: rng.integers(0, 4, m))
    assert_weights_close(fast, ref, dtype)
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 4, 40)
    assert_same_outputs(fast, ref, X, y, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", MAIN_OPTIMIZERS)
def test_3_epochs_of_fit_agree(opt, dtype):
    rng = np.random.default_rng(102)
    X, y = rng.standard_normal((103, 5)), rng.integers(0, 3, 103)  # 103 = 6 * 16 + 7: a short last batch
    fast, ref = twins([5, 8, 7, 3], opt, dtype, activation="relu")
    ha = fast.fit(X, y, epochs=3, batch_size=16, shuffle=True)
    hb = ref.fit(X, y, epochs=3, batch_size=16, shuffle=True)
    assert len(ha) == len(hb) == 3
    np.testing.assert_allclose(ha, hb, rtol=TOL[dtype]["rtol"])
    assert_weights_close(fast, ref, dtype)
    assert_same_outputs(fast, ref, X, y, dtype)


VARIANTS = {
    # name: (sizes, model keyword arguments, output / loss, labels as (n,) when possible)
    "clip": ([4, 6, 3], dict(clip_norm=0.02), ("softmax", "cross_entropy"), True),
    "l2": ([4, 6, 3], dict(l2=0.05), ("softmax", "cross_entropy"), True),
    "l2+clip": ([4, 6, 5, 3], dict(l2=0.1, clip_norm=0.05, activation="sigmoid"), ("softmax", "cross_entropy"), False),
    "one-unit-hidden": ([4, 1, 3], dict(activation="tanh"), ("softmax", "cross_entropy"), True),
    "one-unit-relu-stack": ([3, 1, 1, 2], dict(activation="leaky_relu", leaky_slope=0.3), ("linear", "mse"), False),
    "mse-linear": ([4, 6, 3], dict(activation="tanh"), ("linear", "mse"), False),
    "mse-linear-1-output": ([4, 6, 1], dict(), ("linear", "mse"), True),
    "mse-sigmoid": ([4, 6, 3], dict(activation="relu"), ("sigmoid", "mse"), False),
    "mse-softmax": ([4, 6, 3], dict(activation="sigmoid"), ("softmax", "mse"), False),
    "bce-sigmoid": ([4, 6, 2], dict(activation="relu"), ("sigmoid", "binary_cross_entropy"), False),
    "bce-sigmoid-1-output": ([4, 6, 1], dict(activation="linear"), ("sigmoid", "binary_cross_entropy"), True),
    "no-hidden": ([4, 3], dict(), ("softmax", "cross_entropy"), True),
    "xavier-deep": ([4, 7, 6, 5, 3], dict(init="xavier", activation=["relu", "tanh", "sigmoid"]),
                    ("softmax", "cross_entropy"), True),
    "normal-init": ([4, 6, 3], dict(init="normal", activation="leaky_relu"), ("softmax", "cross_entropy"), True),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("opt", ["slow-momentum", "adam"])
def test_variants_agree(variant, opt, dtype):
    sizes, kw, (output, loss), labels = VARIANTS[variant]
    k = sizes[-1]
    rng = np.random.default_rng(103)
    make_y = lambda m: targets(rng, output, loss, m, k, labels)  # noqa: E731
    # 50 train_steps, batch size 1 and odd sizes
    fast, ref = twins(sizes, opt, dtype, output=output, loss=loss, **kw)
    run_steps(fast, ref, rng, 50, [1, 5, 1, 13], make_y)
    assert_weights_close(fast, ref, dtype)
    X, y = rng.standard_normal((31, sizes[0])), make_y(31)
    assert_same_outputs(fast, ref, X, y, dtype)
    if loss != "mse":
        if dtype == "float64":  # the same labels wherever the decision is not a near-tie
            ca, cb = fast.predict_classes(X), ref.predict_classes(X)
            clear = ~decided_by_less_than(ref.predict(X), loss, 1e-9).reshape(ca.shape)
            assert clear.any() and np.array_equal(ca[clear], cb[clear])
    # 3 epochs of fit, batch size not dividing n
    fast, ref = twins(sizes, opt, dtype, output=output, loss=loss, seed=4, **kw)
    ha = fast.fit(X, y, epochs=3, batch_size=4, shuffle=True)
    hb = ref.fit(X, y, epochs=3, batch_size=4, shuffle=True)
    np.testing.assert_allclose(ha, hb, rtol=TOL[dtype]["rtol"])
    assert_weights_close(fast, ref, dtype)
    assert_same_outputs(fast, ref, X, y, dtype)


def test_the_clipping_variants_really_clip():
    """The clip_norm above is far below the gradient norm, so clipping acts on every step."""
    rng = np.random.default_rng(103)
    for variant in ("clip", "l2+clip"):
        sizes, kw, (output, loss), labels = VARIANTS[variant]
        model = REF.MLP(sizes, output=output, loss=loss, seed=3, dtype="float64", **kw)
        X = rng.standard_normal((1, sizes[0]))
        _, grads = model.loss_and_grads(X, targets(rng, output, loss, 1, sizes[-1], labels))
        assert np.linalg.norm(flat(grads)) > 5 * kw["clip_norm"]


@pytest.mark.parametrize("fb", [FAST, REF], ids=["fastbp", "reference"])
@pytest.mark.parametrize("clip_norm", [1e-3, 1e3], ids=["clipping", "not-clipping"])
def test_clip_norm_is_clip_grad_norm(fb, clip_norm):
    """One plain SGD step moves the parameters by exactly
    ``-lr * g * min(1, clip_norm / (||g|| + 1e-6))`` (PyTorch's ``clip_grad_norm_``)."""
    rng = np.random.default_rng(104)
    X, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    model = fb.MLP([4, 6, 3], optimizer=fb.SGD(0.5), dtype="float64", seed=0, clip_norm=clip_norm, l2=0.01)
    w0 = flat(model.get_weights())
    _, grads = model.loss_and_grads(X, y)
    g = flat(grads)
    norm = np.linalg.norm(g)
    model.train_step(X, y)
    expected = w0 - 0.5 * g * min(1.0, clip_norm / (norm + 1e-6))
    np.testing.assert_allclose(flat(model.get_weights()), expected, rtol=1e-12, atol=1e-15)
    if clip_norm < norm:
        np.testing.assert_allclose(np.linalg.norm(flat(model.get_weights()) - w0), 0.5 * clip_norm, rtol=1e-3)


# ----------------------------------------------- optimizer rules (independent)
def pytorch_rule(name):
    """The documented (torch.optim) update of ``OPTIMIZERS[name]``: f(p, g, state, t) -> p."""
    def sgd(p, g, s, t, lr=0.05, momentum=0.0, nesterov=False):
        if momentum:
            s["v"] = momentum * s.get("v", 0.0) + g
            g = g + momentum * s["v"] if nesterov else s["v"]
        return p - lr * g

    def adam(p, g, s, t, lr=0.01, b1=0.85, b2=0.99, eps=1e-7, wd=0.0):
        p = p * (1 - lr * wd)
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        return p - lr / (1 - b1 ** t) * s["m"] / (np.sqrt(s["v"]) / math.sqrt(1 - b2 ** t) + eps)

    def rmsprop(p, g, s, t):
        s["s"] = 0.85 * s.get("s", 0.0) + 0.15 * g * g
        return p - 0.005 * g / (np.sqrt(s["s"]) + 1e-7)

    def adagrad(p, g, s, t):
        s["s"] = s.get("s", 0.0) + g * g
        return p - 0.05 * g / (np.sqrt(s["s"]) + 1e-10)

    return {
        "sgd": sgd,
        "momentum": lambda p, g, s, t: sgd(p, g, s, t, momentum=0.9),
        "nesterov": lambda p, g, s, t: sgd(p, g, s, t, momentum=0.8, nesterov=True),
        "rmsprop": rmsprop,
        "adam": adam,
        "adamw": lambda p, g, s, t: adam(p, g, s, t, b1=0.9, b2=0.999, eps=1e-8, wd=0.1),
        "adagrad": adagrad,
    }[name]


@pytest.mark.parametrize("fb", [FAST, REF], ids=["fastbp", "reference"])
@pytest.mark.parametrize("opt", MAIN_OPTIMIZERS)
def test_updates_follow_the_documented_rule(fb, opt):
    """Four steps, each checked against the rule applied to the gradient that
    ``loss_and_grads`` reports at the current parameters (itself checked in test_gradcheck)."""
    rng = np.random.default_rng(105)
    model = fb.MLP([4, 5, 3], activation="tanh", optimizer=OPTIMIZERS[opt](fb), dtype="float64", seed=2, l2=0.02)
    rule, state = pytorch_rule(opt), {}
    p = flat(model.get_weights())
    for t in range(1, 5):
        X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
        _, grads = model.loss_and_grads(X, y)
        p = rule(p, flat(grads), state, t)
        model.train_step(X, y)
        np.testing.assert_allclose(flat(model.get_weights()), p, rtol=1e-12, atol=1e-15, err_msg=f"step {t}")


# --------------------------------------------------- fit = steps over batches
@pytest.mark.parametrize("fb", [FAST, REF], ids=["fastbp", "reference"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_is_train_steps_over_the_documented_batches(fb, shuffle):
    """An epoch of fit = train_step over consecutive batches of the epoch's order (identity,
    or the permutation the model's seeded Generator draws after the initial weights), and
    the epoch's loss is the sample-weighted mean of the batch losses."""
    rng = np.random.default_rng(106)
    n, batch, sizes, seed = 23, 5, [3, 6, 4, 3], 11
    X, y = rng.standard_normal((n, 3)), rng.integers(0, 3, n)
    fitted = fb.MLP(sizes, optimizer=fb.Adam(0.02), dtype="float64", seed=seed)
    stepped = fb.MLP(sizes, optimizer=fb.Adam(0.02), dtype="float64", seed=seed)
    history = fitted.fit(X, y, epochs=2, batch_size=batch, shuffle=shuffle)
    gen = np.random.default_rng(seed)
    for n_in, n_out in zip(sizes, sizes[1:]):
        gen.standard_normal((n_in, n_out))  # the initial weights' draws
    for epoch in range(2):
        order = gen.permutation(n) if shuffle else np.arange(n)
        losses = [stepped.train_step(X[order[i:i + batch]], y[order[i:i + batch]]) for i in range(0, n, batch)]
        sizes_of_batches = [len(order[i:i + batch]) for i in range(0, n, batch)]
        assert sizes_of_batches[-1] == 3
        np.testing.assert_allclose(history[epoch], np.average(losses, weights=sizes_of_batches), rtol=1e-12)
    np.testing.assert_allclose(flat(fitted.get_weights()), flat(stepped.get_weights()), rtol=1e-12, atol=1e-15)


def test_float32_tracks_float64():
    """A float32 model with float32-representable weights computes what a float64 model does,
    to float32 precision (the dtype really is used, and only rounding differs)."""
    rng = np.random.default_rng(107)
    X, y = rng.standard_normal((20, 4)).astype(np.float32), rng.integers(0, 3, 20)
    for fb in (FAST, REF):
        m32 = fb.MLP([4, 8, 3], dtype="float32", seed=0)
        m64 = fb.MLP([4, 8, 3], dtype="float64", seed=0)
        m64.set_weights(m32.get_weights())
        P32, P64 = m32.predict(X), m64.predict(X)
        assert P32.dtype == np.float32 and P64.dtype == np.float64
        np.testing.assert_allclose(P32, P64, rtol=1e-5, atol=1e-6)
        l32, g32 = m32.loss_and_grads(X, y)
        l64, g64 = m64.loss_and_grads(X, y)
        np.testing.assert_allclose(l32, l64, rtol=1e-5)
        np.testing.assert_allclose(flat(g32), flat(g64), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------ hypothesis properties
PAIRS = [("linear", "mse"), ("sigmoid", "mse"), ("softmax", "mse"),
         ("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy")]


@st.composite
def problems(draw):
    n_hidden = draw(st.integers(0, 3))
    widths = draw(st.lists(st.integers(1, 7), min_size=n_hidden, max_size=n_hidden))
    n_in = draw(st.integers(1, 6))
    output, loss = draw(st.sampled_from(PAIRS))
    k = draw(st.integers(2 if output == "softmax" else 1, 4))  # a one-unit softmax is refused
    activation = draw(st.lists(st.sampled_from(["linear", "sigmoid", "tanh", "relu", "leaky_relu"]),
                               min_size=n_hidden, max_size=n_hidden))
    n = draw(st.integers(1, 12))
    l2 = draw(st.sampled_from([0.0, 0.1]))
    clip_norm = draw(st.sampled_from([None, 0.01, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    opt = draw(st.sampled_from(MAIN_OPTIMIZERS))
    labels = draw(st.booleans())
    return dict(sizes=[n_in] + widths + [k], activation=activation, output=output, loss=loss, l2=l2,
                clip_norm=clip_norm, seed=seed, opt=opt, n=n, labels=labels)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_property_random_networks_agree(problem):
    p = dict(problem)
    n, opt, labels = p.pop("n"), p.pop("opt"), p.pop("labels")
    rng = np.random.default_rng(p["seed"])
    X = rng.standard_normal((n, p["sizes"][0]))
    y = targets(rng, p["output"], p["loss"], n, p["sizes"][-1], labels)
    fast, ref = twins(p.pop("sizes"), opt, "float64", **p)
    la, ga = fast.loss_and_grads(X, y)
    lb, gb = ref.loss_and_grads(X, y)
    np.testing.assert_allclose(la, lb, rtol=1e-10)
    np.testing.assert_allclose(flat(ga), flat(gb), rtol=1e-9, atol=1e-12)
    # and a few updates, whole-batch and then in batches of 3 via fit
    run_steps(fast, ref, rng, 3, [n], lambda m: y)
    np.testing.assert_allclose(fast.fit(X, y, epochs=2, batch_size=3), ref.fit(X, y, epochs=2, batch_size=3),
                               rtol=1e-9)
    assert_weights_close(fast, ref, "float64")

"""The model API, in both implementations: gradients against finite differences, the drop-in
promise (same seed + data -> same weights), learning, determinism, bad input, save / load."""

import warnings

import numba
import numpy as np
import pytest

import fastbp
import fastbp.reference

IMPLS = [fastbp, fastbp.reference]
IDS = ["fastbp", "reference"]
HIDDEN = ["linear", "sigmoid", "tanh", "relu", "leaky_relu"]
PAIRS = [("linear", "mse"), ("sigmoid", "mse"), ("softmax", "mse"),
         ("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy")]


def targets(rng, loss, n, k, labels=False):
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
        return y if labels else np.eye(k)[y]
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, k)).astype(float)
    return rng.standard_normal((n, k))


def flat(weights):
    return np.concatenate([np.concatenate([W.ravel(), b]) for W, b in weights])


def unflat(vector, like):
    out, i = [], 0
    for W, b in like:
        W2 = vector[i:i + W.size].reshape(W.shape)
        i += W.size
        b2 = vector[i:i + b.size]
        i += b.size
        out.append((W2, b2))
    return out


# ----------------------------------------------------------- gradient check
@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradients_match_finite_differences(fb, hidden, output, loss):
    rng = np.random.default_rng(hash((hidden, output, loss)) % 2**32)
    k = 3
    model = fb.MLP([4, 6, 5, k], activation=hidden, output=output, loss=loss, dtype="float64",
                   seed=1, l2=0.05, leaky_slope=0.1)
    X = rng.standard_normal((7, 4))
    Y = targets(rng, loss, 7, k, labels=(loss == "cross_entropy" and hidden == "relu"))
    loss0, grads = model.loss_and_grads(X, Y)
    analytic = flat(grads)
    w0 = flat(model.get_weights())
    h = 1e-6
    numeric = np.empty_like(w0)
    for i in range(w0.size):
        for sign in (1, -1):
            w = w0.copy()
            w[i] += sign * h
            model.set_weights(unflat(w, model.get_weights()))
            value = model.loss_and_grads(X, Y)[0]
            numeric[i] = value if sign == 1 else (numeric[i] - value) / (2 * h)
    model.set_weights(unflat(w0, model.get_weights()))
    assert model.loss_and_grads(X, Y)[0] == loss0
    scale = np.maximum(np.abs(numeric), np.abs(analytic)).max()
    # relu / leaky_relu kinks make single entries unreliable; everything else is tight.
    err = np.abs(numeric - analytic) / max(scale, 1e-12)
    assert np.median(err) < 1e-7
    assert (err < 1e-5).mean() >= (0.97 if hidden in ("relu", "leaky_relu") else 1.0)


def test_gradient_check_would_catch_a_wrong_mse_gradient():
    """The check above has teeth: the textbook 'mse gradient' (2 (P - T) / n, without 1/k)
    differs from the true gradient of the mean over all elements by a factor k."""
    rng = np.random.default_rng(0)
    model = fastbp.reference.MLP([3, 2], output="linear", loss="mse", dtype="float64", seed=0)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    _, grads = model.loss_and_grads(X, Y)
    P = model.predict(X)
    wrong = X.T @ (2 * (P - Y) / 5)
    assert not np.allclose(grads[0][0], wrong)
    np.testing.assert_allclose(grads[0][0], wrong / 2, rtol=1e-12)


# ------------------------------------------------------------------ drop-in
OPTIMIZERS = {
    "sgd": lambda fb: fb.SGD(0.05),
    "momentum": lambda fb: fb.SGD(0.05, momentum=0.9),
    "nesterov": lambda fb: fb.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda fb: fb.RMSprop(0.01),
    "adam": lambda fb: fb.Adam(0.01),
    "adamw": lambda fb: fb.AdamW(0.01, weight_decay=0.1),
    "adagrad": lambda fb: fb.AdaGrad(0.05),
}
TOLERANCE = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}


def pair(sizes, dtype, opt, **kw):
    return [fb.MLP(sizes, optimizer=OPTIMIZERS[opt](fb), dtype=dtype, seed=3, **kw) for fb in IMPLS]


def assert_same_weights(a, b, dtype):
    for (Wa, ba), (Wb, bb) in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(Wa, Wb, **TOLERANCE[dtype])
        np.testing.assert_allclose(ba, bb, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_train_steps_match_reference(opt, dtype):
    rng = np.random.default_rng(11)
    fast, ref = pair([6, 9, 1, 4], dtype, opt, activation=["tanh", "relu"])  # a 1-unit layer
    for (W0, b0), (W1, b1) in zip(fast.get_weights(), ref.get_weights()):
        assert np.array_equal(W0, W1) and np.array_equal(b0, b1)  # same initial weights
    for step in range(50):
        m = [1, 7, 16][step % 3]  # batch 1 and odd sizes
        X, y = rng.standard_normal((m, 6)), rng.integers(0, 4, m)
        la, lb = fast.train_step(X, y), ref.train_step(X, y)
        np.testing.assert_allclose(la, lb, rtol=TOLERANCE[dtype]["rtol"])
    assert_same_weights(fast, ref, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_fit_matches_reference(opt, dtype):
    rng = np.random.default_rng(12)
    X, y = rng.standard_normal((103, 5)), rng.integers(0, 3, 103)  # 103 % 16 != 0
    fast, ref = pair([5, 8, 7, 3], dtype, opt, activation="leaky_relu")
    ha = fast.fit(X, y, epochs=3, batch_size=16)
    hb = ref.fit(X, y, epochs=3, batch_size=16)
    np.testing.assert_allclose(ha, hb, rtol=TOLERANCE[dtype]["rtol"])
    assert_same_weights(fast, ref, dtype)
    np.testing.assert_allclose(fast.predict(X), ref.predict(X), **TOLERANCE[dtype])
    ea, eb = fast.evaluate(X, y), ref.evaluate(X, y)
    assert ea["accuracy"] == eb["accuracy"]
    np.testing.assert_allclose(ea["loss"], eb["loss"], rtol=TOLERANCE[dtype]["rtol"])


@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("extras", [dict(), dict(l2=0.01, clip_norm=0.05)], ids=["plain", "l2+clip"])
def test_fit_matches_reference_for_every_loss(output, loss, extras):
    rng = np.random.default_rng(13)
    X = rng.standard_normal((57, 4))
    Y = targets(rng, loss, 57, 2, labels=True)
    models = [fb.MLP([4, 5, 2], activation="sigmoid", output=output, loss=loss, optimizer=fb.Adam(0.02),
                     dtype="float64", seed=4, **extras) for fb in IMPLS]
    h = [m.fit(X, Y, epochs=3, batch_size=10) for m in models]
    np.testing.assert_allclose(h[0], h[1], rtol=1e-9)
    assert_same_weights(*models, "float64")
    la, ga = models[0].loss_and_grads(X, Y)
    lb, gb = models[1].loss_and_grads(X, Y)
    np.testing.assert_allclose(la, lb, rtol=1e-10)
    np.testing.assert_allclose(flat(ga), flat(gb), rtol=1e-9, atol=1e-13)


def test_clipping_really_clips():
    rng = np.random.default_rng(14)
    X, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)
    clipped = fastbp.MLP([4, 8, 3], optimizer=fastbp.SGD(1.0), dtype="float64", seed=0, clip_norm=1e-3)
    free = fastbp.MLP([4, 8, 3], optimizer=fastbp.SGD(1.0), dtype="float64", seed=0)
    w0 = flat(free.get_weights())
    clipped.train_step(X, y)
    free.train_step(X, y)
    np.testing.assert_allclose(np.linalg.norm(flat(clipped.get_weights()) - w0), 1e-3, rtol=1e-4)
    assert np.linalg.norm(flat(free.get_weights()) - w0) > 1e-2


# ----------------------------------------------------------------- learning
@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_learns_xor(fb):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    model = fb.MLP([2, 8, 2], activation="tanh", optimizer=fb.Adam(0.05), dtype="float64", seed=0)
    history = model.fit(X, y, epochs=400, batch_size=4)
    assert history[-1] < 0.01
    assert list(model.predict_classes(X)) == [0, 1, 1, 0]


def iris_like(seed=0):
    """150 x 4, three Gaussian classes (iris's shape), shuffled, split 100 / 50."""
    rng = np.random.default_rng(seed)
    centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
    X = np.concatenate([c + 0.3 * rng.standard_normal((50, 4)) for c in centres])
    y = np.repeat(np.arange(3), 50)
    perm = rng.permutation(150)
    X, y = X[perm], y[perm]
    X = (X - X[:100].mean(0)) / X[:100].std(0)
    return X[:100], y[:100], X[100:], y[100:]


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_learns_iris_shaped_problem(fb):
    X, y, X_test, y_test = iris_like()
    model = fb.MLP([4, 16, 3], optimizer=fb.Adam(0.01), dtype="float32", seed=0)
    model.fit(X, y, epochs=60, batch_size=16)
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95


# -------------------------------------------------------------- determinism
def test_same_seed_same_bits_and_thread_count_does_not_matter():
    rng = np.random.default_rng(15)
    X, y = rng.standard_normal((300, 10)).astype(np.float32), rng.integers(0, 4, 300)

    def run():
        model = fastbp.MLP([10, 32, 16, 4], dtype="float32", seed=9, optimizer=fastbp.AdamW(0.01))
        model.fit(X, y, epochs=3, batch_size=32)
        return model.get_weights()

    first, second = run(), run()
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = run()
    finally:
        numba.set_num_threads(threads)
    for a, b, c in zip(first, second, single):
        for u, v, w in zip(a, b, c):
            assert np.array_equal(u, v) and np.array_equal(u, w)
    other = fastbp.MLP([10, 32, 16, 4], dtype="float32", seed=10)
    assert not np.array_equal(other.get_weights()[0][0], first[0][0])


# ----------------------------------------------------------------- bad input
def bad_calls():
    X, y = np.zeros((6, 3)), np.array([0, 1, 2, 0, 1, 2])
    nan_X = X.copy()
    nan_X[2, 1] = np.nan
    inf_y = np.eye(3)[y]
    inf_y[0, 0] = np.inf
    return [
        ("fit", (np.zeros((6, 4)), y), "4 features but the model expects 3"),
        ("fit", (X, y[:5]), "6 samples but y has 5"),
        ("fit", (nan_X, y), "NaN or inf"),
        ("fit", (X, inf_y), "NaN or inf"),
        ("fit", (X, np.array([0, 1, 2, 3, 1, 2])), r"class label 3 is outside \[0, 3\)"),
        ("fit", (X, np.array([0, -1, 2, 0, 1, 2])), r"class label -1 is outside"),
        ("fit", (np.zeros((0, 3)), np.zeros(0, int)), "empty"),
        ("fit", (X.astype(str), y), "numeric"),
        ("fit", (X.astype(complex), y), "numeric"),
        ("fit", (X.astype(object), y), "numeric"),
        ("fit", (X[:, 0], y), "2-D"),
        ("fit", (X, y.astype(float) + 0.5), "integer class indices"),
        ("fit", (X, y, 0), "epochs"),  # epochs=0 is fine: checked separately below
        ("train_step", (np.zeros((2, 5)), y[:2]), "features"),
        ("evaluate", (X, y[:3]), "samples"),
        ("predict", (np.full((2, 3), np.inf),), "NaN or inf"),
        ("set_weights", ([(np.zeros((3, 4)), np.zeros(4))],), "expected 2"),
        ("set_weights", ([(np.zeros((3, 4)), np.zeros(4)), (np.zeros((4, 4)), np.zeros(3))],), "layer 1"),
    ]


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
@pytest.mark.parametrize("method,args,match", bad_calls())
def test_bad_input_is_rejected_and_changes_nothing(fb, method, args, match):
    model = fb.MLP([3, 4, 3], seed=0)
    before = model.get_weights()
    step = model._step
    if match == "epochs":  # epochs=0 trains nothing; negative epochs are an error
        assert len(model.fit(*args[:2], epochs=0)) == 0
        with pytest.raises(ValueError, match="epochs"):
            model.fit(*args[:2], epochs=-1)
    else:
        with pytest.raises((ValueError, TypeError), match=match):
            getattr(model, method)(*args)
    assert model._step == step
    for (W0, b0), (W1, b1) in zip(before, model.get_weights()):
        assert np.array_equal(W0, W1) and np.array_equal(b0, b1)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
@pytest.mark.parametrize("kwargs,match", [
    (dict(activation="swish"), "unknown activation 'swish'"),
    (dict(output="relu"), "unknown output activation"),
    (dict(loss="hinge"), "unknown loss 'hinge'"),
    (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'"),
    (dict(init="orthogonal"), "unknown init"),
    (dict(dtype="float16"), "unknown dtype"),
    (dict(loss="binary_cross_entropy", output="softmax"), "needs output activation sigmoid"),
    (dict(loss="cross_entropy", output="linear"), "needs output activation softmax"),
    (dict(l2=-1.0), "l2"),
    (dict(clip_norm=0.0), "clip_norm"),
    (dict(seed=-3), "seed"),
    (dict(activation=["relu", "tanh"]), "2 names for 1 hidden layers"),
])
def test_bad_configuration_is_rejected(fb, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fb.MLP([3, 4, 3], **kwargs)


@pytest.mark.parametrize("make,match", [
    (lambda fb: fb.Adam(lr=0.0), "lr"), (lambda fb: fb.SGD(lr=-1.0), "lr"),
    (lambda fb: fb.SGD(0.1, momentum=1.0), "momentum"), (lambda fb: fb.SGD(0.1, nesterov=True), "Nesterov"),
    (lambda fb: fb.Adam(beta1=1.0), "beta1"), (lambda fb: fb.RMSprop(eps=0.0), "eps"),
    (lambda fb: fb.AdamW(weight_decay=-0.1), "weight_decay"), (lambda fb: fb.Adam(lr="fast"), "lr"),
])
def test_bad_optimizer_settings_are_rejected(make, match):
    for fb in IMPLS:
        with pytest.raises((ValueError, TypeError), match=match):
            make(fb)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_batch_size_must_be_positive(fb):
    model = fb.MLP([3, 3], seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(np.zeros((4, 3)), np.zeros(4, int), batch_size=0)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_inputs_are_converted_once(fb):
    rng = np.random.default_rng(16)
    X = rng.standard_normal((20, 3))
    y = rng.integers(0, 3, 20)
    results = []
    for variant in (X, np.asfortranarray(X), np.hstack([X, X])[:, :3], X.tolist(), X.astype(np.float32)):
        model = fb.MLP([3, 4, 3], dtype="float64", seed=0)
        model.fit(variant, y, epochs=2, batch_size=8)
        results.append(flat(model.get_weights()))
    for r in results[:4]:
        assert np.array_equal(r, results[0])
    np.testing.assert_allclose(results[4], results[0], rtol=1e-5)
    ints = fb.MLP([3, 3], dtype="float64", seed=0)
    ints.fit(np.arange(12).reshape(4, 3), [0, 1, 2, 0])  # ints and lists are fine
    ints.fit(np.eye(3, dtype=bool)[[0, 1, 2, 0]], [0, 1, 2, 0])


# --------------------------------------------------------------- save / load
@pytest.mark.parametrize("saver", IMPLS, ids=IDS)
@pytest.mark.parametrize("loader", IMPLS, ids=IDS)
def test_save_load_roundtrip_across_implementations(saver, loader, tmp_path):
    rng = np.random.default_rng(17)
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 2, 30)
    model = saver.MLP([4, 5, 1], activation=["tanh"], output="sigmoid", loss="binary_cross_entropy",
                      optimizer=saver.RMSprop(0.01), dtype="float64", seed=2, l2=0.01)
    model.fit(X, y, epochs=2, batch_size=8)
    model.save(tmp_path / "m.npz")
    loaded = loader.load(tmp_path / "m.npz")
    assert isinstance(loaded, loader.MLP)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-12)
    assert loaded._step == model._step
    np.testing.assert_array_equal(loaded._slots, model._slots)
    # Training goes on identically after loading.
    a = loaded.fit(X, y, epochs=1, batch_size=8)
    b = model.fit(X, y, epochs=1, batch_size=8)
    np.testing.assert_allclose(a, b, rtol=1e-9)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_corrupt_files_are_rejected_with_the_file_named(fb, tmp_path):
    model = fb.MLP([3, 4, 2], seed=0)
    good = tmp_path / "good.npz"
    model.save(good)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        fb.load(truncated)

    corrupt = tmp_path / "corrupt.npz"
    raw = bytearray(data)
    # flip bytes inside the stored parameters (the .npy payload of 'params')
    i = raw.find(b"params.npy")
    raw[i + 200:i + 210] = b"\xff" * 10
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt.npz"):
        fb.load(corrupt)

    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(ValueError, match="foreign.npz.*not a fastbp model"):
        fb.load(foreign)

    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.npz"):
        fb.load(text)

    with pytest.raises(FileNotFoundError):
        fb.load(tmp_path / "missing.npz")


def test_wrong_format_version_is_rejected(tmp_path):
    import json
    model = fastbp.MLP([3, 2], seed=0)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays["header"].tobytes())
    header["version"] = 99
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="future.npz.*version 99"):
        fastbp.load(tmp_path / "future.npz")


def test_save_replaces_existing_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "m.npz"
    first = fastbp.MLP([3, 2], seed=0)
    second = fastbp.MLP([3, 2], seed=1)
    first.save(path)
    second.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    np.testing.assert_array_equal(fastbp.load(path).get_weights()[0][0], second.get_weights()[0][0])


def test_predict_classes_and_history():
    X, y = np.eye(3), np.array([0, 1, 2])
    model = fastbp.MLP([3, 3], optimizer=fastbp.Adam(0.1), seed=0)
    history = model.fit(X, y, epochs=50, batch_size=3)
    assert isinstance(history, list) and len(history) == 50 and history.history["loss"] == list(history)
    assert list(model.predict_classes(X)) == [0, 1, 2]
    regressor = fastbp.MLP([3, 1], output="linear", loss="mse")
    with pytest.raises(ValueError, match="classification"):
        regressor.predict_classes(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.allclose(model.predict(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_shuffle_must_be_a_bool(fb):
    model = fb.MLP([3, 3], seed=0)
    before = model.get_weights()
    with pytest.raises(TypeError, match="shuffle"):
        model.fit(np.zeros((4, 3)), np.zeros(4, int), shuffle="no")
    assert np.array_equal(before[0][0], model.get_weights()[0][0])

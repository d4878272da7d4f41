"""The per-layer non-finite *gradient* guard: a batch whose loss is finite but
whose gradient is not is refused as a gradient fault, in both implementations, in float32
and float64, under every ``on_nonfinite`` policy.

The construction (``overflowing_batch``): a ``[3, 4, 1]`` ReLU network, linear output, MSE.
The bad batch's inputs are 0 except the last column, which holds half the dtype's largest
value; the last row of ``W0`` is ``16 / big`` (a normal number), so every hidden unit sees
about 16 and the output about 16: the loss, ``(16 - target)**2``, is finite.  The output
delta is ``2 (p - t) / n``, about 2,000, so ``dL/dW0[2, 3] = big * delta * W1[3]``
overflows: only the first layer's gradient is inf (its gradient's last weight entry, so
that a check split into chunks must look past the first chunk).  The good batches have a
0 in the last column: they leave that row of ``W0`` as it is, so the bad batch stays bad
after them.

Without the gradient guard the update check would still refuse the batch (an inf gradient
makes an inf or NaN update), but as an *update* fault of layer 0: the tests below pin the
reason (``STATUS_GRAD``, "gradient of layer 0"), the layer and the batch.
"""

import warnings

import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp.kernels.codes import STATUS_GRAD

IMPLS = [fastbp, fastbp.reference]
IMPL_IDS = ["fastbp", "reference"]
DTYPES = ["float32", "float64"]
SIZES = [3, 4, 1]
GRAD_MESSAGE = "the gradient of layer 0 is NaN or inf"


def overflowing_model(fb, dtype, **options):
    """The ``[3, 4, 1]`` model whose ``W0`` last row is ``16 / big``, ``W1 = [0, 0, 0, 1]``."""
    big = np.finfo(dtype).max / 2
    options.setdefault("optimizer", fb.SGD(1e-3))
    model = fb.MLP(SIZES, activation="relu", output="linear", loss="mse", dtype=dtype, seed=0, **options)
    W0 = np.full((3, 4), 0.1)
    W0[2] = 16 / big
    W1 = np.array([[0.0], [0.0], [0.0], [1.0]])
    model.set_weights([(W0, np.zeros(4)), (W1, np.zeros(1))])
    return model


def overflowing_batch(dtype, signs=(1, 1)):
    """Two rows whose loss is finite and whose first-layer gradient overflows; ``signs``: the
    sides of the output the targets lie on (opposite signs: the two rows' gradient entries
    overflow in opposite directions)."""
    big = np.finfo(dtype).max / 2
    X = np.array([[0.0, 0.0, big], [0.0, 0.0, big]], dtype=dtype)
    y = np.array([[-1000.0 * signs[0]], [-1000.0 * signs[1]]], dtype=dtype)
    return X, y


def good_batch(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, 3))
    X[:, 2] = 0.0  # leaves W0's last row (and so the bad batch) as it is
    return X, rng.standard_normal((2, 1))


def data_with_bad_batch(dtype, position=1, batches=3):
    """``batches`` batches of 2 rows (in order), the one at ``position`` ``overflowing_batch``."""
    parts = [overflowing_batch(dtype) if b == position else good_batch(b) for b in range(batches)]
    return np.vstack([p[0] for p in parts]).astype(dtype), np.vstack([p[1] for p in parts]).astype(dtype)


def snapshot(model):
    """Everything an applied step would change: parameters, optimizer state, step count."""
    return model._params_ext.copy(), model._slots.copy(), model._step


def assert_unchanged(model, before):
    params, slots, step = before
    assert np.array_equal(model._params_ext, params)
    assert np.array_equal(model._slots, slots)
    assert model._step == step


# ------------------------------------------------------------------ the construction
@pytest.mark.parametrize("signs", [(1, 1), (1, -1)], ids=["same", "opposite"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_the_batch_has_a_finite_loss_and_an_overflowing_first_layer_gradient(fb, dtype, signs):
    """What the tests below rely on: the loss and the output layer's gradient are finite, the
    first layer's gradient is not (its entry ``W0[2, 3]``)."""
    model = overflowing_model(fb, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, grads = model.loss_and_grads(*overflowing_batch(dtype, signs))
    assert np.isfinite(loss) and 1e5 < loss < 1e7
    (gW0, gb0), (gW1, gb1) = grads
    assert np.isfinite(gW1).all() and np.isfinite(gb1).all() and np.isfinite(gb0).all()
    assert not np.isfinite(gW0[2, 3])
    if signs == (1, 1):
        assert gW0[2, 3] == np.inf


# ------------------------------------------------------------------ train_step
@pytest.mark.parametrize("signs", [(1, 1), (1, -1)], ids=["same", "opposite"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_train_step_refuses_an_overflowing_gradient_as_a_gradient_fault(fb, dtype, signs):
    model = overflowing_model(fb, dtype, optimizer=fb.Adam(1e-3))
    model.train_step(*good_batch(0))  # a step with some optimizer state to keep
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match=f"{GRAD_MESSAGE} at step 2;.*not applied"):
        model.train_step(*overflowing_batch(dtype, signs))
    assert_unchanged(model, before)
    model.train_step(*good_batch(1))  # training goes on from there
    assert model._step == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_internal_step_reports_the_gradient_status_and_layer(fb, dtype):
    """The status the policies act on (``_train_step``, shared by ``train_step`` and ``fit``):
    ``STATUS_GRAD`` for layer 0, the loss being finite."""
    model = overflowing_model(fb, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, status, layer = model._train_step(*model._check_data(*overflowing_batch(dtype)))
    assert np.isfinite(loss)
    assert (int(status), int(layer)) == (STATUS_GRAD, 0)


# ------------------------------------------------------------------ fit, every policy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_fit_raise_names_the_gradient_layer_and_batch(fb, dtype):
    X, y = data_with_bad_batch(dtype, position=1)
    model = overflowing_model(fb, dtype)
    with pytest.raises(FloatingPointError, match=f"{GRAD_MESSAGE} at epoch 1, batch 2;"):
        model.fit(X, y, epochs=2, batch_size=2, shuffle=False)
    assert model._step == 1  # the first batch was applied, the second not
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in model.get_weights())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_fit_stop_warns_with_the_gradient_layer_and_stops(fb, dtype):
    X, y = data_with_bad_batch(dtype, position=2)
    model = overflowing_model(fb, dtype)
    with pytest.warns(RuntimeWarning, match=f"{GRAD_MESSAGE} at epoch 1, batch 3;.*training stopped"):
        history = model.fit(X, y, epochs=3, batch_size=2, shuffle=False, on_nonfinite="stop")
    assert history.stopped is not None and GRAD_MESSAGE in history.stopped
    assert len(history) == 0 and model._step == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_fit_skip_batch_skips_it_and_trains_on_the_rest(fb, dtype):
    """Skipped in every epoch, counted, and the weights are those of training on the good
    batches alone."""
    X, y = data_with_bad_batch(dtype, position=1)
    model = overflowing_model(fb, dtype)
    with pytest.warns(RuntimeWarning, match="skipped 1 batch"):
        history = model.fit(X, y, epochs=2, batch_size=2, shuffle=False, on_nonfinite="skip_batch")
    assert history.history["skipped_batches"] == [1, 1]
    assert model._step == 4
    alone = overflowing_model(fb, dtype)
    keep = np.r_[0:2, 4:6]
    alone.fit(X[keep], y[keep], epochs=2, batch_size=2, shuffle=False)
    for (Wa, ba), (Wb, bb) in zip(model.get_weights(), alone.get_weights()):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_fit_skip_batch_at_the_end_records_the_gradient_fault(fb, dtype):
    """The last batch of the chunk skipped: what the epoch loop hands back to the policy is the
    gradient fault of layer 0 at that batch (both implementations' ``_run_epochs``)."""
    X, y = data_with_bad_batch(dtype, position=2)
    model = overflowing_model(fb, dtype)
    statuses = []
    run_epochs = model._run_epochs

    def recording(*args, **kwargs):
        result = run_epochs(*args, **kwargs)
        statuses.append(tuple(int(v) for v in result[2:]))
        return result

    model._run_epochs = recording
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = model.fit(X, y, epochs=1, batch_size=2, shuffle=False, on_nonfinite="skip_batch")
    assert history.history["skipped_batches"] == [1]
    assert statuses == [(STATUS_GRAD, 0, 2)]


# ------------------------------------------------------------------ the split check
@pytest.mark.parametrize("dtype", DTYPES)
def test_split_gradient_check_finds_an_overflow_past_the_first_chunk(dtype):
    """The check on all threads (``largest_magnitude_split`` with the threshold forced to 0):
    the overflowing entry lies in the layer gradient's last chunk."""
    from fastbp.kernels.codes import Config
    model = overflowing_model(fastbp, dtype)
    model._cfg = tuple(Config(*model._cfg)._replace(par_elements=0))
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match=f"{GRAD_MESSAGE} at step 1;"):
        model.train_step(*overflowing_batch(dtype))
    assert_unchanged(model, before)


# ------------------------------------------------------------------ predict's count
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_predict_counts_exactly_the_outputs_that_are_not_finite(fb):
    """The warning's count is the number of NaN / inf outputs (``network.count_nonfinite``):
    some rows overflow, the others do not."""
    model = fb.MLP([2, 8, 3], output="linear", loss="mse", dtype="float32", seed=0)
    X = np.ones((5, 2), dtype=np.float32)
    X[[1, 3]] = 3e38
    with pytest.warns(RuntimeWarning, match=r"predict: (\d+) outputs are NaN or inf") as record:
        P = model.predict(X)
    bad = int((~np.isfinite(P)).sum())
    assert 0 < bad <= 6 and np.isfinite(P[[0, 2, 4]]).all()
    messages = [str(w.message) for w in record if str(w.message).startswith("predict:")]
    assert len(messages) == 1 and messages[0].startswith(f"predict: {bad} outputs are NaN or inf")


# ------------------------------------------------------------------ the update check's bounds
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt, row", [("Adam", 1), ("AdamW", 1), ("RMSprop", 0), ("AdaGrad", 0)])
@pytest.mark.parametrize("fb", IMPLS, ids=IMPL_IDS)
def test_a_negative_second_moment_is_refused_not_square_rooted(fb, opt, row, dtype):
    """A state row the rules keep non-negative (Adam's second moment, RMSprop's and AdaGrad's
    sums) with a negative entry (only a damaged file could bring one) would make the update's
    square root NaN: the update is refused (layer 0, where the entry is), never written, however
    small the gradient and however far the carried bounds are from overflowing
    (``optim.state_bounds`` gives up the bounds then)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 1))
    model = fb.MLP(SIZES, output="linear", loss="mse", dtype=dtype, seed=0, optimizer=getattr(fb, opt)(1e-3))
    model.train_step(X, y)
    model._slots[row][0] = -1e3
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match="the update of layer 0 would make"):
        model.train_step(X, y)
    assert_unchanged(model, before)


# ------------------------------------------------------------------ the chunked gradient check
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunks", [1, 2, 3, 4, 7])
def test_chunked_largest_magnitude_sees_every_entry(chunks, dtype):
    """``largest_magnitude`` split into any number of chunks (more than this machine's threads,
    too) finds the largest magnitude, an inf, wherever it lies: every chunk covers its share."""
    from fastbp.kernels import network
    from fastbp.kernels.optim import inf_bits
    n = 23
    counts = np.zeros(8, dtype=np.int64)
    for at in range(n):
        x = np.linspace(-1, 1, n).astype(dtype)
        assert network._largest_magnitude_chunks(counts, x, chunks) == network.largest_magnitude(x)
        x[at] = -np.inf if at % 2 else np.inf
        assert network._largest_magnitude_chunks(counts, x, chunks) == inf_bits(x), at
        x[at] = -7.0
        seven = np.array(7.0, dtype=dtype).view(np.int64 if dtype == "float64" else np.int32)
        assert network._largest_magnitude_chunks(counts, x, chunks) == seven, at

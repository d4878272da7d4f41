"""Dropout: identical masks and results in both implementations, exact gradients for a fixed
mask, inactive in inference, seeded and deterministic."""

import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp import kernels as K
from fastbp.kernels.codes import LINEAR
from fastbp.reference import dropout_mask

IMPLS = [fastbp, fastbp.reference]
IDS = ["fastbp", "reference"]


def data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.8)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_kernel_mask_is_the_reference_mask_and_has_the_right_rate(rate):
    A = np.ones((400, 50))
    K.dropout_forward(A, rate, 987654321, 42, 3)
    expected = dropout_mask(987654321, 42, 3, A.shape, rate)
    assert np.array_equal(A, expected)
    dropped = (A == 0).mean()
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / A.size)
    np.testing.assert_allclose(A[A > 0], 1 / (1 - rate))
    other_step = np.ones((400, 50))
    K.dropout_forward(other_step, rate, 987654321, 43, 3)
    assert not np.array_equal(A, other_step)


@pytest.mark.parametrize("index", [0, 5])
def test_a_draw_equal_to_the_rate_is_kept_in_both_passes(index):
    """keep = uniform >= rate, forward and backward: with the rate set to one unit's own draw
    exactly, that unit is kept by both (a backward pass that dropped it would give a gradient
    of a mask the forward pass did not use)."""
    import numba
    from fastbp.kernels.dropout import dropout_stream, dropout_uniform

    @numba.njit
    def draw(key, step, layer, index):  # (compiled: the stream stays a uint64, as in the kernels)
        return dropout_uniform(dropout_stream(key, step, layer), index)

    key, step, layer = 1234, 7, 1
    rate = float(draw(key, step, layer, index))
    assert 0.0 < rate < 1.0
    A = np.ones((1, 6))
    K.dropout_forward(A, rate, key, step, layer)
    scale = 1.0 / (1.0 - rate)
    assert A[0, index] == scale  # kept
    D = np.ones((1, 6))
    K.dropout_backward(D, A, LINEAR, 0.0, rate, key, step, layer)  # derivative 1
    assert D[0, index] == scale
    np.testing.assert_array_equal(D == 0, A == 0)  # the same mask in both passes


@pytest.mark.parametrize("row0", [1, 37, 150])
def test_a_block_of_rows_gets_the_masks_of_its_place_in_the_batch(row0):
    """``row0``: rows ``row0 ..`` of a batch (a data-parallel rank's share) draw the masks those
    rows get in the whole batch, forward and backward."""
    rng = np.random.default_rng(row0)
    A = rng.uniform(0.1, 1.0, (200, 30))
    whole, block = A.copy(), A[row0:row0 + 40].copy()
    K.dropout_forward(whole, 0.4, 11, 5, 2)
    K.dropout_forward(block, 0.4, 11, 5, 2, row0)
    assert np.array_equal(block, whole[row0:row0 + 40])
    D = rng.standard_normal((200, 30))
    D_whole, D_block = D.copy(), D[row0:row0 + 40].copy()
    K.dropout_backward(D_whole, whole, 1, 0.01, 0.4, 11, 5, 2)
    K.dropout_backward(D_block, block, 1, 0.01, 0.4, 11, 5, 2, row0)
    assert np.array_equal(D_block, D_whole[row0:row0 + 40])
    assert (D_block == 0).any() and (D_block != 0).any()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid", "leaky_relu", "linear"])
def test_dropout_training_matches_reference(hidden, dtype):
    X, y = data()
    models = [fb.MLP([5, 12, 9, 3], activation=hidden, dropout=[0.3, 0.5], optimizer=fb.Adam(0.01),
                     dtype=dtype, seed=4) for fb in IMPLS]
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    la, lb = models[0].loss_and_grads(X, y), models[1].loss_and_grads(X, y)
    np.testing.assert_allclose(la[0], lb[0], **tol)
    for (gWa, gba), (gWb, gbb) in zip(la[1], lb[1]):
        np.testing.assert_allclose(gWa, gWb, **tol)
        np.testing.assert_allclose(gba, gbb, **tol)
    for _ in range(5):
        np.testing.assert_allclose(models[0].train_step(X[:17], y[:17]), models[1].train_step(X[:17], y[:17]),
                                   rtol=tol["rtol"])
    h = [m.fit(X, y, epochs=3, batch_size=16) for m in models]
    np.testing.assert_allclose(h[0], h[1], rtol=tol["rtol"])
    for (Wa, ba), (Wb, bb) in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(Wa, Wb, **tol)
        np.testing.assert_allclose(ba, bb, **tol)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
@pytest.mark.parametrize("hidden", ["tanh", "sigmoid", "linear"])
def test_dropout_gradients_match_finite_differences_for_a_fixed_mask(fb, hidden):
    X, y = data(8)
    model = fb.MLP([5, 7, 6, 3], activation=hidden, dropout=0.4, dtype="float64", seed=1)
    report = fb.gradcheck(model, X, y)  # loss_and_grads uses the next step's (fixed) masks
    assert max(max(r.values()) for r in report) < 1e-6


def test_dropout_changes_training_but_not_inference():
    X, y = data()
    with_dropout = fastbp.MLP([5, 12, 3], dropout=0.5, dtype="float64", seed=4)
    without = fastbp.MLP([5, 12, 3], dtype="float64", seed=4)
    for (Wa, ba), (Wb, bb) in zip(with_dropout.get_weights(), without.get_weights()):
        assert np.array_equal(Wa, Wb)  # the mask key is drawn after the weights
    assert with_dropout.loss_and_grads(X, y)[0] != without.loss_and_grads(X, y)[0]
    np.testing.assert_array_equal(with_dropout.predict(X), without.predict(X))
    assert with_dropout.evaluate(X, y) == without.evaluate(X, y)


def test_dropout_is_deterministic_and_survives_save_load(tmp_path):
    X, y = data()

    def run():
        model = fastbp.MLP([5, 12, 3], dropout=0.3, dtype="float64", seed=None)
        return model

    a = fastbp.MLP([5, 12, 3], dropout=0.3, dtype="float64", seed=8)
    b = fastbp.MLP([5, 12, 3], dropout=0.3, dtype="float64", seed=8)
    a.fit(X, y, epochs=2)
    b.fit(X, y, epochs=2)
    assert all(np.array_equal(u[0], v[0]) for u, v in zip(a.get_weights(), b.get_weights()))
    unseeded = run()
    unseeded.fit(X, y, epochs=1)
    unseeded.save(tmp_path / "m.npz")
    copy = fastbp.load(tmp_path / "m.npz")
    copy_ref = fastbp.reference.load(tmp_path / "m.npz")
    assert copy._dropout_key == unseeded._dropout_key == copy_ref._dropout_key != 0
    for m in (copy, copy_ref):
        m.fit(X, y, epochs=1, shuffle=False)
    unseeded.fit(X, y, epochs=1, shuffle=False)
    for (Wa, _), (Wb, _), (Wc, _) in zip(unseeded.get_weights(), copy.get_weights(), copy_ref.get_weights()):
        assert np.array_equal(Wa, Wb)
        np.testing.assert_allclose(Wa, Wc, rtol=1e-9)


@pytest.mark.parametrize("bad,match", [(1.0, r"\[0, 1\)"), (-0.1, "dropout"), ([0.1, 0.2], "2 rates for 1")])
def test_bad_dropout_is_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        fastbp.MLP([5, 12, 3], dropout=bad)

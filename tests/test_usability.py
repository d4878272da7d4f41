"""What a newcomer meets first (issue 12, part 4): defaults that follow from the other
arguments, errors that say what is accepted, and an API that describes itself.  Both
implementations."""

import json

import numpy as np
import pytest

import fastbp


# ------------------------------------------------------- the output a loss implies
@pytest.mark.parametrize("loss,output", [("mse", "linear"), ("binary_cross_entropy", "sigmoid"),
                                         ("cross_entropy", "softmax"), ("mean_squared_error", "linear"),
                                         ("bce", "sigmoid"), ("ce", "softmax")])
def test_output_defaults_to_what_the_loss_implies(fb, loss, output):
    model = fb.MLP([3, 4, 2], loss=loss)
    assert model.output == output
    assert model.get_config()["output"] == output


def test_regression_with_the_default_output_trains(fb):
    """The newcomer's ``MLP([10, 16, 1], loss="mse")`` is a linear-output regressor that learns
    (it was a one-unit softmax: the constant 1.0, trained to nothing)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10))
    y = X[:, 0] - 2 * X[:, 1]
    model = fb.MLP([10, 16, 1], loss="mse", optimizer=fb.Adam(0.01), dtype="float64", seed=0)
    history = model.fit(X, y, epochs=30, batch_size=32)
    assert history[-1] < 0.2 * history[0]
    assert np.std(model.predict(X)) > 0.5


@pytest.mark.parametrize("kwargs", [dict(), dict(loss="cross_entropy"), dict(output="softmax"),
                                    dict(output="softmax", loss="mse"), dict(output="Softmax", loss="mse")])
def test_a_one_unit_softmax_is_refused_for_every_loss(fb, kwargs):
    with pytest.raises(ValueError, match="at least 2 output units.*output='linear'.*output='sigmoid'"):
        fb.MLP([3, 4, 1], **kwargs)


def test_the_resolved_output_is_saved_and_loaded(fb, tmp_path):
    model = fb.MLP([3, 4, 1], loss="bce", seed=0)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        header = json.loads(f["header"].tobytes())
    assert header["config"]["output"] == "sigmoid"
    assert fb.load(tmp_path / "m.npz").output == "sigmoid"


def test_a_saved_one_unit_softmax_is_refused_on_load(tmp_path):
    """Earlier versions built ``mse`` models with a one-unit softmax (whose gradient is 0: they
    never trained); such a file is refused with the reason, not loaded as a constant model."""
    fastbp.MLP([3, 4, 1], output="linear", loss="mse", seed=0).save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays["header"].tobytes())
    header["config"]["output"] = "softmax"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match="old.npz.*at least 2 output units"):
        fastbp.load(tmp_path / "old.npz")

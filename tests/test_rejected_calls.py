"""A call that is refused changes nothing: not the weights, not the optimizer state, not the
model's random generator (a same-seed twin that never saw the call must stay in step)."""

import numpy as np
import pytest

import fastbp
import fastbp.model


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 3)), rng.integers(0, 2, 40)


def _same_models(a, b):
    for (Wa, ba), (Wb, bb) in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)
    assert a._rng.bit_generator.state == b._rng.bit_generator.state
    assert a._step == b._step and a._epoch == b._epoch and a._batches == b._batches


BAD_SCHEDULES = {
    "nan rate": lambda t: float("nan"),
    "inf rate": lambda t: float("inf"),
    "zero rate": lambda t: 0.0,
    "negative rate": lambda t: -1e-3,
    "a string": lambda t: "fast",
    "None": lambda t: None,
    "raises": lambda t: 1 / 0,
}


@pytest.mark.parametrize("kind", list(BAD_SCHEDULES))
def test_a_refused_schedule_leaves_the_generator_alone(fb, kind):
    X, y = _data()
    model, twin = fb.MLP([3, 5, 2], dtype="float64", seed=3), fb.MLP([3, 5, 2], dtype="float64", seed=3)
    with pytest.raises((ValueError, TypeError, ZeroDivisionError)):
        model.fit(X, y, epochs=3, batch_size=8, lr_schedule=BAD_SCHEDULES[kind])
    _same_models(model, twin)
    model.fit(X, y, epochs=2, batch_size=8)
    twin.fit(X, y, epochs=2, batch_size=8)
    _same_models(model, twin)


def test_a_failed_workspace_allocation_leaves_the_model_alone(monkeypatch):
    X, y = _data()
    model, twin = fastbp.MLP([3, 5, 2], dtype="float64", seed=3), fastbp.MLP([3, 5, 2], dtype="float64", seed=3)

    def no_memory(*args, **kwargs):
        raise MemoryError("no room for the workspace")

    with monkeypatch.context() as patch:
        patch.setattr(fastbp.model, "make_workspace", no_memory)
        with pytest.raises(MemoryError):
            model.fit(X, y, epochs=3, batch_size=8)
    _same_models(model, twin)
    model.fit(X, y, epochs=2, batch_size=8)
    twin.fit(X, y, epochs=2, batch_size=8)
    _same_models(model, twin)

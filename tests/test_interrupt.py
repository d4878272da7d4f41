"""A fit stopped part-way leaves exactly a model that trained the steps it applied: weights,
optimizer state, step / epoch / mini-batch counts, schedule position and shuffle generator
belong together, so the next fit (or save -> load -> fit) ends bit for bit where an
unstopped one ends.  Here a non-finite batch stops an epoch part-way: the batches before it
are counted, and the next fit finishes that epoch in its order.
"""

import warnings

import numpy as np
import pytest

import fastbp
import fastbp.reference

IMPLS = {"fastbp": fastbp, "reference": fastbp.reference}


def model_state(model):
    """Everything a model trains with, for bitwise comparison (the shape of the data of the
    last fit only when an epoch over it is unfinished: it is no state otherwise)."""
    ignored = ("status", "bad_layer", "bad_batch") + (() if model._field("batch") else
                                                      ("samples", "batch_size", "shuffled"))
    return dict(params=model._params_ext.copy(), slots=model._slots.copy(), rng=model._rng.bit_generator.state,
                counts={name: model._fields[name][0].item() for name in model._fields if name not in ignored})


def assert_same_state(a, b):
    a, b = model_state(a), model_state(b)
    assert a["counts"] == b["counts"]
    assert a["rng"] == b["rng"]
    assert np.array_equal(a["params"], b["params"]) and np.array_equal(a["slots"], b["slots"])


# --------------------------------------------------- a non-finite batch stops an epoch part-way
def poisoned_data():
    """Regression data with one row that overflows the network: its batch is never finite."""
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((61, 4)), rng.standard_normal((61, 2))
    X[37] = 1e200
    return X, y


def poisoned_model(fb):
    return fb.MLP([4, 8, 2], activation="relu", output="linear", loss="mse", optimizer=fb.Adam(1e-2),
                  dtype="float64", seed=0)


def stop_at_the_poisoned_batch(model, X, y, policy):
    """Train until the poisoned batch stops the third epoch; the batch index it stopped at."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(X, y, epochs=2, batch_size=8, on_nonfinite="skip_batch", shuffle=True)
        stops = model._batches
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="epoch 1, batch"):
                model.fit(X, y, epochs=3, batch_size=8, on_nonfinite="raise")
        else:
            assert model.fit(X, y, epochs=3, batch_size=8, on_nonfinite="stop").stopped
    done = model._batches - stops
    assert done > 0  # (the seeds put the poisoned row inside the epoch)
    return done


@pytest.mark.parametrize("fb", IMPLS.values(), ids=list(IMPLS))
@pytest.mark.parametrize("policy", ["raise", "stop"])
def test_a_non_finite_batch_leaves_the_batches_before_it_counted(fb, policy):
    X, y = poisoned_data()
    model = poisoned_model(fb)
    done = stop_at_the_poisoned_batch(model, X, y, policy)
    assert model._epoch == 2 and model._field("batch") == done
    # 2 epochs of 8 batches with one skipped each, then the batches applied before the bad one
    assert model._batches == 16 + done and model._step == 14 + done
    # the generator is at the start of the stopped epoch, as after the 2 epochs before it
    two_epochs = poisoned_model(fb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        two_epochs.fit(X, y, epochs=2, batch_size=8, on_nonfinite="skip_batch")
    assert model._rng.bit_generator.state == two_epochs._rng.bit_generator.state


@pytest.mark.parametrize("saver", IMPLS.values(), ids=list(IMPLS))
@pytest.mark.parametrize("loader", [None, *IMPLS.values()], ids=["same-process", *IMPLS])
def test_the_next_fit_finishes_the_stopped_epoch(saver, loader, tmp_path):
    """Stopped at the poisoned batch, then fit again (skipping it): the same weights, counts,
    generator and losses as a fit that skipped it all along, also after save -> load in
    either implementation."""
    X, y = poisoned_data()
    straight = poisoned_model(saver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h_straight = straight.fit(X, y, epochs=2, batch_size=8, on_nonfinite="skip_batch", shuffle=True)
        h_straight = list(h_straight) + list(straight.fit(X, y, epochs=4, batch_size=8, on_nonfinite="skip_batch"))
    model = poisoned_model(saver)
    stop_at_the_poisoned_batch(model, X, y, "raise")
    if loader is not None:
        model.save(tmp_path / "stopped.npz")
        model = loader.load(tmp_path / "stopped.npz")
        if loader is not saver:  # the same steps, in the other implementation's arithmetic
            return _continue_across(model, straight, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = model.fit(X, y, epochs=4, batch_size=8, on_nonfinite="skip_batch")
    assert list(history) == h_straight[2:]
    assert_same_state(model, straight)


def _continue_across(model, straight, X, y):
    """Across implementations only the counts and the generator are exact."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(X, y, epochs=4, batch_size=8, on_nonfinite="skip_batch")
    a, b = model_state(model), model_state(straight)
    assert a["counts"]["step"] == b["counts"]["step"] and a["counts"]["batches"] == b["counts"]["batches"]
    assert a["counts"]["epoch"] == b["counts"]["epoch"] and a["rng"] == b["rng"]
    np.testing.assert_allclose(a["params"], b["params"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fb", IMPLS.values(), ids=list(IMPLS))
def test_a_stopped_epoch_over_data_of_another_shape_is_closed(fb):
    """The next fit cannot finish an epoch over other rows: it counts it as done, draws its
    order (so the generator is where that epoch's end would have left it) and warns."""
    X, y = poisoned_data()
    model = poisoned_model(fb)
    done = stop_at_the_poisoned_batch(model, X, y, "raise")
    rng = np.random.default_rng()
    rng.bit_generator.state = model._rng.bit_generator.state
    rng.shuffle(np.arange(len(X)))  # the stopped epoch's order
    rng.shuffle(np.arange(30))  # the next epoch's, over 30 rows (without the poisoned one)
    with pytest.warns(RuntimeWarning, match=f"epoch 3 stopped after {done} batches of 8 .*another shape"):
        model.fit(X[:30], y[:30], epochs=1, batch_size=8)
    assert model._epoch == 4 and model._field("batch") == 0
    assert model._batches == 16 + done + 4
    assert model._rng.bit_generator.state == rng.bit_generator.state


@pytest.mark.parametrize("fb", IMPLS.values(), ids=list(IMPLS))
def test_a_refused_schedule_does_not_close_a_stopped_epoch(fb):
    """fit over data of another shape with a schedule that fails is refused before the stopped
    epoch is closed: nothing changes."""
    X, y = poisoned_data()
    model = poisoned_model(fb)
    stop_at_the_poisoned_batch(model, X, y, "raise")
    before = model_state(model)
    with pytest.raises(ValueError, match="lr_schedule"):
        model.fit(X[:30], y[:30], epochs=1, batch_size=8, lr_schedule=lambda t: float("nan"))
    after = model_state(model)
    assert after["counts"] == before["counts"] and after["rng"] == before["rng"]

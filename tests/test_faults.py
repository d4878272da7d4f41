"""Faults: diverging training, interrupted saves. Nothing is lost, nothing is silent."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import fastbp
import fastbp.reference

IMPLS = [fastbp, fastbp.reference]


def diverging_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = rng.standard_normal((64, 1)) * 1e3
    return X, y


def diverging_model(fb):
    # SGD with lr=10 on targets of size 1e3 overflows within the first epoch.
    return fb.MLP([3, 8, 1], output="linear", loss="mse", optimizer=fb.SGD(10.0), dtype="float64", seed=0)


def all_finite(model):
    return all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in model.get_weights())


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_divergence_raises_and_keeps_last_finite_weights(fb):
    X, y = diverging_problem()
    model = diverging_model(fb)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch \d+.*not applied"):
        model.fit(X, y, epochs=5, batch_size=8)
    assert all_finite(model)
    assert model._step >= 1  # the batches before the bad one were applied


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_divergence_stop_warns_and_stops(fb):
    X, y = diverging_problem()
    model = diverging_model(fb)
    with pytest.warns(RuntimeWarning, match="training stopped"):
        history = model.fit(X, y, epochs=5, batch_size=8, on_nonfinite="stop")
    assert history.stopped is not None and "NaN or inf" in history.stopped
    assert len(history) == 0  # the first epoch did not complete
    assert all_finite(model)


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_divergence_skip_batch_counts_skips(fb):
    X, y = diverging_problem()
    model = diverging_model(fb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = model.fit(X, y, epochs=3, batch_size=8, on_nonfinite="skip_batch")
    assert len(history) == 3
    assert sum(history.history["skipped_batches"]) > 0
    assert all_finite(model)


def test_divergence_is_identical_in_both_implementations():
    X, y = diverging_problem()
    results = []
    for fb in IMPLS:
        model = diverging_model(fb)
        with pytest.raises(FloatingPointError) as info:
            model.fit(X, y, epochs=5, batch_size=8)
        results.append((str(info.value), model._step, model.get_weights()))
    (msg_a, step_a, w_a), (msg_b, step_b, w_b) = results
    assert msg_a == msg_b and step_a == step_b
    for (Wa, ba), (Wb, bb) in zip(w_a, w_b):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-9)
        np.testing.assert_allclose(ba, bb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_train_step_with_nonfinite_gradient_updates_nothing(fb):
    model = fb.MLP([2, 3, 1], output="linear", loss="mse", dtype="float64", seed=0)
    before = model.get_weights()
    X = np.array([[1e300, 1e300]])
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        model.train_step(X, np.array([[1e300]]))
    for (W0, b0), (W1, b1) in zip(before, model.get_weights()):
        assert np.array_equal(W0, W1) and np.array_equal(b0, b1)
    assert model._step == 0


def test_invalid_policy_is_rejected():
    model = fastbp.MLP([2, 2], output="linear", loss="mse")
    with pytest.raises(ValueError, match="on_nonfinite"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 2)), on_nonfinite="ignore")


# --------------------------------------------------------------- saving
def trained(fb, seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    model = fb.MLP([5, 7, 3], optimizer=fb.Adam(0.01), dtype="float64", seed=seed)
    model.fit(X, y, epochs=2, batch_size=8)
    return model


def _kill_while_writing(child):
    """Run ``child`` (a script that prints "writing" once its save is under way) and SIGKILL it then."""
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_failing_write_leaves_previous_file_intact(fb, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = trained(fb, seed=0)
    old.save(path)
    original = path.read_bytes()
    new = trained(fb, seed=1)

    def broken_savez(file, **arrays):
        file.write(b"partial garbage")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind
    np.testing.assert_array_equal(fb.load(path).get_weights()[0][0], old.get_weights()[0][0])


def test_killed_save_leaves_previous_file_intact(tmp_path):
    """A process killed in the middle of writing leaves the old file readable."""
    path = tmp_path / "model.npz"
    old = trained(fastbp, seed=0)
    old.save(path)
    original = path.read_bytes()
    child = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        import fastbp
        real_savez = np.savez
        def slow_savez(file, **arrays):
            file.write(b"x" * 4096)
            file.flush()
            print("writing", flush=True)
            time.sleep(60)
            real_savez(file, **arrays)
        np.savez = slow_savez
        model = fastbp.MLP([5, 7, 3], dtype="float64", seed=3)
        model.save({str(path)!r})
        """
    )
    _kill_while_writing(child)
    assert path.read_bytes() == original
    loaded = fastbp.load(path)
    np.testing.assert_array_equal(loaded.get_weights()[0][0], old.get_weights()[0][0])
    leftovers = [p for p in os.listdir(tmp_path) if p != "model.npz"]
    # A killed process cannot clean up its temporary file; it must not be mistaken for a model.
    assert all(p.startswith(".fastbp-") and p.endswith(".tmp") for p in leftovers)


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_resume_after_load_is_bitwise_identical(fb, tmp_path):
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((50, 4)), rng.integers(0, 3, 50)
    straight = fb.MLP([4, 6, 3], optimizer=fb.Adam(0.01), dtype="float64", seed=5)
    straight.fit(X, y, epochs=4, batch_size=8)

    first = fb.MLP([4, 6, 3], optimizer=fb.Adam(0.01), dtype="float64", seed=5)
    first.fit(X, y, epochs=2, batch_size=8)
    first.save(tmp_path / "half.npz")
    resumed = fb.load(tmp_path / "half.npz")
    resumed.fit(X, y, epochs=2, batch_size=8)
    for (Wa, ba), (Wb, bb) in zip(straight.get_weights(), resumed.get_weights()):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def _o_tmpfile_works(directory):
    try:
        os.close(os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o600))
        return os.path.isdir("/proc/self/fd")
    except (AttributeError, OSError):
        return False


@pytest.mark.slow
def test_killed_saves_leave_no_temporary_file(tmp_path):
    """Where the platform has unnamed temporaries (Linux O_TMPFILE), a save killed while
    writing leaves nothing in the directory."""
    if not _o_tmpfile_works(str(tmp_path)):
        pytest.skip("no O_TMPFILE on this platform / file system: stale temporaries are swept instead")
    path = tmp_path / "model.npz"
    child = textwrap.dedent(
        f"""
        import time
        import numpy as np
        import fastbp
        def slow_savez(file, **arrays):
            file.write(b"x" * 4096)
            file.flush()
            print("writing", flush=True)
            time.sleep(60)
        np.savez = slow_savez
        fastbp.MLP([5, 7, 3], dtype="float64", seed=3).save({str(path)!r})
        """
    )
    for _ in range(3):
        _kill_while_writing(child)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("call", ["save", "load"])
def test_stale_temporaries_are_swept_by_the_next_save_or_load(fb, tmp_path, call):
    """Temporaries of killed writers (named ``.fastbp-*.tmp``, untouched for an hour) are
    removed by the next save or load in that directory; a fresh one (a live writer's) and
    other files are not."""
    from fastbp import fileformat

    path = tmp_path / "model.npz"
    trained(fb).save(path)
    stale, fresh = tmp_path / ".fastbp-dead.tmp", tmp_path / ".fastbp-live.tmp"
    others = [tmp_path / ".fastbp-notes.txt", tmp_path / "data.tmp"]
    for p in [stale, fresh] + others:
        p.write_bytes(b"x" * 100)
    old = time.time() - fileformat.STALE_TEMPORARY_SECONDS - 60
    for p in [stale] + others:
        os.utime(p, (old, old))
    if call == "save":
        trained(fb, seed=1).save(path)
    else:
        fb.load(path)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in [path, fresh] + others)


# ------------------------------------------ an update that would not be finite is refused
ALL_OPTIMIZERS = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("RMSprop", {}), ("Adam", {}), ("AdamW", {}), ("AdaGrad", {}),
]


def model_state(model):
    return model._params_ext.copy(), model._slots.copy(), model._step


def assert_unchanged(model, state):
    params, slots, step = state
    assert np.array_equal(model._params_ext, params) and np.array_equal(model._slots, slots)
    assert model._step == step
    assert np.isfinite(model._params_ext).all() and np.isfinite(model._slots).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kwargs", ALL_OPTIMIZERS, ids=[f"{n}{k}" for n, k in ALL_OPTIMIZERS])
@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_update_that_overflows_is_not_applied(fb, name, kwargs, dtype):
    """Loss and gradient finite, the step not: a learning rate of the dtype's largest number
    (a schedule can hand one over) overflows every rule.  Under "raise" nothing of the step
    is written and the message, which says the weights are the last finite ones, is true."""
    X, y = diverging_problem()
    y = y / 100  # targets of size 10: gradients above 1, a stable first epoch
    model = fb.MLP([3, 8, 1], output="linear", loss="mse", optimizer=getattr(fb, name)(**kwargs), dtype=dtype,
                   seed=0)
    model.fit(X, y, epochs=1, batch_size=16)  # some steps first: non-zero optimizer state
    before = model_state(model)
    huge = float(np.finfo(dtype).max)
    with pytest.raises(FloatingPointError, match=r"update of layer \d would make .* NaN or inf .*last finite ones"):
        model.fit(X, y, epochs=1, batch_size=16, lr_schedule=lambda step: huge)
    assert_unchanged(model, before)
    with pytest.warns(RuntimeWarning, match="skipped 4 batch.*update"):
        history = model.fit(X, y, epochs=2, batch_size=16, on_nonfinite="skip_batch", lr_schedule=lambda step: huge)
    assert history.history["skipped_batches"] == [4, 4]
    assert_unchanged(model, before)


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_adam_second_moment_overflow_is_detected(fb):
    """Inputs of 1e30 in float32: finite loss and gradient, but g**2 overflows Adam's second
    moment; applied, it would freeze the parameters forever (m / inf = 0) with no signal."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((64, 4)) * 1e30).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = fb.MLP([4, 8, 3], optimizer=fb.Adam(1e-3), seed=1)
    before = model_state(model)
    with pytest.raises(FloatingPointError, match="update of layer"):
        model.fit(X, y, epochs=1, batch_size=16)
    assert_unchanged(model, before)
    with pytest.raises(FloatingPointError, match="update of layer"):
        model.train_step(X[:16], y[:16])
    assert_unchanged(model, before)


class HugeFromStep5:
    """A per-step schedule: 1e-3 for five steps, then float64's near-largest rate."""
    unit = "step"

    def __call__(self, step):
        return 1e-3 if step < 5 else 1e308


def test_nonfinite_update_is_identical_in_both_implementations():
    X, y = diverging_problem()
    results = []
    for fb in IMPLS:
        model = fb.MLP([3, 8, 1], output="linear", loss="mse", optimizer=fb.SGD(0.01), dtype="float64", seed=0)
        with pytest.raises(FloatingPointError) as info:
            model.fit(X, y, epochs=3, batch_size=8, lr_schedule=HugeFromStep5())
        results.append((str(info.value), model._step, model._params_ext.copy()))
    (msg_a, step_a, p_a), (msg_b, step_b, p_b) = results
    assert msg_a == msg_b and "epoch 1, batch 6" in msg_a and step_a == step_b == 5
    np.testing.assert_allclose(p_a, p_b, rtol=1e-10)


@pytest.mark.parametrize("kwargs,message", [
    (dict(optimizer=fastbp.Adam(1e-3, eps=1e-50)), r"Adam\(eps=...\): 1e-50 underflows in float32 \(it would be 0;"),
    (dict(optimizer=fastbp.Adam(1e-3, eps=1e-310), dtype="float64"), "subnormal, which the kernels flush to 0"),
    (dict(optimizer=fastbp.RMSprop(1e-3, eps=1e-40)), r"underflows in float32 \(it would be subnormal, which"),
    (dict(optimizer=fastbp.SGD(lr=1e300)), r"SGD\(lr=...\): 1e\+300 overflows to inf in float32"),
    (dict(optimizer=fastbp.SGD(lr=1e-3, momentum=1e-45)), "momentum=...\\): 1e-45 underflows"),
    (dict(l2=1e-46), "l2: 1e-46 underflows in float32"),
    (dict(leaky_slope=1e-320, dtype="float64"), "leaky_slope: 1e-320 underflows in float64"),
    # the kernels would flush it, and clipping would be off in fastbp only
    (dict(clip_norm=1e-320, dtype="float64"), r"clip_norm: 1e-320 underflows in float64 \(it would be subnormal"),
    (dict(clip_norm=1e-40), r"clip_norm: 1e-40 underflows in float32 \(it would be subnormal"),
])
@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_settings_that_vanish_or_overflow_in_the_dtype_are_refused(fb, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fb.MLP([4, 8, 3], **kwargs)


def test_a_clip_norm_subnormal_in_float32_only_is_a_float64_models_setting():
    for fb in IMPLS:
        assert fb.MLP([4, 8, 3], clip_norm=1e-40, dtype="float64").clip_norm == 1e-40


def test_the_issue_reproducer_is_refused_and_its_float64_twin_trains():
    """A reported reproducer: ``Adam(eps=1e-50)`` in float32 (eps would be 0: 0 / 0 for an
    input column of zeros) is refused; in float64 eps is representable and training matches
    the reference to 1e-10 with finite weights."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    X[:, 3] = 0
    y = rng.integers(0, 3, 64)
    with pytest.raises(ValueError, match="eps"):
        fastbp.MLP([4, 8, 3], optimizer=fastbp.Adam(1e-3, eps=1e-50))
    models = [fb.MLP([4, 8, 3], optimizer=fb.Adam(1e-3, eps=1e-50), dtype="float64", seed=0) for fb in IMPLS]
    losses = [m.fit(X, y, epochs=3, batch_size=16) for m in models]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-10)
    np.testing.assert_allclose(models[0]._params_ext, models[1]._params_ext, rtol=1e-10, atol=1e-14)
    assert np.isfinite(models[0]._params_ext).all()


@pytest.mark.parametrize("fb", IMPLS, ids=lambda m: m.__name__)
def test_running_average_overflow_is_not_applied(fb):
    """Batch norm's running variance is state too.  Unscaled float32 inputs of 1e20: the
    batch variance overflows to inf, the normalised values become 0, and loss, gradient and
    parameter update are all finite; applied, the step would make the running variance inf
    and every later prediction constant.  It is not applied."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = fb.MLP([4, 8, 3], batch_norm=True, seed=0)
    model.train_step(X * 1e10, y)  # control: a batch variance of 1e20 is applied
    before = model_state(model)
    with pytest.raises(FloatingPointError, match="update of layer 0"):
        model.train_step(X * 1e20, y)
    assert_unchanged(model, before)

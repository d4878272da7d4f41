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

"""Threads (inference from several at once; training from two refused) and datasets on disk."""

import threading
import time

import numpy as np
import pytest

import fastbp
import fastbp.reference


def test_predict_and_evaluate_from_many_threads():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3000, 20)), rng.integers(0, 4, 3000)
    model = fastbp.MLP([20, 64, 64, 4], dtype="float64", seed=0)
    model.fit(X[:500], y[:500], epochs=1)
    inputs = [X[i * 700:(i + 1) * 700 + 300] for i in range(4)]
    expected_P = [model.predict(x) for x in inputs]
    expected_m = [model.evaluate(x, y[i * 700:(i + 1) * 700 + 300]) for i, x in enumerate(inputs)]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(20):
                P = model.predict(inputs[i])
                metrics = model.evaluate(inputs[i], y[i * 700:(i + 1) * 700 + 300])
                if not np.array_equal(P, expected_P[i]) or metrics != expected_m[i]:
                    results[i] = False
                    return
            results[i] = True
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {0: True, 1: True, 2: True, 3: True}


@pytest.mark.parametrize("fb", [fastbp, fastbp.reference], ids=lambda m: m.__name__)
def test_training_from_two_threads_is_refused(fb):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((4000, 30)), rng.integers(0, 3, 4000)
    model = fb.MLP([30, 64, 3], dtype="float64", seed=0)
    model.fit(X[:64], y[:64], epochs=1)  # compile first
    done = threading.Event()

    epochs = 200 if fb is fastbp else 10  # about a second either way

    def long_fit():
        model.fit(X, y, epochs=epochs, batch_size=8)
        done.set()

    worker = threading.Thread(target=long_fit)
    worker.start()
    deadline = time.time() + 30
    while not model._training.locked() and time.time() < deadline:
        time.sleep(0.001)
    assert model._training.locked()
    before = model.get_weights()  # reading is allowed
    for call in (lambda: model.fit(X, y, epochs=1), lambda: model.train_step(X[:8], y[:8]),
                 lambda: model.loss_and_grads(X[:8], y[:8]), lambda: model.set_weights(before)):
        with pytest.raises(RuntimeError, match="another thread"):
            call()
    worker.join()
    assert done.is_set()
    model.fit(X[:64], y[:64], epochs=1)  # free again once the other thread is done


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_memmap_dataset_gives_the_same_weights(tmp_path, dtype):
    rng = np.random.default_rng(2)
    data = rng.standard_normal((5000, 12)).astype(dtype)
    y = rng.integers(0, 3, 5000)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=dtype, mode="w+", shape=data.shape)
    mm[:] = data
    mm.flush()
    del mm
    X_disk = np.memmap(path, dtype=dtype, mode="r", shape=data.shape)

    on_disk = fastbp.MLP([12, 16, 3], dtype=dtype, seed=0)
    on_disk.fit(X_disk, y, epochs=2, batch_size=64)
    in_ram = fastbp.MLP([12, 16, 3], dtype=dtype, seed=0)
    in_ram.fit(data, y, epochs=2, batch_size=64)
    for (Wa, ba), (Wb, bb) in zip(on_disk.get_weights(), in_ram.get_weights()):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)
    np.testing.assert_array_equal(on_disk.predict(X_disk[:100]), in_ram.predict(data[:100]))


# ------------------------------------------- readers see one state, never half of a write
@pytest.mark.parametrize("fb", [fastbp, fastbp.reference], ids=["fastbp", "reference"])
def test_set_weights_and_predict_are_atomic_with_respect_to_each_other(fb):
    """Predictions made while another thread swaps two weight sets match one of them exactly."""
    rng = np.random.default_rng(0)
    sizes = [30, 200, 200, 5]
    model = fb.MLP(sizes, dtype="float64", seed=0)
    sets = [[(rng.standard_normal((a, b)), rng.standard_normal(b)) for a, b in zip(sizes[:-1], sizes[1:])]
            for _ in range(2)]
    X = rng.standard_normal((64, 30))
    expected = []
    for weights in sets:
        model.set_weights(weights)
        expected.append(model.predict(X))
    assert not np.array_equal(expected[0], expected[1])
    stop = threading.Event()

    def swap():
        i = 0
        while not stop.is_set():
            model.set_weights(sets[i % 2])
            i += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        seen = [model.predict(X) for _ in range(150)]
    finally:
        stop.set()
        swapper.join()
    torn = sum(not (np.array_equal(P, expected[0]) or np.array_equal(P, expected[1])) for P in seen)
    assert torn == 0, f"{torn} of {len(seen)} predictions matched neither weight set"


@pytest.mark.parametrize("fb", [fastbp, fastbp.reference], ids=["fastbp", "reference"])
def test_saves_during_training_are_consistent_snapshots(fb, tmp_path):
    """Files saved from another thread while fit runs all load, and each is one moment of
    training: its step count, epoch and batch counters and weights belong together."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((256, 8)), rng.integers(0, 3, 256)
    model = fb.MLP([8, 64, 3], dtype="float64", seed=0)
    model.fit(X, y, epochs=1, batch_size=32)  # compiled before the race starts
    done = threading.Event()
    paths = []

    def save_repeatedly():
        i = 0
        while not done.is_set() or i < 3:
            path = tmp_path / f"m{i}.npz"
            model.save(path)
            paths.append(path)
            i += 1

    saver = threading.Thread(target=save_repeatedly)
    saver.start()
    try:
        model.fit(X, y, epochs=300 if fb is fastbp else 30, batch_size=32, validation_split=0.25)
    finally:
        done.set()
        saver.join()
    assert len(paths) >= 3
    for path in paths:
        loaded = fb.load(path)
        # 8 batches in the first epoch (256 samples), then 6 (192 left by the validation split)
        assert loaded._step == loaded._batches == 8 + 6 * (loaded._epoch - 1), path
    # the last file's weights are those of its step: retraining from the start to it gives them exactly
    last = fb.load(paths[-1])
    replay = fb.MLP([8, 64, 3], dtype="float64", seed=0)
    replay.fit(X, y, epochs=1, batch_size=32)
    if last._epoch > 0:
        replay.fit(X, y, epochs=last._epoch - 1, batch_size=32, validation_split=0.25)
        for (Wa, ba), (Wb, bb) in zip(replay.get_weights(), last.get_weights()):
            assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def test_small_inference_reuses_its_workspace_and_threads_never_share_one():
    """Predictions of up to 256 rows take a workspace from a pool instead of building one
    (a 1-row predict spent 15 of its 25 µs there); one taken is never handed to another
    thread until it is given back, so concurrent predictions stay bitwise serial ones."""
    model = fastbp.MLP([8, 32, 4], seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8)).astype(np.float32)
    expected = [model.predict(X[i:i + 1 + i % 7]) for i in range(30)]
    pool = model._free_workspaces[1]
    assert len(pool) == 1
    ws = pool[0]
    model.predict(X[:1])
    assert len(pool) == 1 and pool[0] is ws  # reused, not rebuilt
    results, errors = {}, []

    def work(t):
        try:
            for _ in range(50):
                for i in range(30):
                    if not np.array_equal(model.predict(X[i:i + 1 + i % 7]), expected[i]):
                        results[t] = "mismatch"
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not results
    assert all(len(p) <= 4 for p in model._free_workspaces.values())  # at most one per thread
    assert model._free_workspaces.keys() == {1, 2, 4, 8, 16, 32, 64, 128, 256}

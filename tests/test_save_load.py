"""save / load: exact round trips, across implementations, resumable training; damaged or
foreign files refused with a ValueError naming the file; saving is atomic."""

import json
import os
import re
import zipfile

import numpy as np
import pytest

import fastbp
import fastbp.reference

IMPLS = [fastbp, fastbp.reference]
IDS = ["fastbp", "reference"]


def data(n=61, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def make(fb, dtype="float64", opt=None, **kw):
    kw = dict(dict(activation="tanh", seed=7, l2=1e-3, clip_norm=5.0), **kw)
    optimizer = opt(fb) if opt else fb.Adam(0.01, beta1=0.8)
    return fb.MLP([4, 8, 5, 3], optimizer=optimizer, dtype=dtype, **kw)


def assert_bitwise_equal(wa, wb):
    assert len(wa) == len(wb)
    for (Wa, ba), (Wb, bb) in zip(wa, wb):
        assert Wa.dtype == Wb.dtype and np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def names_file(path):
    return re.escape(os.fspath(path))


def saved_model(tmp_path, fb=fastbp, name="model.npz", **kw):
    X, y = data()
    model = make(fb, **kw)
    model.fit(X, y, epochs=1, batch_size=8)
    path = tmp_path / name
    model.save(path)
    return model, path


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
                                         ("linear", "mse")])
def test_roundtrip_preserves_everything(fb, tmp_path, dtype, output, loss):
    X, _ = data()
    y = np.random.default_rng(1).integers(0, 2, (len(X), 3)).astype(float)
    if loss == "cross_entropy":
        y = np.eye(3)[y.argmax(axis=1)]
    model = make(fb, dtype, output=output, loss=loss, activation=["relu", "leaky_relu"], leaky_slope=0.05,
                 init="xavier")
    model.fit(X, y, epochs=2, batch_size=8)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = fb.load(path)
    assert type(loaded) is fb.MLP
    assert_bitwise_equal(loaded.get_weights(), model.get_weights())
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    assert (loaded.sizes, loaded.activations, loaded.output, loaded.loss, loaded.init, loaded.dtype, loaded.seed,
            loaded.l2, loaded.clip_norm, loaded.leaky_slope) == \
        (model.sizes, model.activations, model.output, model.loss, model.init, model.dtype, model.seed,
         model.l2, model.clip_norm, model.leaky_slope)
    assert loaded.optimizer == model.optimizer
    # str paths work as well as pathlib ones, and saving does not change the model
    model.save(str(path))
    assert_bitwise_equal(fb.load(str(path)).get_weights(), model.get_weights())


@pytest.mark.parametrize("saver", IMPLS, ids=IDS)
@pytest.mark.parametrize("loader", IMPLS, ids=IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_model_saved_by_one_implementation_loads_in_the_other(saver, loader, dtype, tmp_path):
    X, y = data()
    model = make(saver, dtype)
    model.fit(X, y, epochs=2, batch_size=8)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = loader.load(path)
    assert type(loaded) is loader.MLP
    assert_bitwise_equal(loaded.get_weights(), model.get_weights())
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), **tol)
    if saver is loader:
        assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("opt", [None, lambda fb: fb.SGD(0.05, momentum=0.9, nesterov=True),
                                 lambda fb: fb.RMSprop(0.01), lambda fb: fb.AdaGrad(0.1), lambda fb: fb.SGD(0.1)],
                         ids=["adam", "nesterov", "rmsprop", "adagrad", "sgd"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_resumes_exactly_after_load(fb, tmp_path, opt, dtype):
    """2 epochs, save, load, 2 more == 4 epochs, bit for bit (optimizer state, step count and
    shuffle generator all restored)."""
    X, y = data()
    straight = make(fb, dtype, opt)
    h4 = straight.fit(X, y, epochs=4, batch_size=8, shuffle=True)

    first = make(fb, dtype, opt)
    h2 = first.fit(X, y, epochs=2, batch_size=8, shuffle=True)
    first.save(tmp_path / "half.npz")
    resumed = fb.load(tmp_path / "half.npz")
    h2b = resumed.fit(X, y, epochs=2, batch_size=8, shuffle=True)
    assert list(h2) + list(h2b) == list(h4)
    assert_bitwise_equal(resumed.get_weights(), straight.get_weights())
    # and single steps afterwards too
    assert resumed.train_step(X[:5], y[:5]) == straight.train_step(X[:5], y[:5])
    assert_bitwise_equal(resumed.get_weights(), straight.get_weights())


def test_resuming_needs_the_saved_state(tmp_path):
    """The test above has teeth: rebuilding the model from its weights alone (fresh optimizer
    state and generator) continues differently."""
    X, y = data()
    straight = make(fastbp.reference)
    straight.fit(X, y, epochs=4, batch_size=8)
    first = make(fastbp.reference)
    first.fit(X, y, epochs=2, batch_size=8)
    weights_only = make(fastbp.reference)
    weights_only.set_weights(first.get_weights())
    weights_only.fit(X, y, epochs=2, batch_size=8)
    assert not np.array_equal(weights_only.get_weights()[0][0], straight.get_weights()[0][0])


@pytest.mark.parametrize("saver", IMPLS, ids=IDS)
@pytest.mark.parametrize("loader", IMPLS, ids=IDS)
def test_training_resumes_in_the_other_implementation(saver, loader, tmp_path):
    X, y = data()
    straight = make(loader)
    straight.fit(X, y, epochs=4, batch_size=8)
    first = make(saver)
    first.fit(X, y, epochs=2, batch_size=8)
    first.save(tmp_path / "m.npz")
    resumed = loader.load(tmp_path / "m.npz")
    resumed.fit(X, y, epochs=2, batch_size=8)
    for (Wa, ba), (Wb, bb) in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ba, bb, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------- overwriting
def test_save_over_an_existing_file_replaces_it(fb, tmp_path):
    X, y = data()
    path = tmp_path / "m.npz"
    path.write_text("an older, unrelated file")
    a = make(fb, seed=1)
    a.save(path)
    b = make(fb, seed=2)
    b.fit(X, y, epochs=1)
    b.save(path)
    loaded = fb.load(path)
    assert_bitwise_equal(loaded.get_weights(), b.get_weights())
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary files left behind


def test_the_exact_path_is_written(fb, tmp_path):
    """No '.npz' appended to other names (np.savez's habit with path strings)."""
    model = make(fb)
    model.save(tmp_path / "weights.bin")
    assert sorted(os.listdir(tmp_path)) == ["weights.bin"]
    assert_bitwise_equal(fb.load(tmp_path / "weights.bin").get_weights(), model.get_weights())


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(fb, tmp_path, monkeypatch):
    old, path = saved_model(tmp_path, fb)
    original = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    other = make(fb, seed=3)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert_bitwise_equal(fb.load(path).get_weights(), old.get_weights())


# ------------------------------------------------------------ damaged files
def test_missing_file(fb, tmp_path):
    with pytest.raises(FileNotFoundError):
        fb.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file_is_refused_naming_it(fb, tmp_path, fraction):
    _, path = saved_model(tmp_path, fb)
    raw = path.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(raw[:int(len(raw) * fraction)])
    with pytest.raises(ValueError, match=names_file(bad)):
        fb.load(bad)


def test_corrupted_parameters_are_refused_naming_the_file(fb, tmp_path):
    model, path = saved_model(tmp_path, fb)
    raw = bytearray(path.read_bytes())
    params = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in model.get_weights()])
    start = bytes(raw).find(params[:4].tobytes())
    assert start > 0  # the parameters are stored uncompressed: corrupt one in the middle
    raw[start + 8 * (params.size // 2) + 3] ^= 0x10
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=names_file(bad)):
        fb.load(bad)


def test_any_flipped_byte_is_refused_or_harmless(fb, tmp_path):
    """Flip bytes all over the file: each load either raises ValueError naming the file or
    (a flip in zip metadata nobody reads, e.g. a timestamp) gives back the very same model.
    Never a different model, never another exception."""
    model, path = saved_model(tmp_path, fb)
    raw = path.read_bytes()
    bad = tmp_path / "flipped.npz"
    X, _ = data()
    refused = 0
    for offset in range(0, len(raw), max(1, len(raw) // 150)):
        flipped = bytearray(raw)
        flipped[offset] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            loaded = fb.load(bad)
        except ValueError as exc:
            assert os.fspath(bad) in str(exc)
            refused += 1
            continue
        assert_bitwise_equal(loaded.get_weights(), model.get_weights())
        assert np.array_equal(loaded.predict(X), model.predict(X))
        assert loaded.optimizer == model.optimizer
    assert refused > 100


def test_checksum_catches_consistent_zip_with_changed_arrays(fb, tmp_path):
    """Re-zipped with a modified parameter array (valid zip CRCs): fastbp's own CRC32 of the
    arrays refuses it."""
    _, path = saved_model(tmp_path, fb)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    assert "params" in arrays  # the layout this test pokes at
    arrays["params"] = arrays["params"].copy()
    arrays["params"][0] += 1.0
    bad = tmp_path / "tampered.npz"
    with open(bad, "wb") as out:
        np.savez(out, **arrays)
    with pytest.raises(ValueError, match=names_file(bad) + ".*checksum"):
        fb.load(bad)


@pytest.mark.parametrize("kind", ["other-npz", "npy", "text", "random-bytes", "empty", "zip-of-text",
                                  "header-of-another-format", "future-version", "pickle-in-npz", "directory",
                                  "header-without-checksums", "header-without-config", "header-with-bad-config",
                                  "array-missing"])
def test_foreign_files_are_refused_naming_them(fb, tmp_path, kind):
    bad = tmp_path / f"foreign-{kind}.npz"
    if kind == "other-npz":
        with open(bad, "wb") as out:
            np.savez(out, a=np.arange(3), header=np.zeros(4))
    elif kind == "npy":
        with open(bad, "wb") as out:
            np.save(out, np.arange(10.0))
    elif kind == "text":
        bad.write_text("this is not a model\n" * 20)
    elif kind == "random-bytes":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "zip-of-text":
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("readme.txt", "hello")
    elif kind.startswith(("header", "future", "array")):
        # a file written by save, its header edited (the zip itself stays valid)
        _, path = saved_model(tmp_path, fb)
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        header = json.loads(arrays["header"].tobytes().decode())
        assert header["format"] == "fastbp-mlp" and "crc32" in header and "config" in header  # what we edit
        if kind == "future-version":
            header["version"] = 999
        elif kind == "header-of-another-format":
            header["format"] = "otherlib-net"
        elif kind == "header-without-checksums":
            del header["crc32"]
        elif kind == "header-without-config":
            del header["config"]
        elif kind == "header-with-bad-config":
            header["config"]["activation"] = ["swish", "tanh"]
        elif kind == "array-missing":
            key = sorted(header["crc32"])[-1]
            del header["crc32"][key], arrays[key]
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with open(bad, "wb") as out:
            np.savez(out, **arrays)
    elif kind == "pickle-in-npz":
        with open(bad, "wb") as out:
            np.savez(out, header=np.array([{"format": "fastbp-mlp"}], dtype=object))
    elif kind == "directory":
        bad.mkdir()
    with pytest.raises(ValueError, match=names_file(bad)):
        fb.load(bad)


# ------------------------------------------------------------- forged files
def _forge(path, tmp_path, edit_arrays=None, edit_config=None, edit_header=None):
    """A copy of the file at ``path`` with arrays / config / header changed and every checksum
    made valid again: what a forger (or a buggy writer) could produce."""
    import zlib

    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays.pop("header").tobytes().decode())
    if edit_arrays:
        edit_arrays(arrays)
    if edit_config:
        edit_config(header["config"])
    if edit_header:
        edit_header(header)
    header["crc32"] = {k: zlib.crc32(np.ascontiguousarray(v).view(np.uint8)) for k, v in arrays.items()}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    forged = tmp_path / "forged.npz"
    with open(forged, "wb") as out:
        np.savez(out, **arrays)
    return forged


def _set(key, value):
    def edit(arrays):
        arrays[key] = value(arrays[key]) if callable(value) else value
    return edit


def _with_nan(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


FORGERIES = {
    "huge-sizes": dict(edit_config=lambda c: c.update(sizes=[60000, 60000, 3])),
    "large-sizes": dict(edit_config=lambda c: c.update(sizes=[20000, 20000, 3])),
    "nan-parameter": dict(edit_arrays=_set("params", _with_nan)),
    "inf-optimizer-state": dict(edit_arrays=_set("slots", lambda a: np.full_like(a, np.inf))),
    "integer-parameters": dict(edit_arrays=_set("params", lambda a: a.astype(np.int64))),
    "negative-step": dict(edit_arrays=_set("step", lambda a: a * 0 - 1)),
    "two-entry-step": dict(edit_arrays=_set("step", lambda a: a[:2])),
    "float-step": dict(edit_arrays=_set("step", lambda a: a.astype(np.float64))),
    # the file's model ran 1 epoch of 8 batches over 61 rows; none is unfinished
    "unfinished-epoch-missing": dict(edit_arrays=lambda arrays: arrays.pop("unfinished_epoch")),
    "unfinished-epoch-negative": dict(edit_arrays=_set("unfinished_epoch", lambda a: a * 0 - 1)),
    "unfinished-epoch-float": dict(edit_arrays=_set("unfinished_epoch", lambda a: a.astype(np.float64))),
    "unfinished-epoch-values-without-batches": dict(edit_arrays=_set("unfinished_epoch", np.array([0, 61, 8, 1, 0]))),
    "unfinished-epoch-loss-without-batches": dict(edit_arrays=_set("unfinished_epoch_loss", np.array([1.0]))),
    "unfinished-epoch-nan-loss": dict(edit_arrays=lambda arrays: arrays.update(
        unfinished_epoch=np.array([3, 61, 8, 1, 0]), unfinished_epoch_loss=np.array([np.nan]))),
    "unfinished-epoch-past-its-end": dict(edit_arrays=_set("unfinished_epoch", np.array([8, 61, 8, 1, 0]))),
    "unfinished-epoch-batch-over-rows": dict(edit_arrays=_set("unfinished_epoch", np.array([3, 61, 100, 1, 0]))),
    "unfinished-epoch-shuffle-flag": dict(edit_arrays=_set("unfinished_epoch", np.array([3, 61, 8, 2, 0]))),
    "unfinished-epoch-skips-more-than-it-ran": dict(edit_arrays=_set("unfinished_epoch", np.array([3, 61, 8, 1, 4]))),
    "unfinished-epoch-beyond-the-batch-count": dict(edit_arrays=_set("unfinished_epoch",
                                                                     np.array([100, 1000, 8, 1, 0]))),
    "rng-not-json": dict(edit_arrays=_set("rng_state", np.frombuffer(b"\xff{not json", dtype=np.uint8))),
    "rng-not-pcg64": dict(edit_arrays=_set("rng_state", np.frombuffer(
        json.dumps(np.random.MT19937(0).state, default=lambda o: o.tolist()).encode(), dtype=np.uint8))),
    "rng-broken-pcg64": dict(edit_arrays=_set("rng_state", np.frombuffer(
        json.dumps({"bit_generator": "PCG64", "state": "nonsense"}).encode(), dtype=np.uint8))),
}


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_forged_files_are_refused_naming_them_before_allocating(fb, tmp_path, kind):
    """A file with valid checksums whose contents contradict themselves or hold what no model
    holds is refused with the file named, and a forged header allocates nothing big."""
    import tracemalloc

    _, path = saved_model(tmp_path, fb)
    forged = _forge(path, tmp_path, **FORGERIES[kind])
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=names_file(forged)):
            fb.load(forged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"refusing {kind} allocated {peak / 2**20:.0f} MiB"


def _slot(row, value):
    """An edit: the first entry of optimizer slot ``row`` set to ``value``."""
    def edit(arrays):
        slots = arrays["slots"].copy()
        slots[row, 0] = value
        arrays["slots"] = slots
    return edit


def _float32_config(config):
    config["dtype"] = "float32"


def _rng_state_with(state):
    def edit(arrays):
        rng = json.loads(arrays["rng_state"].tobytes().decode())
        rng["state"]["state"] = state
        arrays["rng_state"] = np.frombuffer(json.dumps(rng).encode(), dtype=np.uint8)
    return edit


# What a file with valid checksums may not hold, though it is well-formed: the model
# (``make``'s keyword arguments), the forgery, and what the refusal must say.
IMPOSSIBLE = {
    "float64-parameters-overflowing-float32": (
        {}, dict(edit_arrays=_set("params", lambda a: np.full_like(a, 1e39)), edit_config=_float32_config),
        r"set_state's checks: state\['W0'\] .* too large for float32"),
    "optimizer-state-overflowing-float32": (
        {}, dict(edit_arrays=_set("slots", lambda a: np.full_like(a, 1e39)), edit_config=_float32_config),
        "optimizer state .* too large for float32"),
    "negative-running-variance": (  # the last entry of params: the last normalised layer's running variance
        dict(batch_norm=True), dict(edit_arrays=_set("params", lambda a: np.concatenate([a[:-1], [-1.0]]))),
        r"state\['running_var1'\] holds a negative variance"),
    "negative-adam-second-moment": ({}, dict(edit_arrays=_slot(1, -1e-6)), "negative value in Adam's slot 1"),
    "negative-adamw-second-moment": (dict(opt=lambda fb: fb.AdamW(0.01)), dict(edit_arrays=_slot(1, -1e-6)),
                                     "negative value in AdamW's slot 1"),
    "negative-rmsprop-average": (dict(opt=lambda fb: fb.RMSprop(0.01)), dict(edit_arrays=_slot(0, -1e-6)),
                                 "negative value in RMSprop's slot 0"),
    "negative-adagrad-sum": (dict(opt=lambda fb: fb.AdaGrad(0.01)), dict(edit_arrays=_slot(0, -1e-6)),
                             "negative value in AdaGrad's slot 0"),
    "step-uint64-max": ({}, dict(edit_arrays=_set("step", np.array([2**64 - 1, 1, 8, 0], dtype=np.uint64))),
                        r"optimizer step in 'step' is 18446744073709551615"),
    "step-int64-max": ({}, dict(edit_arrays=_set("step", np.array([2**63 - 1, 1, 8, 0]))),
                       r"optimizer step in 'step' is 9223372036854775807"),
    "epochs-beyond-any-run": ({}, dict(edit_arrays=_set("step", np.array([8, 2**62, 8, 0]))), "epoch count"),
    "dropout-key-out-of-range": ({}, dict(edit_arrays=_set("step", np.array([8, 1, 8, 2**63 - 1]))), "dropout key"),
    "unfinished-epoch-uint64-max": (
        {}, dict(edit_arrays=_set("unfinished_epoch", np.array([2**64 - 1, 61, 8, 1, 0], dtype=np.uint64))),
        "batch in 'unfinished_epoch' is 18446744073709551615"),
    "generator-state-out-of-range": ({}, dict(edit_arrays=_rng_state_with(2**200)), "not one PCG64 takes"),
    "generator-state-negative": ({}, dict(edit_arrays=_rng_state_with(-1)), "not one PCG64 takes"),
    "version-true": ({}, dict(edit_header=lambda h: h.update(version=True)), "version True is not supported"),
    "version-2.0": ({}, dict(edit_header=lambda h: h.update(version=2.0)), "version 2.0 is not supported"),
}


@pytest.mark.parametrize("kind", list(IMPOSSIBLE))
def test_impossible_contents_are_refused_as_set_state_refuses_them(fb, tmp_path, kind):
    """Well-formed, checksummed files holding what no model holds (parameters that overflow
    the dtype or a negative running variance, which ``set_state`` refuses; a negative
    optimizer second moment; counts no training reaches; generator integers PCG64 refuses; a
    version that is not an integer) are refused with a ValueError naming the file and what is
    wrong, never loaded (to fail later, elsewhere) nor refused with another exception."""
    model_kw, forgery, message = IMPOSSIBLE[kind]
    _, path = saved_model(tmp_path, fb, **model_kw)
    forged = _forge(path, tmp_path, **forgery)
    with pytest.raises(ValueError, match=names_file(forged) + ".*" + message):
        fb.load(forged)


@pytest.mark.parametrize("kind", ["sgd-momentum-negative", "adam-first-moment-negative", "float64-under-float32"])
def test_what_a_model_may_hold_still_loads(fb, tmp_path, kind):
    """The edits above, where they are possible: momentum and Adam's first moment may be
    negative; float64 arrays within float32's range load converted (as set_state converts)."""
    model_kw, forgery = {
        "sgd-momentum-negative": (dict(opt=lambda fb: fb.SGD(0.01, momentum=0.9)), dict(edit_arrays=_slot(0, -5.0))),
        "adam-first-moment-negative": ({}, dict(edit_arrays=_slot(0, -5.0))),
        "float64-under-float32": ({}, dict(edit_config=_float32_config)),
    }[kind]
    model, path = saved_model(tmp_path, fb, **model_kw)
    loaded = fb.load(_forge(path, tmp_path, **forgery))
    assert loaded.dtype == (np.float32 if kind == "float64-under-float32" else np.float64)
    for (W, b), (W0, b0) in zip(loaded.get_weights(), model.get_weights()):
        assert np.array_equal(W, W0.astype(loaded.dtype)) and np.array_equal(b, b0.astype(loaded.dtype))
    if kind != "float64-under-float32":
        assert loaded._slots[0, 0] == -5.0


def test_a_header_load_would_refuse_is_not_written(tmp_path, monkeypatch):
    """``load`` bounds the header's size (no configuration implies it), so ``save`` refuses a
    model whose header would exceed the bound, before writing anything."""
    from fastbp import fileformat

    model = make(fastbp.reference)
    monkeypatch.setattr(fileformat, "MAX_HEADER_BYTES", 200)
    with pytest.raises(ValueError, match="at most 200"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


# -------------------------------------------------------- decompression bombs
BOMB = 128 * 2**20  # bytes of zeros in one member: compressed, the file stays ~150 kB
MEMORY_ALLOWED = 50 * 2**20


def _npy_header(dtype, shape):
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _write_member(archive, name, head, body, size, fill=b"\0"):
    """Member ``name.npy``: ``head``, ``body``, then ``fill`` bytes up to ``size`` bytes after
    ``head``, streamed; returns the CRC32 of those ``size`` bytes."""
    import zlib

    block = fill * 2**20
    crc = zlib.crc32(body)
    with archive.open(name + ".npy", "w", force_zip64=True) as f:
        f.write(head + body)
        left = size - len(body)
        while left:
            piece = block[:min(left, len(block))]
            f.write(piece)
            crc = zlib.crc32(piece, crc)
            left -= len(piece)
    return crc


def _bombed(path, out, kind):
    """The model file at ``path`` rewritten with ZIP_DEFLATED and a member of ``BOMB`` bytes
    (mostly zeros, which deflate ~1000:1): a file of a few hundred kB.  ``kind`` says which
    member; the header's checksums are made valid for it where it has one."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays.pop("header").tobytes().decode())
    big = {  # name -> (npy header, first bytes, data size, fill)
        "unknown-member": ("bomb", _npy_header(np.uint8, (BOMB,)), b"", BOMB, b"\0"),
        "repeated-member": ("params", _npy_header(np.float64, (BOMB // 8,)), b"", BOMB, b"\0"),
        "parameters-larger-than-configured": ("params", _npy_header(np.float64, (BOMB // 8,)), b"", BOMB, b"\0"),
        "generator-state-padded": ("rng_state", _npy_header(np.uint8, (BOMB,)), arrays["rng_state"].tobytes(), BOMB,
                                   b" "),
        "member-longer-than-its-array": ("step", _npy_header(np.int64, (4,)), arrays["step"].tobytes(),
                                         BOMB, b"\0"),
        "attached-array-not-listed": ("extra.bomb", _npy_header(np.uint8, (BOMB,)), b"", BOMB, b"\0"),
    }.get(kind)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            if big is None or name != big[0] or kind == "repeated-member":
                _write_member(archive, name, _npy_header(array.dtype, array.shape), array.tobytes(), array.nbytes)
        if big is not None:
            name, head, body, size, fill = big
            crc = _write_member(archive, name, head, body, size, fill)
            if name in header["crc32"] and kind != "member-longer-than-its-array":
                header["crc32"][name] = crc
        text = json.dumps(header).encode()
        if kind == "header-padded":  # valid JSON: trailing white space
            _write_member(archive, "header", _npy_header(np.uint8, (BOMB,)), text, BOMB, b" ")
        else:
            _write_member(archive, "header", _npy_header(np.uint8, (len(text),)), text, len(text))
    assert os.path.getsize(out) < 2**20
    return out


def _peak_memory(call):
    """``call()``'s exception (None if it returned) and the peak of memory it allocated."""
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            call()
            raised = None
        except Exception as exc:
            raised = exc
        return raised, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


BOMBS = ["unknown-member", "repeated-member", "parameters-larger-than-configured", "header-padded",
         "generator-state-padded", "member-longer-than-its-array", "attached-array-not-listed"]


@pytest.mark.filterwarnings("ignore:Duplicate name")  # the zip module's, writing the repeated member
@pytest.mark.parametrize("kind", BOMBS)
def test_a_small_file_cannot_make_load_decompress_gigabytes(tmp_path, kind):
    """A valid model file with a large member of zeros (unknown, repeated, larger than the
    configuration implies, padding the header or the generator state, or following an array's
    data) is refused with a ValueError naming the file, from the members' sizes and array
    headers, before any of it is decompressed.  (One implementation: the file format is
    theirs in common.)"""
    _, path = saved_model(tmp_path, fastbp.reference)
    bomb = _bombed(path, tmp_path / f"{kind}.npz", kind)
    raised, peak = _peak_memory(lambda: fastbp.reference.load(bomb))
    assert isinstance(raised, ValueError) and os.fspath(bomb) in str(raised), raised
    assert peak < MEMORY_ALLOWED, f"refusing {kind} allocated {peak / 2**20:.0f} MiB"


def test_unpickling_cannot_be_made_to_decompress_gigabytes(tmp_path):
    """Unpickling reads the bytes of a model file the same way (``fileformat.from_bytes``)."""
    from fastbp import fileformat

    _, path = saved_model(tmp_path, fastbp.reference)
    data = _bombed(path, tmp_path / "bomb.npz", "unknown-member").read_bytes()
    raised, peak = _peak_memory(lambda: fileformat.from_bytes(fastbp.reference.MLP, data))
    assert isinstance(raised, ValueError) and "pickled fastbp model" in str(raised), raised
    assert peak < MEMORY_ALLOWED, f"allocated {peak / 2**20:.0f} MiB"


def test_a_large_attached_array_is_verified_without_being_held(tmp_path):
    """An attached array the header lists (``fileformat.save(model, path, extra)``) may be
    large: the plain load checks its checksum block by block, without holding it, and
    ``load_with_extra`` returns it."""
    from fastbp import fileformat

    model, path = saved_model(tmp_path, fastbp.reference)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays.pop("header").tobytes().decode())
    bomb = tmp_path / "large-extra.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            _write_member(archive, name, _npy_header(array.dtype, array.shape), array.tobytes(), array.nbytes)
        header["crc32"]["extra.zeros"] = _write_member(archive, "extra.zeros", _npy_header(np.uint8, (BOMB,)), b"",
                                                       BOMB)
        header["extra"] = ["zeros"]
        text = json.dumps(header).encode()
        _write_member(archive, "header", _npy_header(np.uint8, (len(text),)), text, len(text))
    raised, peak = _peak_memory(lambda: fastbp.reference.load(bomb))
    assert raised is None and peak < MEMORY_ALLOWED, (raised, f"{peak / 2**20:.0f} MiB")
    loaded, extra = fileformat.load_with_extra(fastbp.reference.MLP, bomb)
    assert extra["zeros"].shape == (BOMB,) and not extra["zeros"].any()
    assert_bitwise_equal(loaded.get_weights(), model.get_weights())


def test_a_consistent_unfinished_epoch_loads(fb, tmp_path):
    """The forgeries above are refused for what they get wrong: the same edits made
    consistent load, with the epoch's position, shape and loss so far."""
    _, path = saved_model(tmp_path, fb)
    forged = _forge(path, tmp_path, edit_arrays=lambda arrays: arrays.update(
        unfinished_epoch=np.array([3, 61, 8, 1, 1]), unfinished_epoch_loss=np.array([2.5])))
    loaded = fb.load(forged)
    assert [loaded._field(k) for k in ("batch", "samples", "batch_size", "shuffled", "skipped", "counted")] == \
        [3, 61, 8, 1, 1, 16]
    assert loaded._fields["loss_sum"][0] == 2.5


def test_version_1_files_load_and_resume(fb, tmp_path):
    """A file of format version 1 (no unfinished epoch: always saved between epochs) loads,
    and training resumes from it exactly."""
    import zlib

    X, y = data()
    model, path = saved_model(tmp_path, fb)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays.pop("header").tobytes().decode())
    del arrays["unfinished_epoch"], arrays["unfinished_epoch_loss"]
    header["version"] = 1
    header["crc32"] = {k: zlib.crc32(np.ascontiguousarray(v).view(np.uint8)) for k, v in arrays.items()}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    old = tmp_path / "version1.npz"
    with open(old, "wb") as out:
        np.savez(out, **arrays)
    loaded = fb.load(old)
    assert (loaded._step, loaded._epoch, loaded._batches, loaded._field("batch")) == (8, 1, 8, 0)
    model.fit(X, y, epochs=2, batch_size=8)
    loaded.fit(X, y, epochs=2, batch_size=8)
    assert_bitwise_equal(loaded.get_weights(), model.get_weights())


def test_an_unforged_copy_loads(fb, tmp_path):
    """The forging helper itself makes loadable files when it changes nothing."""
    model, path = saved_model(tmp_path, fb)
    assert_bitwise_equal(fb.load(_forge(path, tmp_path)).get_weights(), model.get_weights())


# ------------------------------------------------------------------ pickling
def test_pickle_and_deepcopy_continue_exactly(fb):
    import copy
    import pickle
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    model = fb.MLP([5, 8, 3], optimizer=fb.Adam(0.01), dropout=0.1, batch_norm=True, seed=0)
    model.fit(X, y, epochs=2, batch_size=16)
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert type(twin) is type(model) and twin.get_config() == model.get_config()
        assert np.array_equal(twin.predict(X), model.predict(X))
    twin = pickle.loads(pickle.dumps(model))
    assert model.fit(X, y, epochs=2, batch_size=16) == twin.fit(X, y, epochs=2, batch_size=16)
    for (W, b), (W2, b2) in zip(model.get_weights(), twin.get_weights()):
        assert np.array_equal(W, W2) and np.array_equal(b, b2)


def test_corrupt_pickle_is_refused(fb):
    import pickle
    from fastbp import fileformat
    model = fb.MLP([3, 4, 2], seed=0)
    func, (cls, data) = model.__reduce__()
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="pickled fastbp model"):
        func(cls, bytes(bad))
    assert func is fileformat.from_bytes and pickle.loads(pickle.dumps(model)).sizes == model.sizes

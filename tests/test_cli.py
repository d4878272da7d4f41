"""The model file's attached arrays (``fastbp.fileformat.save`` / ``load_with_extra``), which
the ``fastbp`` command keeps its scaler and labels in."""

import json
import re

import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp import fileformat


# ============================================ the model file's extra arrays
EXTRA = {"scale": np.array([1.5, 2.0, 0.25]), "codes": np.arange(4, dtype=np.int32),
         "names": np.array(["a", "bé", "longer name"]), "flag": np.array(True), "raw": np.frombuffer(b"{}", np.uint8),
         "matrix": np.arange(6.0).reshape(2, 3), "x.y-z_1": np.float32(0.5)}


def small_model(fb):
    model = fb.MLP([3, 5, 2], seed=3, dtype="float64")
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((20, 3)), rng.integers(0, 2, 20), epochs=2, batch_size=8)
    return model


@pytest.mark.parametrize("saver", [fastbp, fastbp.reference], ids=["saved-by-fastbp", "saved-by-reference"])
def test_extra_arrays_round_trip_and_plain_load_ignores_them(saver, tmp_path):
    model = small_model(saver)
    fileformat.save(model, tmp_path / "with.npz", EXTRA)
    model.save(tmp_path / "without.npz")
    for loader in (fastbp, fastbp.reference):
        loaded, extra = fileformat.load_with_extra(loader.MLP, tmp_path / "with.npz")
        assert sorted(extra) == sorted(EXTRA)
        for name, value in EXTRA.items():
            assert extra[name].dtype == np.asarray(value).dtype and extra[name].shape == np.shape(value)
            assert np.array_equal(extra[name], value)
        plain = loader.load(tmp_path / "with.npz")  # a plain model, the same as one saved without extras
        for m in (loaded, plain):
            for (W, b), (W0, b0) in zip(m.get_weights(), model.get_weights()):
                assert np.array_equal(W, W0) and np.array_equal(b, b0)
        assert fileformat.load_with_extra(loader.MLP, tmp_path / "without.npz")[1] == {}


def test_extra_arrays_keep_the_format_version_and_are_checksummed(tmp_path):
    fileformat.save(small_model(fastbp), tmp_path / "m.npz", EXTRA)
    with np.load(tmp_path / "m.npz") as f:
        header = json.loads(f["header"].tobytes().decode())
        files = set(f.files)
    assert header["version"] == 2 and header["extra"] == list(EXTRA)  # an older fastbp still reads the file
    assert {"extra." + name for name in EXTRA} <= files and all("extra." + n in header["crc32"] for n in EXTRA)


def _rewrite(path, edit):
    """Rewrite the archive at ``path`` with ``edit(arrays)`` applied (the zip stays valid)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    edit(arrays)
    np.savez(path, **arrays)


def test_a_changed_extra_array_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "m.npz"
    fileformat.save(small_model(fastbp), path, EXTRA)
    _rewrite(path, lambda a: a.update({"extra.scale": a["extra.scale"] * 2}))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*checksum mismatch in 'extra.scale'"):
        fastbp.load(path)  # the plain load verifies them too
    with pytest.raises(ValueError, match="checksum mismatch"):
        fileformat.load_with_extra(fastbp.MLP, path)


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.update(extra=["nothere"]), "has no checksum"),
    (lambda h: h.update(extra="scale"), "malformed"),
    (lambda h: h.update(extra=[3]), "malformed"),
])
def test_a_bad_list_of_extra_arrays_is_refused(tmp_path, edit, message):
    path = tmp_path / "m.npz"
    fileformat.save(small_model(fastbp), path, {"scale": np.ones(3)})

    def forge(arrays):
        header = json.loads(arrays["header"].tobytes().decode())
        edit(header)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    _rewrite(path, forge)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        fileformat.load_with_extra(fastbp.MLP, path)


@pytest.mark.parametrize("extra, error", [
    ({"": np.ones(2)}, ValueError), ({"a/b": np.ones(2)}, ValueError), ({"x" * 65: np.ones(2)}, ValueError),
    ({3: np.ones(2)}, ValueError), ({"obj": np.array([{}, 1], dtype=object)}, TypeError),
    ([("a", np.ones(2))], TypeError),
])
def test_bad_extra_arrays_are_refused_before_writing(tmp_path, extra, error):
    with pytest.raises(error):
        fileformat.save(small_model(fastbp), tmp_path / "m.npz", extra)
    assert not list(tmp_path.iterdir())

"""The bundled datasets (``fastbp.datasets``): the same arrays as their source, shipped in the
package, and no scikit-learn import on the way."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp import datasets

ROOT = Path(__file__).resolve().parents[1]


def test_digits_shapes_dtypes_and_ranges():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64 and X.flags.c_contiguous
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))
    assert np.array_equal(np.unique(y), np.arange(10))
    assert np.bincount(y).min() >= 170  # about 180 of each digit


def test_digits_equal_scikit_learns():
    sk_datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits()
    X_sk, y_sk = sk_datasets.load_digits(return_X_y=True)
    assert X.dtype == X_sk.dtype and y.dtype == y_sk.dtype
    assert np.array_equal(X, X_sk) and np.array_equal(y, y_sk)


def test_each_call_returns_fresh_arrays():
    X, y = datasets.load_digits()
    X[:] = -1
    y[:] = -1
    X2, y2 = datasets.load_digits()
    assert X2.min() == 0 and y2.min() == 0


def test_a_damaged_file_is_an_oserror_saying_so(monkeypatch, tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(datasets, "_DIGITS_FILE", "broken.npz")
    monkeypatch.setattr(datasets.resources, "files", lambda package: _Fake(tmp_path))
    with pytest.raises(OSError, match="damaged.*reinstall"):
        datasets.load_digits()


def test_a_file_with_wrong_arrays_is_refused(monkeypatch, tmp_path):
    np.savez(tmp_path / "wrong.npz", X=np.zeros((3, 64), np.uint8), y=np.zeros(3, np.uint8))
    monkeypatch.setattr(datasets, "_DIGITS_FILE", "wrong.npz")
    monkeypatch.setattr(datasets.resources, "files", lambda package: _Fake(tmp_path))
    with pytest.raises(OSError, match="damaged \\(array 'X'\\)"):
        datasets.load_digits()


class _Fake:
    """``resources.files`` stand-in whose ``data/`` is ``root`` itself."""

    def __init__(self, root):
        self.root = Path(root)

    def joinpath(self, name):
        return self.root if name == "data" else self.root / name


def test_importing_fastbp_its_cli_and_loading_digits_never_imports_sklearn():
    code = ("import sys, fastbp, fastbp.datasets, fastbp.cli; fastbp.datasets.load_digits(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'pandas')))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_data_file_and_its_notice_are_package_data():
    """pyproject ships fastbp/data/*.npz and the README beside it (a wheel built from the
    checkout lists them: the test of the installed layout without building one here)."""
    text = (ROOT / "pyproject.toml").read_text()
    assert '[tool.setuptools.package-data]' in text and '"data/*.npz"' in text and '"data/README.md"' in text
    notice = (ROOT / "fastbp" / "data" / "README.md").read_text()
    assert "CC BY 4.0" in notice and "Alpaydin" in notice and "Kaynak" in notice
    assert (ROOT / "fastbp" / "data" / "digits.npz").stat().st_size < 100_000

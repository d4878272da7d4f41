"""The kernels compiled ahead (``python -m fastbp.compile``, which ``pip install .`` runs
while it builds the wheel) load in a later process, and only where they are correct: a
cache made for another CPU, by another Numba or from other sources is ignored and the
kernel compiled again, never loaded wrongly.  (The build step itself is checked by CI's
main command: ``python -m fastbp.compile --check`` after ``pip install .``.)"""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastbp

pytestmark = pytest.mark.slow  # fresh processes and a cold compile (README, Development)

PACKAGE = Path(fastbp.__file__).parent

# A first predict: how many of its kernels had to be compiled (cache misses), and its output.
CHILD = """
import numpy as np
import fastbp
from fastbp import kernels
model = fastbp.MLP([3, 4, 2], dtype="float64", seed=0)
out = model.predict(np.linspace(-1, 1, 6).reshape(2, 3))
misses = sum(sum(d.stats.cache_misses.values()) for d in (kernels.all_finite, kernels.infer))
print(misses, out.round(12).tolist())
"""


def child(root, code=CHILD, args=(), **env):
    environment = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", HOME=str(root / "home"),
                       **env)
    environment.pop("NUMBA_CACHE_DIR", None)  # the package's own __pycache__, as installed
    done = subprocess.run([sys.executable, "-c", code, *args], env=environment, capture_output=True, text=True,
                          timeout=1200, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of the package (no caches) on which ``python -m fastbp.compile`` ran for
    float64, as ``pip install .`` runs it in the build folder."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(PACKAGE, root / "fastbp", ignore=shutil.ignore_patterns("__pycache__"))
    child(root, "import sys, fastbp.compile; sys.exit(fastbp.compile.main(['--dtype', 'float64', '--quiet']))")
    assert list((root / "fastbp" / "kernels" / "__pycache__").glob("network.train_epochs-*.nbi"))
    return root


def copy_of(installed, tmp_path):
    shutil.copytree(installed / "fastbp", tmp_path / "fastbp")
    return tmp_path


def first_predict(root, **env):
    misses, output = child(root, **env).split(" ", 1)
    return int(misses), output


def test_a_first_session_loads_everything_compiled_ahead(installed):
    assert child(installed, "import sys, fastbp.compile; sys.exit(fastbp.compile.main(['--check', "
                            "'--dtype', 'float64']))").startswith("fastbp: a first session for float64 loaded every")


def test_another_cpu_compiles_again(installed, tmp_path):
    root = copy_of(installed, tmp_path)
    same, output = first_predict(root)
    assert same == 0
    # (Numba keys each entry by the CPU's name and features: here the name of a generic x86-64)
    other, other_output = first_predict(root, NUMBA_CPU_NAME="generic")
    assert other > 0 and other_output == output


def test_another_numba_compiles_again(installed, tmp_path):
    """Every index says it was written by another Numba version: nothing in it is loaded."""
    root = copy_of(installed, tmp_path)
    indexes = list((root / "fastbp" / "kernels" / "__pycache__").glob("*.nbi"))
    for index in indexes:
        with open(index, "rb") as f:
            pickle.load(f)  # the version
            rest = f.read()
        index.write_bytes(pickle.dumps("0.0.0+another") + rest)
    misses, _ = first_predict(root)
    assert indexes and misses > 0


def test_changed_sources_compile_again(installed, tmp_path):
    """A kernel file changed (even one the loaded kernels do not come from: ``codes.py``):
    the package's digest in every index no longer matches (``kernels/common.py``)."""
    root = copy_of(installed, tmp_path)
    codes = root / "fastbp" / "kernels" / "codes.py"
    codes.write_text(codes.read_text() + "\n# changed\n")
    misses, _ = first_predict(root)
    assert misses > 0

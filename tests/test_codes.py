"""The kernels own their codes: ``fastbp/kernels/`` imports nothing from the rest of fastbp
but its own modules, every code and constant is defined once (in ``kernels/codes.py``), and
changing one of them can never leave stale compiled kernels in Numba's on-disk cache."""

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastbp
from fastbp.kernels import codes

PACKAGE = Path(fastbp.__file__).parent
KERNELS = PACKAGE / "kernels"


def _imports(path):
    """``(level, module)`` of every import in a file: ``level`` 0 for absolute imports."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def test_kernels_import_nothing_from_the_rest_of_fastbp():
    files = sorted(KERNELS.glob("*.py"))
    assert len(files) >= 9  # the test reads the real package
    for path in files:
        for level, module in _imports(path):
            assert level <= 1, f"{path.name} imports from outside fastbp/kernels: {'.' * level}{module}"
            assert level == 1 or not module.split(".")[0] == "fastbp", f"{path.name} imports {module}"


def test_the_import_check_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .._base import RELU\nfrom fastbp import model\n")
    assert list(_imports(bad)) == [(2, "_base"), (0, "fastbp")]


CODE_NAMES = {name for name, value in vars(codes).items()
              if name.isupper() and isinstance(value, (int, float))}


def test_codes_and_constants_are_defined_once():
    """No module outside the kernels' codes module (re)defines a code or constant."""
    assert {"RELU", "CROSS_ENTROPY", "ADAM", "STATUS_GRAD", "BN_EPS"} <= CODE_NAMES
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == KERNELS / "codes.py":
            continue
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                names = [e.id for e in getattr(target, "elts", [target]) if isinstance(e, ast.Name)]
                assert not set(names) & CODE_NAMES, f"{path.relative_to(PACKAGE)} defines {set(names) & CODE_NAMES}"


_CHILD = textwrap.dedent("""
    import numpy as np
    from fastbp.kernels.batchnorm import batchnorm_forward_infer
    Z = np.ones((1, 1))
    batchnorm_forward_infer(Z, np.ones(1), np.zeros(1), np.zeros(1))  # 1 / sqrt(0 + BN_EPS)
    stats = batchnorm_forward_infer.stats
    print(Z[0, 0], sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
""")


def _run(root):
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("NUMBA_CACHE_DIR", None)  # the cache next to the copied sources
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    value, hits, misses = out.stdout.split()
    return float(value), int(hits), int(misses)


@pytest.mark.slow
def test_changing_a_constant_in_codes_recompiles_the_kernels_that_use_it(tmp_path):
    """``batchnorm.py`` uses ``BN_EPS`` from ``codes.py``.  Numba alone checks a cached kernel
    against its own file only, and would run the old constant (fastbp at commit 16b14d3)."""
    shutil.copytree(PACKAGE, tmp_path / "fastbp", ignore=shutil.ignore_patterns("__pycache__"))
    assert _run(tmp_path) == (1 / 1e-5 ** 0.5, 0, 1)  # compiled
    assert _run(tmp_path)[1:] == (1, 0)  # loaded from the cache: caching works
    codes_py = tmp_path / "fastbp" / "kernels" / "codes.py"
    codes_py.write_text(codes_py.read_text().replace("BN_EPS, BN_MOMENTUM = 1e-5, 0.1", "BN_EPS, BN_MOMENTUM = 0.25, 0.1"))
    assert _run(tmp_path) == (2.0, 0, 1)  # 1 / sqrt(0.25): recompiled with the new constant

"""Every script in ``examples/`` runs: each in a fresh interpreter with ``--quick``, from a
temporary directory, with ``PYTHONPATH`` at the repository's root and ``MPLBACKEND=Agg``; it
must exit 0 and print its key lines.  Files an example writes go to the temporary directory
(``--out`` when the example has one), never into the repository.

The examples are found with a glob, so a new one is run without being listed here: it must
accept ``--quick`` (a few seconds' run).  Listing its key lines in ``KEY_LINES`` checks what
it prints; an example not listed must still print some metric (``GENERIC_KEY_LINES``).

The examples that draw pictures must also run without matplotlib: they are run once more
with ``sys.modules["matplotlib"] = None`` (any ``import matplotlib`` fails), and must say so,
exit 0 and write no file.
"""

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# every example as a script in its own process: not in the quick run (README, Development)
pytestmark = pytest.mark.slow

pytest.importorskip("sklearn", reason="the examples' datasets come from scikit-learn")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# examples that draw with matplotlib (found by what they import or call)
PLOTTING = [path for path in EXAMPLES if "matplotlib" in path.read_text() or ".plot(" in path.read_text()]

NUMBER = r"[0-9.]+"
# What each example must print in --quick mode (regular expressions, one line each).  The
# thresholds are loose: --quick trains a few epochs; the full runs check their own targets.
KEY_LINES = {
    "xor.py": [r"^ +1 +1 \| +0 +\| 0\.\d+ +0 +ok$", r"^loss curve \(fastbp\): epoch 1: ",
               r"^truth table accuracy: fastbp 1\.00, fastbp\.reference 1\.00$", rf"speed-up {NUMBER}x$"],
    "iris.py": [r"^fastbp +final train loss \S+ +test accuracy (0\.9\d+|1\.0000) ",
                r"^fastbp\.reference +final train loss \S+ +test accuracy (0\.9\d+|1\.0000) ",
                rf"^speed-up: {NUMBER}x \(fit time"],
    "digits.py": [r"^fastbp +final train loss \S+ +test accuracy 0\.9\d+ ",
                  rf"^speed-up: {NUMBER}x +max \|weight difference\|"],
    "breast_cancer.py": [r"^fastbp +test accuracy 0\.9\d+ ", r"^scikit-learn +test accuracy 0\.\d+ .*"
                         rf"fastbp's speed-up +{NUMBER}x$", rf"^fastbp\.reference .*speed-up +{NUMBER}x$"],
    "diabetes.py": [r"^fastbp +test R\^2 0\.[2-9]\d* ", rf"^scikit-learn +test R\^2 -?{NUMBER} .*speed-up",
                    r"^least squares +test R\^2 0\.\d+"],
    "custom_loop.py": [r"^ +3 +0\.1000 \|", r"^fastbp +ran all 3 epochs; best epoch \d \(weights kept\): test accuracy 0\.[89]\d*$",
                       rf"^speed-up per step: {NUMBER}x$", r"^same loop, same numbers"],
    "loss_curve.py": [r"^ +5 +\S+ +\S+ +0\.9\d*$", r"^best validation loss ", rf"speed-up {NUMBER}x"],
    "distributed_digits.py": [r"^(rank 0 of \d+: \d+ training rows .* test accuracy 0\.9\d+|this example needs mpi4py)",
                              r"^(one process, model\.fit on all \d+ rows: test accuracy 0\.9\d+; max \|weight "
                              r"difference\| \d\.\de[-+]\d+|this example needs mpi4py)"],
    "training_features.py": [r"^ran all 5 epochs$", r"^fastbp +test accuracy 0\.9\d* ",
                             rf"^speed-up per epoch: {NUMBER}x"],
}
GENERIC_KEY_LINES = [r"(accuracy|score|R\^2|loss)\W+\S*\d"]
NO_MATPLOTLIB = "matplotlib is not installed"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TIMEOUT = 600  # seconds; a cold Numba cache compiles for about a minute first
WORKERS = min(2, os.cpu_count() or 1)  # example processes at a time
NO_MATPLOTLIB_WRAPPER = ("import runpy, sys; sys.modules['matplotlib'] = None; "  # every import of it fails
                         "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def run(args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def example_args(path, out_dir):
    """``--quick``, and ``--out`` into ``out_dir`` for an example that writes a file."""
    args = [str(path), "--quick"]
    if '"--out"' in path.read_text():
        args += ["--out", str(out_dir / (path.stem + ".png"))]
    return args


def run_example(test, path, out_dir):
    args = example_args(path, out_dir)
    if test == "test_example_runs_without_matplotlib":
        args = ["-c", NO_MATPLOTLIB_WRAPPER, *args]
    return run(args, cwd=out_dir)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """Start, ``WORKERS`` at a time, the example runs the selected tests of this module need:
    ``{(test name, path): future of (CompletedProcess, its directory)}``."""
    wanted = [(item.originalname, item.callspec.params["path"]) for item in request.session.items
              if item.module is request.module and "path" in getattr(getattr(item, "callspec", None), "params", ())]
    pool = ThreadPoolExecutor(max_workers=WORKERS)

    def start(test, path):
        out_dir = tmp_path_factory.mktemp(f"{path.stem}-{test}")
        return pool.submit(lambda: (run_example(test, path, out_dir), out_dir))

    futures = {(test, path): start(test, path) for test, path in wanted}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def check_ran(result, path):
    assert result.returncode == 0, (f"{path.name} exited with {result.returncode}\n--- stdout\n{result.stdout}"
                                    f"\n--- stderr\n{result.stderr}")


def test_examples_are_found():
    names = {path.name for path in EXAMPLES}
    assert names >= set(KEY_LINES), sorted(set(KEY_LINES) - names)
    assert {"training_features.py", "loss_curve.py"} <= {path.name for path in PLOTTING}


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(path, runs):
    result, out_dir = runs["test_example_runs", path].result()
    check_ran(result, path)
    stdout = result.stdout.replace("\r", "\n")  # progress bars redraw their line
    for pattern in KEY_LINES.get(path.name, GENERIC_KEY_LINES):
        assert re.search(pattern, stdout, re.MULTILINE), f"{path.name}: no line matching {pattern!r} in\n{stdout}"
    if path in PLOTTING and HAVE_MATPLOTLIB:
        picture = out_dir / (path.stem + ".png")
        assert picture.exists() and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", \
            f"{path.name} wrote no PNG to --out"


@pytest.mark.parametrize("path", PLOTTING, ids=[path.name for path in PLOTTING])
def test_example_runs_without_matplotlib(path, runs):
    result, out_dir = runs["test_example_runs_without_matplotlib", path].result()
    check_ran(result, path)
    assert NO_MATPLOTLIB in result.stdout and 'pip install "fastbp[plot]"' in result.stdout, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert list(out_dir.iterdir()) == [], "wrote a file without matplotlib"

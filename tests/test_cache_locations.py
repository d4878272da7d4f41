"""Where Numba's on-disk cache cannot be written (a package installed by another user, an
unwritable home, an unusable ``NUMBA_CACHE_DIR``, a full disk): ``import fastbp`` works,
the kernels cached in the package load, what is not cached is compiled in memory, and one
warning per process says so.

The tests run as root, whom file modes do not stop, so the child processes refuse writes
themselves: every write, directory creation or temporary file under the given folders
raises the given ``OSError`` (EACCES: read-only; ENOSPC: a full disk, where only writing a
file's contents fails), as the kernel would.
One test also runs as an unprivileged user where the machine allows it.
"""

import errno
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import fastbp

pytestmark = pytest.mark.slow  # fresh processes and cold compiles (README, Development)

PACKAGE = Path(fastbp.__file__).parent

GUARD = textwrap.dedent("""
    import builtins, errno, os, sys
    ROOTS = [os.path.realpath(r) for r in os.environ["REFUSE_WRITES_UNDER"].split(os.pathsep) if r]
    ERRNO = int(os.environ["REFUSE_WITH"])

    def refused(path):
        path = os.path.realpath(os.fsdecode(path))
        return any(path == r or path.startswith(r + os.sep) for r in ROOTS)

    def fail(path):
        raise OSError(ERRNO, os.strerror(ERRNO), os.fsdecode(path))

    _open, _os_open, _mkdir = builtins.open, os.open, os.mkdir

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and refused(file):
            fail(file)
        return _open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and refused(path):
            fail(path)
        return _os_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if refused(path):
            fail(path)
        return _mkdir(path, *args, **kwargs)

    builtins.open = guarded_open
    if ERRNO != errno.ENOSPC:  # a full disk still lets a folder or an empty file be made: only writes fail
        os.open, os.mkdir = guarded_os_open, guarded_mkdir
""")

CHILD = textwrap.dedent("""
    import logging, sys, warnings
    import numpy as np
    logging.basicConfig(stream=sys.stdout, format="%(message)s")  # the compile notices, in order
    warnings.simplefilter("always")
    warnings.showwarning = lambda message, *a, **k: print("WARNING", message, flush=True)
    import fastbp
    for dtype in sys.argv[1:]:
        model = fastbp.MLP([3, 4, 2], dtype=dtype, seed=0)
        X = np.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3)
        for rows in (2, 2):
            print(dtype, model.predict(X[:rows]).round(6).tolist(), flush=True)
""")


def run(package_root, dtypes, refuse=(), refuse_with=errno.EACCES, user=None, extra_env=None):
    """The child above with ``package_root`` first on the path and writes under ``refuse``
    refused: its stdout (the notices, warnings and predictions) after checking it succeeded."""
    env = dict(os.environ, PYTHONPATH=str(package_root), PYTHONDONTWRITEBYTECODE="1",
               REFUSE_WRITES_UNDER=os.pathsep.join(map(str, refuse)), REFUSE_WITH=str(refuse_with))
    env.pop("NUMBA_CACHE_DIR", None)
    env.update(extra_env or {})
    code = (GUARD if refuse else "") + CHILD
    done = subprocess.run([sys.executable, "-c", code, *dtypes], env=env, capture_output=True, text=True,
                          timeout=900, cwd=package_root, user=user)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """A copy of the package (without its caches) whose float64 inference kernels a first
    process compiled into its ``__pycache__``, as a complete installation would have them."""
    root = tmp_path_factory.mktemp("installed")
    shutil.copytree(PACKAGE, root / "fastbp", ignore=shutil.ignore_patterns("__pycache__"))
    first = run(root, ["float64"], extra_env={"HOME": str(root / "home")})
    assert sum("compiling" in line for line in first) == 2, first  # the data checks, the inference kernel
    return root


def predictions(lines):
    return [line for line in lines if line.startswith(("float32 ", "float64 "))]


@pytest.mark.parametrize("unusable", ["home-missing", "home-is-a-file", "cache-dir-is-a-file"])
def test_no_writable_cache_location_loads_what_is_cached_and_compiles_the_rest(package_copy, tmp_path, unusable):
    """The package's ``__pycache__`` read-only, and the user-wide cache location unusable:
    ``import fastbp`` works (it failed with "no locator available"), the cached float64
    kernels load (no compile notice), the float32 ones are compiled in memory with one
    warning, and every prediction equals a normal process's."""
    home = {"home-missing": tmp_path / "no" / "such" / "home", "home-is-a-file": Path(os.devnull),
            "cache-dir-is-a-file": None}[unusable]
    env = {"HOME": str(home)}
    if unusable == "cache-dir-is-a-file":
        (tmp_path / "file").write_text("")
        env = {"HOME": os.devnull, "NUMBA_CACHE_DIR": str(tmp_path / "file" / "numba")}
    refuse = [package_copy, tmp_path / "no"]
    lines = run(package_copy, ["float64", "float32"], refuse=refuse, extra_env=env)
    notices = [line for line in lines if line.startswith("fastbp: compiling")]
    warned = [line for line in lines if line.startswith("WARNING fastbp:")]
    assert notices and all("float32" in n for n in notices), lines  # float64: loaded from the package
    assert len(warned) == 1 and "cannot save compiled kernels to" in warned[0] and "NUMBA_CACHE_DIR" in warned[0], \
        lines
    # a process with a writable home, which caches there (not in the package: the next case
    # must find only float64 in it)
    normal = run(package_copy, ["float64", "float32"], refuse=[package_copy], extra_env={"HOME": str(tmp_path / "h")})
    assert predictions(lines) == predictions(normal) and not any(line.startswith("WARNING fastbp:") for line in normal)


def test_a_full_disk_costs_a_compile_and_one_warning(tmp_path):
    """Writes to the cache directory fail with ENOSPC: the first calls compile in memory (the
    first ``fit`` failed with ``OSError: [Errno 28]``), with one warning, and nothing is left
    in the directory."""
    root = tmp_path / "pkg"
    shutil.copytree(PACKAGE, root / "fastbp", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    cache.mkdir()
    lines = run(root, ["float64"], refuse=[cache], refuse_with=errno.ENOSPC,
                extra_env={"NUMBA_CACHE_DIR": str(cache), "HOME": str(tmp_path / "home")})
    warned = [line for line in lines if line.startswith("WARNING fastbp:")]
    assert len(warned) == 1 and "No space left on device" in warned[0], lines
    assert len(predictions(lines)) == 2
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no half-written index or data file


def _unprivileged_user():
    """A user other than root who can run this Python and read the package, or None."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    # (numba, not fastbp: whether fastbp imports for them is what the test checks)
    try:
        probe = subprocess.run([sys.executable, "-c", "import numba"], user=nobody.pw_uid, capture_output=True,
                               env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HOME=os.devnull), cwd="/")
    except OSError:  # (the interpreter itself is out of their reach)
        return None
    return nobody.pw_uid if probe.returncode == 0 else None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run a child as another user")
def test_another_user_of_a_root_installed_package(request):
    """For real: an unprivileged user, the package owned by root (its ``__pycache__`` not
    writable for them), no usable home."""
    user = _unprivileged_user()
    if user is None:
        pytest.skip("no unprivileged user can run this interpreter here (it lies in a folder private to root, "
                    "e.g. a virtual environment in a private temporary directory); the simulated tests above "
                    "cover the same paths")
    package_copy = request.getfixturevalue("package_copy")
    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # (pytest's own temporary folders are private to root)
    try:
        shutil.copytree(package_copy / "fastbp", shared / "fastbp")
        shared.chmod(0o755)
        lines = run(shared, ["float64", "float32"], user=user, extra_env={"HOME": os.devnull})
    finally:
        shutil.rmtree(shared)
    assert not any(line.startswith("fastbp: compiling") and "float64" in line for line in lines), lines
    assert sum(line.startswith("WARNING fastbp:") for line in lines) == 1, lines

"""Cold and warm start-up of fastbp: a whole first session (import, ``fit``, ``predict``,
``evaluate``, ``train_step``) in a fresh Python process.

Default mode, in this environment:
  Cold: an empty Numba cache directory, so everything ``fit`` needs is compiled.
  Warm: the same cache directory again, now populated by the cold run.
  Numba's floor: the warm process of a one-line ``@njit(cache=True)`` function (import numba,
  one cached call: the first call of any Numba function sets up Numba's typing and imports
  SciPy's BLAS), the least a warm start of any Numba program costs on this machine.

``--venv``: from a clean clone of this checkout's HEAD (uncommitted changes are not
measured), fresh virtual environments: ``pip install .`` with ``FASTBP_NO_COMPILE=1`` and
without (the two kinds alternate within each round), then in each a first session (float32
then float64) in a fresh process and the same again in a second process.  Packages come from
what pip is configured to use (its cache, local wheels, the registry); nothing else.

``--floor``: where a warm process spends its time before the first step: ``import fastbp``
(``-X importtime``, by package, and fastbp's own modules), the first dispatch of any Numba
function, the kernel loads of a first ``fit``; beside ``import sklearn.neural_network`` and,
where it is importable here, ``import torch``.

    python benchmarks/startup.py [--repeat 3] [--dtype float32]
    python benchmarks/startup.py --venv [--repeat 1]      # a few minutes per round
    python benchmarks/startup.py --floor [--repeat 3]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "asv_benchmarks"))
from benchmarks.common import cpu_model  # noqa: E402  (the one home of the CPU's name, as scaling.py)

# One dtype's part of a session: fit, predict, evaluate, train_step, each timed.
SESSION_PART = """
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 4)).astype("{dtype}")
y = rng.integers(0, 3, 150)
t = time.perf_counter()
model = fb.MLP([4, 16, 3], optimizer=fb.Adam(1e-3), dtype="{dtype}", seed=0)
model.fit(X, y, epochs=1, batch_size=16)
times.append(time.perf_counter() - t); t = time.perf_counter()
model.predict(X)
times.append(time.perf_counter() - t); t = time.perf_counter()
model.evaluate(X, y)
times.append(time.perf_counter() - t); t = time.perf_counter()
model.train_step(X[:16], y[:16])
times.append(time.perf_counter() - t)
"""

# Prints: import, then (fit, predict, evaluate, train_step) per dtype, then how many times
# the session's entry points had to compile (0: every kernel came from the on-disk cache).
SESSION = """
import time
t = time.perf_counter()
import numpy as np
import fastbp as fb
times = [time.perf_counter() - t]
{parts}
from fastbp import kernels
entry = (kernels.all_finite, kernels.one_hot, kernels.train_epochs, kernels.infer)
print(*times, sum(sum(d.stats.cache_misses.values()) for d in entry))
"""


def session_code(*dtypes):
    return SESSION.format(parts="".join(SESSION_PART.format(dtype=d) for d in dtypes))


FLOOR = """
import time
t0 = time.perf_counter()
import numba
import numpy as np


@numba.njit(cache=True)
def total(x):
    return x.sum()


t1 = time.perf_counter()
total(np.ones(3))
print(t1 - t0, time.perf_counter() - t1)
"""


def floor(folder):
    """(process, import numba, first cached call) of ``FLOOR``, warm (run once before)."""
    path = os.path.join(folder, "floor.py")
    with open(path, "w") as f:
        f.write(FLOOR)
    subprocess.run([sys.executable, path], check=True, capture_output=True)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, path], check=True, capture_output=True, text=True).stdout
    return (time.perf_counter() - start, *map(float, out.split()))


def timed(cmd, **kwargs):
    """(wall seconds, stdout, stderr) of a command that must succeed (its output shown if it fails)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    return elapsed, done.stdout, done.stderr


def run(cache_dir, dtype):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    total, out, _ = timed([sys.executable, "-c", session_code(dtype)], env=env)
    return (total, *map(float, out.split()[:5]))


def median_columns(rows):
    return [statistics.median(col) for col in zip(*rows)]


def machine():
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def default_mode(args):
    cold, warm, floors = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run(cache, args.dtype))
            warm.append(run(cache, args.dtype))
        with tempfile.TemporaryDirectory() as folder:
            floors.append(floor(folder))
    for name, runs in (("cold (empty cache)", cold), ("warm (cache populated)", warm)):
        total, imp, fit, predict, evaluate, step = median_columns(runs)
        print(f"{name:24s} process {total:6.2f} s   import fastbp {imp:5.2f} s   first fit {fit:6.2f} s   "
              f"first predict {predict:5.2f} s   first evaluate {evaluate:5.2f} s   first train_step {step:5.2f} s")
    total, imp, call = median_columns(floors)
    print(f"{'Numba floor (warm)':24s} process {total:6.2f} s   import numba  {imp:5.2f} s   first cached call {call:5.2f} s")


# --venv ----------------------------------------------------------------------------------

# (name, what the environment of `pip install .` sets: None removes the variable)
KINDS = (("FASTBP_NO_COMPILE=1 pip install .", {"FASTBP_NO_COMPILE": "1"}),
         ("pip install .", {"FASTBP_NO_COMPILE": None}))


def clean_env(venv=None, **changes):
    """This process's environment without what would point a child elsewhere: its virtual
    environment, a Numba cache directory, PYTHONPATH; ``venv``'s bin first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "NUMBA_CACHE_DIR", "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}
    if venv is not None:
        env["VIRTUAL_ENV"] = venv
        env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def head():
    """(repository root, HEAD's commit, whether the work tree has uncommitted changes)."""
    def git(*a):
        return subprocess.run(["git", "-C", HERE, *a], check=True, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--show-toplevel"), git("rev-parse", "HEAD"), bool(git("status", "--porcelain"))


def install_and_sessions(root, commit, folder, kind_env):
    """A clean clone, a fresh venv, ``pip install .`` timed, then the first and a second
    session process.  Returns (install s, compile-at-install s or nan, first, second)."""
    src, venv, work = (os.path.join(folder, name) for name in ("src", "venv", "work"))
    # a clone per install: pip builds in the source tree, so a second build there would
    # reuse build/ (and the kernel cache the first build compiled into it)
    subprocess.run(["git", "clone", "-q", "--no-checkout", root, src], check=True)
    subprocess.run(["git", "-C", src, "checkout", "-q", commit], check=True)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, env=clean_env())
    python = os.path.join(venv, "bin", "python")
    os.mkdir(work)
    # -v only so that setup.py's line "kernels compiled for this machine in N s" reaches us
    install, out, err = timed([python, "-m", "pip", "install", "-v", "."], cwd=src, env=clean_env(venv, **kind_env))
    log = out + err
    found = re.search(r"fastbp: kernels compiled for this machine in (\d+) s", log)
    compiled_at_install = float(found.group(1)) if found else float("nan")
    if "were not compiled at install" in log:
        print("note: the build step's compile failed:",
              re.search(r"fastbp: the kernels were not compiled.*", log).group(0), file=sys.stderr)
    sessions = []
    for _ in range(2):  # the first process, then a second (warm)
        # cwd: an empty folder, so that `import fastbp` finds the installed package, not a checkout
        total, out, _ = timed([python, "-c", session_code("float32", "float64")], cwd=work, env=clean_env(venv))
        values = list(map(float, out.split()))
        sessions.append((total, values[0], sum(values[1:5]), sum(values[5:9]), values[9]))
    return install, compiled_at_install, sessions[0], sessions[1]


def venv_mode(args):
    root, commit, dirty = head()
    if dirty:
        print(f"note: {root} has uncommitted changes; measuring its HEAD as committed", file=sys.stderr)
    results = {name: [] for name, _ in KINDS}
    with tempfile.TemporaryDirectory(prefix="fastbp-startup-") as tmp:
        for r in range(args.repeat):
            kinds = KINDS if r % 2 == 0 else KINDS[::-1]  # alternate which kind goes first
            for i, (name, kind_env) in enumerate(kinds):
                folder = os.path.join(tmp, f"round{r}-{i}")
                os.mkdir(folder)
                result = install_and_sessions(root, commit, folder, kind_env)
                results[name].append(result)
                shutil.rmtree(folder)  # about 0.5 GB each: venv, clone, build
                install, at_install, first, second = result
                print(f"round {r + 1}: {name:34s} install {install:5.1f} s   first process {first[0]:5.1f} s   "
                      f"second {second[0]:4.2f} s", file=sys.stderr, flush=True)
    print(f"Machine: {machine()}; median of {args.repeat} round(s), the two kinds alternating; "
          f"a clean clone of {commit[:12]}, a fresh venv each\n")
    print("| | `pip install .` | first process: import, `fit`, `predict`, `evaluate`, `train_step`, "
          "float32 then float64 | a second process, the same |")
    print("|---|---|---|---|")
    for name, _ in KINDS:
        rows = results[name]
        install = statistics.median(r[0] for r in rows)
        at_install = statistics.median(r[1] for r in rows)
        first = median_columns([r[2] for r in rows])
        second = median_columns([r[3] for r in rows])
        label = f"`{name}`" + (f" (compiles at install: {at_install:.0f} s)" if at_install == at_install else "")
        print(f"| {label} | {install:.1f} s | {first[0]:.2f} s (import {first[1]:.2f} s, float32 {first[2]:.2f} s, "
              f"float64 {first[3]:.2f} s; {first[4]:.0f} kernel compiles) | {second[0]:.2f} s "
              f"(import {second[1]:.2f} s, float32 {second[2]:.2f} s, float64 {second[3]:.2f} s) |")
    print("\nCommands, each round and kind (T: a fresh temporary folder):\n"
          f"  git clone -q --no-checkout {root} T/src && git -C T/src checkout -q {commit[:12]}\n"
          f"  {os.path.basename(sys.executable)} -m venv T/venv\n"
          "  cd T/src && [FASTBP_NO_COMPILE=1] T/venv/bin/python -m pip install -v .      # timed\n"
          "  cd T/work && T/venv/bin/python -c \"$SESSION\"    # twice: the first process, then the second\n"
          "where $SESSION is `import fastbp`, then for float32 and for float64: MLP([4, 16, 3], Adam, seed 0)"
          " .fit(150 x 4, epochs=1, batch_size=16), .predict, .evaluate, .train_step (startup.py's SESSION).")


# --floor ---------------------------------------------------------------------------------

# A warm process, phase by phase (a file, so that `total`'s cache=True has a place to live).
FLOOR_SESSION = """
import json, sys, time
began = time.time()  # (wall clock, which the parent shares: the interpreter's start and exit)
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import numba
t2 = time.perf_counter()
import fastbp
t3 = time.perf_counter()
before = set(sys.modules)
import scipy.linalg  # what the first dispatch imports (Numba's BLAS binding): timed apart
t4 = time.perf_counter()


@numba.njit(cache=True)
def total(x):
    return x.sum()


total(np.ones(3))
t5 = time.perf_counter()
new = set(sys.modules) - before
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 4)).astype("float32")
y = rng.integers(0, 3, 150)
fits = []
for _ in range(2):  # the first fit loads its kernels; the second is the fit alone
    t = time.perf_counter()
    fastbp.MLP([4, 16, 3], optimizer=fastbp.Adam(1e-3), dtype="float32", seed=0).fit(X, y, epochs=1, batch_size=16)
    fits.append(time.perf_counter() - t)
from fastbp import kernels
entry = (kernels.all_finite, kernels.one_hot, kernels.train_epochs, kernels.infer)
print(json.dumps({"numpy": t1 - t0, "numba": t2 - t1, "fastbp": t3 - t2, "scipy.linalg": t4 - t3,
                  "dispatch": t5 - t4, "first fit": fits[0], "second fit": fits[1], "dispatch modules": len(new),
                  "compiles": sum(sum(d.stats.cache_misses.values()) for d in entry), "began": began,
                  "ended": time.time()}))
"""

# Which of fastbp's modules run no Python function of theirs in a whole warm first session.
USED = """
import json, sys
import numpy as np
import fastbp as fb
package = fb.__file__.rsplit("/", 1)[0]
files = set()
def profile(frame, event, arg):
    if event == "call":
        files.add(frame.f_code.co_filename)
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 4)).astype("float32")
y = rng.integers(0, 3, 150)
sys.setprofile(profile)
model = fb.MLP([4, 16, 3], optimizer=fb.Adam(1e-3), dtype="float32", seed=0)
model.fit(X, y, epochs=1, batch_size=16)
model.predict(X); model.evaluate(X, y); model.train_step(X[:16], y[:16])
sys.setprofile(None)
loaded = {m: getattr(sys.modules[m], "__file__", None) for m in list(sys.modules) if m.startswith("fastbp")}
# (the kernels' modules are left out: their compiled code is what runs)
print(json.dumps(sorted(m for m, f in loaded.items()
                        if f and f not in files and m != "fastbp" and not m.startswith("fastbp.kernels"))))
"""

GROUPS = (("numba", ("numba", "llvmlite")), ("numpy", ("numpy",)), ("scipy", ("scipy",)), ("fastbp", ("fastbp",)))


def import_rows(cmd, cwd):
    """``-X importtime`` of a command: [(self µs, cumulative µs, depth, name)], in the order
    Python prints them (a module after everything it imported)."""
    _, _, out = timed([cmd[0], "-X", "importtime", *cmd[1:]], cwd=cwd)
    rows = []
    for line in out.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            rows.append((int(found.group(1)), int(found.group(2)), len(found.group(3)) // 2, found.group(4)))
    return rows


def subtree(rows, module):
    """The rows of a top-level ``import module`` and of everything it imported."""
    top = max(i for i, r in enumerate(rows) if r[3] == module and r[2] == 0)
    start = top
    while start > 0 and rows[start - 1][2] > 0:
        start -= 1
    return rows[start:top + 1]


def largest(runs, count):
    """The ``count`` modules of most self time (median over ``runs`` of ``import_rows``):
    (name, self s, the module that imported it)."""
    parents, times = {}, {}
    for rows in runs:
        for i, (self_us, _, depth, name) in enumerate(rows):
            parents.setdefault(name, next((r[3] for r in rows[i + 1:] if r[2] < depth),
                                          "no module (the script, or code it ran)"))
            times.setdefault(name, []).append(self_us / 1e6)
    found = [(name, statistics.median(t + [0.0] * (len(runs) - len(t))), parents[name]) for name, t in times.items()]
    return sorted(found, key=lambda f: -f[1])[:count]


def import_breakdown(rows):
    """(the imports' whole time, self time by group, fastbp's own modules' self times) (s)."""
    groups = {name: 0 for name, _ in GROUPS}
    groups["other (stdlib)"] = 0
    own = {}
    for self_us, _, _, name in rows:
        root = name.split(".")[0]
        group = next((g for g, roots in GROUPS if root in roots), "other (stdlib)")
        groups[group] += self_us / 1e6
        if root == "fastbp":
            own[name] = self_us / 1e6
    return sum(r[1] for r in rows if r[2] == 0) / 1e6, groups, own


def importable(module):
    return subprocess.run([sys.executable, "-c", f"import importlib.util, sys; "
                           f"sys.exit(importlib.util.find_spec({module!r}) is None)"]).returncode == 0


def floor_mode(args):
    python = sys.executable
    comparisons = ["pass"] + [f"import {m}" for m in ("numpy", "numba", "fastbp", "sklearn.neural_network")]
    torch = importable("torch")
    if torch:
        comparisons.append("import torch")
    with tempfile.TemporaryDirectory(prefix="fastbp-floor-") as folder:
        path = os.path.join(folder, "floor_session.py")
        with open(path, "w") as f:
            f.write(FLOOR_SESSION)
        timed([python, path], cwd=folder)  # warm: every cache populated, every file read once
        sessions, trees, wholes, processes = [], [], [], {code: [] for code in comparisons}
        for code in comparisons:
            timed([python, "-c", code], cwd=folder)
        for _ in range(args.repeat):
            started = time.time()
            total, out, _ = timed([python, path], cwd=folder)
            phases = json.loads(out)
            phases["start"], phases["exit"] = phases["began"] - started, started + total - phases["ended"]
            sessions.append((total, phases))
            trees.append(import_breakdown(subtree(import_rows([python, "-c", "import fastbp"], folder), "fastbp")))
            wholes.append(import_rows([python, path], folder))
            for code in comparisons:
                processes[code].append(timed([python, "-c", code], cwd=folder)[0])
        unused = json.loads(timed([python, "-c", USED], cwd=folder)[1])
    phases = {key: statistics.median(s[1][key] for s in sessions)
              for key in ("start", "numpy", "numba", "fastbp", "scipy.linalg", "dispatch", "first fit", "second fit", "exit")}
    last = sessions[-1][1]
    total = statistics.median(s[0] for s in sessions)
    print(f"Machine: {machine()}; median of {args.repeat}; warm (every cache populated by a run before)\n")
    print(f"A warm process, import to a first fit and a second ({python} {os.path.basename(path)}): {total:.2f} s")
    for label, value in (("the interpreter's start (to the script's first line)", phases["start"]),
                         ("import numpy", phases["numpy"]), ("import numba (after numpy)", phases["numba"]),
                         ("import fastbp (after both)", phases["fastbp"]),
                         ("import scipy.linalg (Numba's first dispatch imports it)", phases["scipy.linalg"]),
                         ("first dispatch of any Numba function, the rest (a cached one-liner)", phases["dispatch"]),
                         ("first fit (4-16-3, 150 rows, one epoch): loads its kernels", phases["first fit"]),
                         ("  of which the fit itself (a second fit)", phases["second fit"]),
                         ("the interpreter's exit (after the script's last line)", phases["exit"])):
        print(f"  {label:68s} {value:6.3f} s")
    print(f"  (scipy.linalg and the first dispatch imported {last['dispatch modules']} modules; "
          f"kernel compiles in the session: {last['compiles']})")
    cumulative = statistics.median(t[0] for t in trees)
    print(f"\n`{python} -X importtime -c \"import fastbp\"`: {cumulative:.3f} s (with importtime's own overhead), "
          "self time by package:")
    for group in trees[0][1]:
        print(f"  {group:16s} {statistics.median(t[1][group] for t in trees):6.3f} s")
    own = {name: statistics.median(t[2].get(name, 0.0) for t in trees) for name in trees[0][2]}
    print("  fastbp's own modules, the largest:", ", ".join(
        f"{name} {value * 1e3:.1f} ms" for name, value in sorted(own.items(), key=lambda kv: -kv[1])[:6]))
    print("  fastbp modules none of whose Python functions runs in a warm first session (fit, predict, evaluate, "
          f"train_step), {sum(own.get(m, 0.0) for m in unused) * 1e3:.1f} ms of self time together:",
          ", ".join(f"{m} {own.get(m, 0.0) * 1e3:.1f} ms" for m in unused) or "none")
    print(f"\n`{python} -X importtime {os.path.basename(path)}` (the whole warm process), the modules of most "
          "self time:")
    whole = [import_breakdown(rows) for rows in wholes]
    print("  by package: " + ", ".join(f"{group} {statistics.median(w[1][group] for w in whole):.3f} s"
                                       for group in whole[0][1]))
    for name, seconds, parent in largest(wholes, 8):
        print(f"  {name:44s} {seconds * 1e3:5.1f} ms   imported by {parent}")
    print("\nWhole processes (wall, warm):")
    for code in comparisons:
        print(f"  {python} -c \"{code}\"".ljust(72) + f"{statistics.median(processes[code]):6.3f} s")
    if not torch:
        print(f"  {python} -c \"import torch\"".ljust(72) + "  (torch is not importable here)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default: 3; --venv: 1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="the default mode's dtype")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--venv", action="store_true", help="install and first use in fresh virtual environments")
    mode.add_argument("--floor", action="store_true", help="a warm process's time before its first step, broken down")
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 1 if args.venv else 3
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.venv:
        venv_mode(args)
    elif args.floor:
        floor_mode(args)
    else:
        default_mode(args)


if __name__ == "__main__":
    main()

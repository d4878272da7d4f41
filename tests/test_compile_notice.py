"""The notice of a cold compile: logged (logger "fastbp", WARNING: on stderr by default)
exactly when Numba is about to compile one of fastbp's entry points from scratch (nothing
compiled in this process, nothing in the on-disk cache), never when the kernels are loaded
from the cache or already compiled; ``fit`` has its kernel ready before it times an epoch."""

import inspect
import logging
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from numba.core import event, types

import fastbp
import fastbp.model
from fastbp import kernels

X, Y = np.linspace(-1, 1, 15).reshape(5, 3), np.array([0, 1, 2, 0, 1])


def warm_signature(dispatcher, call, dtype="float32"):
    """The signature of ``dispatcher`` that ``call`` (a small model's call on writable data)
    compiled or loaded in this process: ``dtype``, writable X, serial-only ``cfg`` (other
    tests may have added others before)."""
    call()
    params = list(inspect.signature(dispatcher.py_func).parameters)
    x_at, cfg_at = params.index("X"), params.index("cfg")
    return next(sig for sig in dispatcher.signatures if str(sig[x_at].dtype) == dtype and sig[x_at].mutable
                and any(isinstance(t, types.NoneType) for t in sig[cfg_at]))


def compile_event(dispatcher, args):
    """Numba's event for a compile of ``dispatcher`` with ``args`` (what its dispatcher
    broadcasts on a cache miss), without compiling anything."""
    with event.trigger_event("numba:compile", data=dict(dispatcher=dispatcher, args=args, return_type=None)):
        pass


def notices(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "fastbp" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("entry,call,what", [
    ("train_epochs", lambda m: m.fit(X, Y), "the training kernels"),
    ("infer", lambda m: m.predict(X), "the inference kernel"),
    ("loss_and_grads", lambda m: m.loss_and_grads(X, Y), "the gradient kernel"),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_compile_of_an_entry_point_is_announced(caplog, entry, call, what, dtype):
    dispatcher = getattr(kernels, entry)
    model = fastbp.MLP([3, 4, 3], dtype=dtype, seed=0)
    args = warm_signature(dispatcher, lambda: call(model), dtype)
    caplog.set_level(logging.WARNING, logger="fastbp")
    caplog.clear()  # (a cold cache: the warm-up's own notices)
    compile_event(dispatcher, args)
    assert notices(caplog) == [f"fastbp: compiling {what} for {dtype} (first use; cached on disk afterwards, "
                               f"~{dict(train_epochs=30, infer=5, loss_and_grads=20)[entry]} s)"]


def test_the_notice_names_a_read_only_or_parallel_specialisation(caplog):
    sig = list(warm_signature(kernels.infer, lambda: fastbp.MLP([3, 4, 3], seed=0).predict(X)))
    x_at, cfg_at = 3, 5  # infer(P, net, ws, X, T, cfg)
    caplog.set_level(logging.WARNING, logger="fastbp")
    caplog.clear()  # (a cold cache: the warm-up's own notices)
    read_only = list(sig)
    read_only[x_at] = sig[x_at].copy(readonly=True)
    compile_event(kernels.infer, tuple(read_only))
    parallel = list(sig)
    parallel[cfg_at] = types.Tuple([types.int64 if isinstance(t, types.NoneType) else t for t in sig[cfg_at]])
    compile_event(kernels.infer, tuple(parallel))
    assert [m.split(" (first use")[0] for m in notices(caplog)] == [
        "fastbp: compiling the inference kernel for float32, read-only inputs",
        "fastbp: compiling the inference kernel for float32, with parallel loops for calls large enough to split "
        "over the cores"]


def test_other_compiles_are_not_announced(caplog):
    caplog.set_level(logging.WARNING, logger="fastbp")
    numba.njit(lambda a: a + 1)(1)  # a real compile, of a function that is not fastbp's
    assert notices(caplog) == []


def test_calls_of_compiled_kernels_say_nothing(fb, caplog):
    model = fb.MLP([3, 4, 3], seed=0)
    calls = [lambda: model.fit(X, Y, epochs=2, verbose=0), lambda: model.predict(X), lambda: model.evaluate(X, Y),
             lambda: model.loss_and_grads(X, Y), lambda: model.train_step(X, Y)]
    for call in calls:  # compiled (or loaded) here if no earlier test did it
        call()
    caplog.set_level(logging.WARNING, logger="fastbp")
    caplog.clear()  # (a cold cache: the warm-up's own notices)
    for call in calls:
        call()
    assert notices(caplog) == []


def test_the_data_checks_are_announced_too(caplog):
    """The compiled data checks run first in every call that takes data, and compile for
    seconds: their compile is announced like the entry points'."""
    fastbp.MLP([3, 4, 3], seed=0).fit(X, Y)
    caplog.set_level(logging.WARNING, logger="fastbp")
    caplog.clear()  # (a cold cache: the warm-up's own notices)
    for dispatcher, at in [(kernels.all_finite, 0), (kernels.one_hot, 0)]:
        sig = next(sig for sig in dispatcher.signatures if str(sig[at].dtype) == "float32")
        compile_event(dispatcher, sig)
    assert notices(caplog) == [
        "fastbp: compiling the data checks for float32 (first use; cached on disk afterwards, ~5 s)",
        "fastbp: compiling the label encoder for float32 (first use; cached on disk afterwards, ~1 s)"]


@pytest.mark.parametrize("case", ["float32", "float64", "read-only", "schedule", "parallel", "skip_batch"])
def test_fit_has_its_kernel_ready_before_it_times_an_epoch(monkeypatch, case):
    """``fit`` loads or compiles the epoch kernel for its arguments' types before the first
    epoch is timed (and before a progress bar is drawn): the timed compiled call never adds
    an overload, so compile time is never counted in samples/s."""
    dtype = "float64" if case == "float64" else "float32"
    sizes = [3, 300, 3] if case == "parallel" else [3, 4, 3]
    rng = np.random.default_rng(0)
    Xc, Yc = rng.standard_normal((400, 3)).astype(dtype), rng.integers(0, 3, 400)
    if case == "read-only":
        Xc.flags.writeable = False
    model = fastbp.MLP(sizes, dtype=dtype, seed=0)
    options = dict(epochs=2, batch_size=400 if case == "parallel" else 16,
                   lr_schedule=fastbp.schedules.StepDecay(0.01, step_size=1) if case == "schedule" else None,
                   on_nonfinite="skip_batch" if case == "skip_batch" else "raise")
    counts = []
    run_epochs = fastbp.model.MLP._run_epochs

    def counting_run_epochs(self, *args):
        counts.append(len(kernels.train_epochs.overloads))
        result = run_epochs(self, *args)
        counts.append(len(kernels.train_epochs.overloads))
        return result

    monkeypatch.setattr(fastbp.model.MLP, "_run_epochs", counting_run_epochs)
    model.fit(Xc, Yc, **options)
    assert counts and len(set(counts)) == 1, counts
    if case == "parallel":
        assert model._call(400)[0] is model._cfg  # (the parallel variant)


CHILD = textwrap.dedent("""
    import logging, sys
    import numpy as np
    import fastbp
    if sys.argv[1] == "quiet":
        logging.getLogger("fastbp").setLevel(logging.ERROR)
    if sys.argv[1] == "configured":
        logging.basicConfig(stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
    model = fastbp.MLP([3, 4, 2], dtype="float64", seed=0)
    model.predict(np.zeros((2, 3)))
    model.predict(np.zeros((3, 3)))
    print("done")
""")


@pytest.mark.slow
def test_only_a_real_cold_compile_is_announced(tmp_path):
    """End to end, from an empty on-disk cache: the first process compiles the data check
    and the inference kernel and says so on stderr, once each, with no logging configured;
    the next one loads them from the cache and says nothing.  An application's own logging
    configuration gets the notices instead; a logger set above WARNING gets none."""
    def run(mode, cache):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / cache))
        done = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stderr
        return done
    expected = ["fastbp: compiling the data checks for float64 (first use; cached on disk afterwards, ~5 s)",
                "fastbp: compiling the inference kernel for float64 (first use; cached on disk afterwards, ~5 s)"]
    cold, warm = run("default", "a"), run("default", "a")
    assert cold.stderr.splitlines() == expected and cold.stdout == "done\n"
    assert warm.stderr == "" and warm.stdout == "done\n"
    quiet = run("quiet", "b")
    assert quiet.stderr == "" and quiet.stdout == "done\n"
    configured = run("configured", "c")
    assert configured.stderr == "" and configured.stdout.splitlines() == [f"fastbp WARNING {e}" for e in expected] \
        + ["done"]


@pytest.fixture
def compiles_on_ready(monkeypatch):
    """Every ``fit`` that makes its epoch kernel ready broadcasts a compile event for the real
    argument types first, as Numba does before a cold compile (without compiling)."""
    ready = fastbp.model._ready

    def compiling_ready(dispatcher, args):
        compile_event(dispatcher, tuple(dispatcher.typeof_pyval(a) for a in args))
        return ready(dispatcher, args)

    monkeypatch.setattr(fastbp.model, "_ready", compiling_ready)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_estimators_announce_a_compile_too(caplog, compiles_on_ready):
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, Y)  # compiled or loaded
    caplog.set_level(logging.WARNING, logger="fastbp")
    caplog.clear()  # (a cold cache: the warm-up's own notices)
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, Y)
    assert notices(caplog) and all(n.startswith("fastbp: compiling the training kernels for ")
                                   for n in notices(caplog)), notices(caplog)

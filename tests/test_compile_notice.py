"""The notice of a cold compile: logged (logger "fastbp", INFO) exactly when Numba is about
to compile one of fastbp's entry points from scratch (nothing compiled in this process,
nothing in the on-disk cache), never when the kernels are loaded from the cache or already
compiled; printed to stderr as well during ``fit(verbose=1)``."""

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
    return [r.getMessage() for r in caplog.records if r.name == "fastbp" and r.levelno == logging.INFO]


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
    caplog.set_level(logging.INFO, logger="fastbp")
    compile_event(dispatcher, args)
    assert notices(caplog) == [f"fastbp: compiling {what} for {dtype} (first use; cached on disk afterwards, "
                               f"~{dict(train_epochs=30, infer=5, loss_and_grads=20)[entry]} s)"]


def test_the_notice_names_a_read_only_or_parallel_specialisation(caplog):
    sig = list(warm_signature(kernels.infer, lambda: fastbp.MLP([3, 4, 3], seed=0).predict(X)))
    x_at, cfg_at = 3, 5  # infer(P, net, ws, X, T, cfg)
    caplog.set_level(logging.INFO, logger="fastbp")
    read_only = list(sig)
    read_only[x_at] = sig[x_at].copy(readonly=True)
    compile_event(kernels.infer, tuple(read_only))
    parallel = list(sig)
    parallel[cfg_at] = types.Tuple([types.int64 if isinstance(t, types.NoneType) else t for t in sig[cfg_at]])
    compile_event(kernels.infer, tuple(parallel))
    assert [m.split(" (first use")[0] for m in notices(caplog)] == [
        "fastbp: compiling the inference kernel for float32, read-only inputs",
        "fastbp: compiling the inference kernel for float32, with parallel loops (a large model)"]


def test_other_compiles_are_not_announced(caplog):
    caplog.set_level(logging.INFO, logger="fastbp")
    numba.njit(lambda a: a + 1)(1)  # a real compile, of a function that is not fastbp's
    assert notices(caplog) == []


def test_calls_of_compiled_kernels_say_nothing(fb, caplog):
    model = fb.MLP([3, 4, 3], seed=0)
    calls = [lambda: model.fit(X, Y, epochs=2, verbose=0), lambda: model.predict(X), lambda: model.evaluate(X, Y),
             lambda: model.loss_and_grads(X, Y), lambda: model.train_step(X, Y)]
    for call in calls:  # compiled (or loaded) here if no earlier test did it
        call()
    caplog.set_level(logging.INFO, logger="fastbp")
    for call in calls:
        call()
    assert notices(caplog) == []


@pytest.mark.parametrize("verbose", [0, 1])
def test_fit_verbose_also_prints_the_notice_to_stderr(caplog, capsys, monkeypatch, verbose):
    """A compile starting inside ``fit(verbose=1)`` is announced on stderr too; with
    ``verbose=0`` only through logging."""
    model = fastbp.MLP([3, 4, 3], seed=0)
    sig = warm_signature(kernels.train_epochs, lambda: model.fit(X, Y))
    run_epochs = fastbp.model.MLP._run_epochs

    def compiling_run_epochs(self, *args):
        compile_event(kernels.train_epochs, sig)  # as Numba does before a cold compile
        return run_epochs(self, *args)

    monkeypatch.setattr(fastbp.model.MLP, "_run_epochs", compiling_run_epochs)
    capsys.readouterr()
    caplog.set_level(logging.INFO, logger="fastbp")
    model.fit(X, Y, verbose=verbose)
    notice = "fastbp: compiling the training kernels for float32 (first use; cached on disk afterwards, ~30 s)"
    assert notices(caplog) == [notice]
    assert capsys.readouterr().err == (notice + "\n" if verbose else "")
    compile_event(kernels.train_epochs, sig)  # outside fit: logged, never printed
    assert capsys.readouterr().err == "" and notices(caplog) == [notice, notice]


CHILD = textwrap.dedent("""
    import logging, sys
    import numpy as np
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
    import fastbp
    model = fastbp.MLP([3, 4, 2], dtype="float64", seed=0)
    model.predict(np.zeros((2, 3)))
    model.predict(np.zeros((3, 3)))
    print("done")
""")


def test_only_a_real_cold_compile_is_announced(tmp_path):
    """End to end, from an empty on-disk cache: the first process compiles the inference
    kernel and says so, once; the next one loads it from the cache and says nothing."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=900)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    cold, warm = (run.stdout.splitlines() for run in runs)
    assert cold == ["fastbp INFO fastbp: compiling the inference kernel for float64 (first use; cached on disk "
                    "afterwards, ~5 s)", "done"]
    assert warm == ["done"]

"""An interrupted fit leaves exactly a model that trained the steps it applied: weights,
optimizer state, step / epoch / mini-batch counts, schedule position and shuffle generator
belong together, so save -> load -> fit (or fit again in the same process)
ends bit for bit where the uninterrupted fit ends.

Ctrl-C: a child process trains and sends itself SIGINT at seeded random moments of a fit
(from a timer thread: a real asynchronous signal), saves what is left, goes on in the same
process and saves again; the tests load the files and compare.  A non-finite batch that
stops an epoch part-way: the batches before it are counted, and the next fit finishes that
epoch in its order.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp import schedules

IMPLS = {"fastbp": fastbp, "reference": fastbp.reference}

N, BATCH = 200, 16
N_BATCHES = -(-N // BATCH)  # 13, the last one of 8 rows
# Epochs per fit: a few tenths of a second in either implementation.
EPOCHS = {"fastbp": 2000, "reference": 50}
INTERRUPTS = 6  # random moments per configuration

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    import numpy as np
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
    import test_interrupt as t

    impl_name, out = sys.argv[2], sys.argv[3]
    fb, epochs = t.IMPLS[impl_name], t.EPOCHS[impl_name]
    X, y = t.data()
    t.make(fb, "plain").fit(X, y, epochs=1, batch_size=t.BATCH)  # compile before any timing
    runs = []
    for config in t.CONFIGS:
        start = time.perf_counter()
        t.make(fb, config).fit(X, y, epochs=epochs, **t.fit_args(config))
        duration = time.perf_counter() - start
        # seeded moments over the whole fit, but early enough to land before its end
        for i, delay in enumerate(np.random.default_rng(len(config)).uniform(0, 0.8 * duration, t.INTERRUPTS)):
            model = t.make(fb, config)
            timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
            interrupted = False
            try:
                try:
                    timer.start()
                    model.fit(X, y, epochs=epochs, **t.fit_args(config))
                finally:
                    timer.join()  # the signal is sent before anything else happens
            except KeyboardInterrupt:
                interrupted = True
            path = os.path.join(out, f"{config}-{i}.npz")
            model.save(path)
            if model._epoch < epochs:  # go on in this process
                model.fit(X, y, epochs=epochs - model._epoch, **t.fit_args(config))
            model.save(path.replace(".npz", "-continued.npz"))
            runs.append(dict(config=config, path=path, interrupted=interrupted, delay=delay))
    print(json.dumps(runs))
    """
)

CONFIGS = ("plain", "step-schedule")


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, 8)), rng.integers(0, 3, N)


def make(fb, config):
    # the step-unit schedule and dropout both depend on the exact step; float64 so that any
    # difference shows.  The reference's hidden layer is wide: its optimizer update is then a
    # large share of a step, and random signals often land between an update and its count.
    kw = dict(dropout=0.1) if config == "step-schedule" else {}
    hidden = 256 if fb is fastbp.reference else 16
    return fb.MLP([8, hidden, 3], optimizer=fb.Adam(1e-3), dtype="float64", seed=3, **kw)


def fit_args(config):
    args = dict(batch_size=BATCH, shuffle=True)
    if config == "step-schedule":
        args["lr_schedule"] = schedules.StepDecay(1e-2, rate=0.9, step_size=1001, unit="step")
    return args


def model_state(model):
    """Everything a model trains with, for bitwise comparison (the shape of the data of the
    last fit only when an epoch over it is unfinished: it is no state otherwise)."""
    ignored = ("status", "bad_layer", "bad_batch") + (() if model._field("batch") else
                                                      ("samples", "batch_size", "shuffled"))
    return dict(params=model._params_ext.copy(), slots=model._slots.copy(), rng=model._rng.bit_generator.state,
                counts={name: model._fields[name][0].item() for name in model._fields if name not in ignored})


def assert_same_state(a, b):
    a, b = model_state(a), model_state(b)
    assert a["counts"] == b["counts"]
    assert a["rng"] == b["rng"]
    assert np.array_equal(a["params"], b["params"]) and np.array_equal(a["slots"], b["slots"])


@pytest.fixture(scope="module", params=list(IMPLS))
def interrupted_runs(request, tmp_path_factory):
    """Run the child once per implementation: ``(name, runs)``, one run per interrupt."""
    name = request.param
    out = tmp_path_factory.mktemp(f"interrupted-{name}")
    script = out / "child.py"
    script.write_text(CHILD)
    package_root = os.path.dirname(os.path.dirname(fastbp.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, str(script), __file__, name, str(out)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return name, json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def uninterrupted():
    """``(implementation, config) -> (model, history)`` of the uninterrupted fits, made once."""
    X, y = data()
    cache = {}

    def get(name, config):
        if (name, config) not in cache:
            model = make(IMPLS[name], config)
            history = model.fit(X, y, epochs=EPOCHS[name], **fit_args(config))
            cache[name, config] = model, history
        return cache[name, config]
    return get


def test_an_interrupted_fit_counts_exactly_the_steps_it_applied(interrupted_runs):
    name, runs = interrupted_runs
    assert sum(run["interrupted"] for run in runs) >= len(runs) - 2, runs  # the signals landed in the fits
    mid_epoch = 0
    for run in runs:
        model = IMPLS[name].load(run["path"])
        batch = model._field("batch")
        # every batch ran is an applied step (nothing was skipped), and the counts agree
        assert model._step == model._batches == model._epoch * N_BATCHES + batch, run
        assert 0 <= batch < N_BATCHES
        mid_epoch += batch > 0
    if name == "reference":  # stopped between two batches, almost always inside an epoch
        assert mid_epoch >= 1, runs


@pytest.mark.parametrize("config", CONFIGS)
def test_an_interrupted_fit_goes_on_as_if_uninterrupted(interrupted_runs, uninterrupted, config):
    """save -> load -> fit the remaining epochs, and fit again in the interrupted process,
    both end bit for bit where the uninterrupted fit ends, with the same per-epoch losses."""
    name, runs = interrupted_runs
    fb, epochs = IMPLS[name], EPOCHS[name]
    straight, full_history = uninterrupted(name, config)
    X, y = data()
    for run in (r for r in runs if r["config"] == config):
        model = fb.load(run["path"])
        if model._epoch < epochs:
            history = model.fit(X, y, epochs=epochs - model._epoch, **fit_args(config))
            assert list(history) == list(full_history)[len(full_history) - len(history):], run
        assert_same_state(model, straight)
        assert_same_state(fb.load(run["path"].replace(".npz", "-continued.npz")), straight)


# --------------------------------------------------- Ctrl-C at a chosen moment, in this process
def sigint_on_call(function, call):
    """``function`` that sends SIGINT to this process at its ``call``-th call, after running."""
    calls = []

    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        calls.append(1)
        if len(calls) == call:
            signal.raise_signal(signal.SIGINT)  # the handler runs at the next bytecode
        return result
    return wrapper


def test_ctrl_c_inside_a_step_of_the_reference_waits_for_the_step(uninterrupted):
    """SIGINT right after an optimizer update of the reference (before the loop counts it)
    stops fit only once the batch is counted: 20 steps, 20 batches, batch 7 of epoch 2."""
    fb, config = fastbp.reference, "step-schedule"
    X, y = data()
    model = make(fb, config)
    model._train_step = sigint_on_call(model._train_step, 20)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=EPOCHS["reference"], **fit_args(config))
    assert (model._step, model._batches, model._epoch, model._field("batch")) == (20, 20, 1, 20 - N_BATCHES)
    del model._train_step
    model.fit(X, y, epochs=EPOCHS["reference"] - 1, **fit_args(config))
    assert_same_state(model, uninterrupted("reference", config)[0])


def test_ctrl_c_in_the_last_batch_of_an_epoch_stops_once_the_epoch_is_recorded():
    """SIGINT during an epoch's last step of the reference: the epoch ends (counted, its loss
    recorded, the position back at batch 0) before fit stops, not one batch short of its end."""
    fb, config = fastbp.reference, "step-schedule"
    X, y = data()
    model = make(fb, config)
    model._train_step = sigint_on_call(model._train_step, N_BATCHES)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=EPOCHS["reference"], **fit_args(config))
    assert (model._step, model._epoch, model._field("batch")) == (N_BATCHES, 1, 0)


def test_ctrl_c_while_a_chunk_is_drawn_stops_before_it(monkeypatch):
    """SIGINT while fit draws the shuffle orders of its second chunk (5 epochs each here):
    the chunk does not run and the generator is back where the first one left it."""
    import fastbp._base

    monkeypatch.setattr(fastbp._base, "_EPOCH_CHUNK_SAMPLES", 5 * N)
    monkeypatch.setattr(fastbp._base, "epoch_orders", sigint_on_call(fastbp._base.epoch_orders, 2))
    X, y = data()
    model, five = make(fastbp, "plain"), make(fastbp, "plain")
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=12, **fit_args("plain"))
    five.fit(X, y, epochs=5, **fit_args("plain"))
    assert_same_state(model, five)
    monkeypatch.undo()
    straight = make(fastbp, "plain")
    straight.fit(X, y, epochs=12, **fit_args("plain"))
    model.fit(X, y, epochs=7, **fit_args("plain"))
    assert_same_state(model, straight)


@pytest.mark.parametrize("fb", IMPLS.values(), ids=list(IMPLS))
def test_a_handler_of_the_users_gets_the_signal_once_the_model_is_whole(fb):
    """fit holds SIGINT back and passes it to the handler it found (which need not raise),
    then puts that handler back."""
    X, y = data()
    seen = []

    def handler(signum, frame):
        seen.append((signum, fb_model._step, fb_model._batches))

    fb_model = make(fb, "plain")
    fb_model._run_epochs = sigint_on_call(fb_model._run_epochs, 1)
    previous = signal.signal(signal.SIGINT, handler)
    try:
        fb_model.fit(X, y, epochs=2, **fit_args("plain"))
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(seen) == 1 and seen[0][0] == signal.SIGINT and seen[0][1] == seen[0][2] > 0


# --------------------------------------------------- a non-finite batch stops an epoch part-way
def poisoned_data():
    """Regression data with one row that overflows the network: its batch is never finite."""
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((61, 4)), rng.standard_normal((61, 2))
    X[37] = 1e200
    return X, y


def poisoned_model(fb):
    return fb.MLP([4, 8, 2], activation="relu", output="linear", loss="mse", optimizer=fb.Adam(1e-2),
                  dtype="float64", seed=0)


def stop_at_the_poisoned_batch(model, X, y, policy):
    """Train until the poisoned batch stops the third epoch; the batch index it stopped at."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(X, y, epochs=2, batch_size=8, on_nonfinite="skip_batch", shuffle=True)
        stops = model._batches
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="epoch 1, batch"):
                model.fit(X, y, epochs=3, batch_size=8, on_nonfinite="raise")
        else:
            assert model.fit(X, y, epochs=3, batch_size=8, on_nonfinite="stop").stopped
    done = model._batches - stops
    assert done > 0  # (the seeds put the poisoned row inside the epoch)
    return done


@pytest.mark.parametrize("fb", IMPLS.values(), ids=list(IMPLS))
@pytest.mark.parametrize("policy", ["raise", "stop"])
def test_a_non_finite_batch_leaves_the_batches_before_it_counted(fb, policy):
    X, y = poisoned_data()
    model = poisoned_model(fb)
    done = stop_at_the_poisoned_batch(model, X, y, policy)
    assert model._epoch == 2 and model._field("batch") == done
    # 2 epochs of 8 batches with one skipped each, then the batches applied before the bad one
    assert model._batches == 16 + done and model._step == 14 + done
    # the generator is at the start of the stopped epoch, as after the 2 epochs before it
    two_epochs = poisoned_model(fb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        two_epochs.fit(X, y, epochs=2, batch_size=8, on_nonfinite="skip_batch")
    assert model._rng.bit_generator.state == two_epochs._rng.bit_generator.state


@pytest.mark.parametrize("saver", IMPLS.values(), ids=list(IMPLS))
@pytest.mark.parametrize("loader", [None, *IMPLS.values()], ids=["same-process", *IMPLS])
def test_the_next_fit_finishes_the_stopped_epoch(saver, loader, tmp_path):
    """Stopped at the poisoned batch, then fit again (skipping it): the same weights, counts,
    generator and losses as a fit that skipped it all along, also after save -> load in
    either implementation."""
    X, y = poisoned_data()
    straight = poisoned_model(saver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h_straight = straight.fit(X, y, epochs=2, batch_size=8, on_nonfinite="skip_batch", shuffle=True)
        h_straight = list(h_straight) + list(straight.fit(X, y, epochs=4, batch_size=8, on_nonfinite="skip_batch"))
    model = poisoned_model(saver)
    stop_at_the_poisoned_batch(model, X, y, "raise")
    if loader is not None:
        model.save(tmp_path / "stopped.npz")
        model = loader.load(tmp_path / "stopped.npz")
        if loader is not saver:  # the same steps, in the other implementation's arithmetic
            return _continue_across(model, straight, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = model.fit(X, y, epochs=4, batch_size=8, on_nonfinite="skip_batch")
    assert list(history) == h_straight[2:]
    assert_same_state(model, straight)


def _continue_across(model, straight, X, y):
    """Across implementations only the counts and the generator are exact."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(X, y, epochs=4, batch_size=8, on_nonfinite="skip_batch")
    a, b = model_state(model), model_state(straight)
    assert a["counts"]["step"] == b["counts"]["step"] and a["counts"]["batches"] == b["counts"]["batches"]
    assert a["counts"]["epoch"] == b["counts"]["epoch"] and a["rng"] == b["rng"]
    np.testing.assert_allclose(a["params"], b["params"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fb", IMPLS.values(), ids=list(IMPLS))
def test_a_stopped_epoch_over_data_of_another_shape_is_closed(fb):
    """The next fit cannot finish an epoch over other rows: it counts it as done, draws its
    order (so the generator is where that epoch's end would have left it) and warns."""
    X, y = poisoned_data()
    model = poisoned_model(fb)
    done = stop_at_the_poisoned_batch(model, X, y, "raise")
    rng = np.random.default_rng()
    rng.bit_generator.state = model._rng.bit_generator.state
    rng.shuffle(np.arange(len(X)))  # the stopped epoch's order
    rng.shuffle(np.arange(30))  # the next epoch's, over 30 rows (without the poisoned one)
    with pytest.warns(RuntimeWarning, match=f"epoch 3 stopped after {done} batches of 8 .*another shape"):
        model.fit(X[:30], y[:30], epochs=1, batch_size=8)
    assert model._epoch == 4 and model._field("batch") == 0
    assert model._batches == 16 + done + 4
    assert model._rng.bit_generator.state == rng.bit_generator.state


@pytest.mark.parametrize("fb", IMPLS.values(), ids=list(IMPLS))
def test_a_refused_schedule_does_not_close_a_stopped_epoch(fb):
    """fit over data of another shape with a schedule that fails is refused before the stopped
    epoch is closed: nothing changes."""
    X, y = poisoned_data()
    model = poisoned_model(fb)
    stop_at_the_poisoned_batch(model, X, y, "raise")
    before = model_state(model)
    with pytest.raises(ValueError, match="lr_schedule"):
        model.fit(X[:30], y[:30], epochs=1, batch_size=8, lr_schedule=lambda t: float("nan"))
    after = model_state(model)
    assert after["counts"] == before["counts"] and after["rng"] == before["rng"]

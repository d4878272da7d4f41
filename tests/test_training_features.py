"""Schedules, validation, early stopping, progress, plots and gradcheck — in both implementations."""

import io
import math
import re
import sys

import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp import schedules as S

IMPLS = [fastbp, fastbp.reference]
IDS = ["fastbp", "reference"]


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, y


# ---------------------------------------------------------------- schedules
def test_schedules_match_their_formulas():
    for t in range(0, 40, 3):
        assert S.Constant(0.1)(t) == 0.1
        assert S.StepDecay(0.1, rate=0.5, step_size=7)(t) == pytest.approx(0.1 * 0.5 ** (t // 7), rel=1e-15)
        assert S.Exponential(0.1, rate=0.05)(t) == pytest.approx(0.1 * math.exp(-0.05 * t), rel=1e-15)
        expected = 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + math.cos(math.pi * min(t, 30) / 30))
        assert S.Cosine(1e-2, 1e-4, period=30)(t) == pytest.approx(expected, rel=1e-15)
        base = S.Cosine(1e-2, 1e-4, period=30)
        warm = S.Warmup(base, warmup=5)
        assert warm(t) == pytest.approx(base(t) * (t + 1) / 5 if t < 5 else base(t), rel=1e-15)
    assert S.Cosine(1.0, 0.0, period=10)(10) == 0.0 and S.Cosine(1.0, 0.0, period=10)(0) == 1.0


@pytest.mark.parametrize("bad", [lambda: S.Constant(0.0), lambda: S.StepDecay(0.1, step_size=0),
                                 lambda: S.Cosine(0.1, 0.2), lambda: S.Warmup(S.Constant(0.1), 0),
                                 lambda: S.Constant(0.1, unit="batch")])
def test_bad_schedules_are_rejected(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize("unit", ["epoch", "step"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scheduled_training_matches_reference(unit, dtype):
    X, y = data()
    schedule = S.Warmup(S.Cosine(0.05, 0.001, period=40, unit=unit), warmup=3)
    models = [fb.MLP([4, 8, 3], optimizer=fb.AdamW(0.05), dtype=dtype, seed=2) for fb in IMPLS]
    histories = [m.fit(X, y, epochs=4, batch_size=16, lr_schedule=schedule) for m in models]
    tol = 1e-9 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(histories[0], histories[1], rtol=tol)
    for (Wa, ba), (Wb, bb) in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(Wa, Wb, rtol=tol, atol=tol * 1e-3)
        np.testing.assert_allclose(ba, bb, rtol=tol, atol=tol * 1e-3)
    assert histories[0].history["lr"] == histories[1].history["lr"]


def test_schedule_really_sets_the_learning_rate():
    """SGD without momentum: the step taken is exactly the scheduled rate times the gradient."""
    X, y = data(16)
    for fb in IMPLS:
        model = fb.MLP([4, 3], optimizer=fb.SGD(1.0), dtype="float64", seed=0)
        _, grads = model.loss_and_grads(X, y)
        w0 = model.get_weights()[0][0]
        model.fit(X, y, epochs=1, batch_size=16, shuffle=False, lr_schedule=S.Constant(0.125))
        np.testing.assert_allclose(model.get_weights()[0][0], w0 - 0.125 * grads[0][0], rtol=1e-12)
        assert model.optimizer.lr == 1.0  # the optimizer itself is untouched


def test_schedule_counts_continue_across_fit_calls_and_save(tmp_path):
    X, y = data()
    schedule = S.StepDecay(0.1, rate=0.5, step_size=2)
    model = fastbp.MLP([4, 8, 3], optimizer=fastbp.SGD(0.1), dtype="float64", seed=0)
    a = model.fit(X, y, epochs=2, lr_schedule=schedule)
    model.save(tmp_path / "m.npz")
    b = fastbp.load(tmp_path / "m.npz").fit(X, y, epochs=2, lr_schedule=schedule)
    assert a.history["lr"] == [0.1, 0.1] and b.history["lr"] == [0.05, 0.05]


def test_schedule_returning_a_bad_rate_is_rejected_before_training():
    X, y = data()
    model = fastbp.MLP([4, 3], seed=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match="learning rates must be finite"):
        model.fit(X, y, epochs=3, lr_schedule=lambda t: -1.0)
    assert np.array_equal(before[0][0], model.get_weights()[0][0])


@pytest.mark.parametrize("dtype, rate, message", [
    ("float32", 1e39, r"lr_schedule returned 1e\+39, which overflows to inf in float32"),
    ("float32", 1e-40, r"lr_schedule returned 1e-40, which underflows in float32 \(it would be subnormal"),
    ("float32", 1e-50, r"lr_schedule returned 1e-50, which underflows in float32 \(it would be 0"),
    ("float64", 1e-320, r"lr_schedule returned 1e-320, which underflows in float64 \(it would be subnormal"),
])
@pytest.mark.parametrize("unit", ["epoch", "step"])
@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_a_schedules_rate_outside_the_dtype_is_refused_naming_it(fb, dtype, rate, message, unit):
    """As the optimizer's own lr is at construction: not met later as a diverged epoch (a rate
    of inf) or as one whose rate the kernels flush to 0 (fastbp alone would not train)."""
    def schedule(t):  # 0.01 for the first epoch (of two batches), then ``rate``
        return 0.01 if t < (2 if unit == "step" else 1) else rate
    schedule.unit = unit
    X, y = data()
    model = fb.MLP([4, 8, 3], optimizer=fb.SGD(0.01), dtype=dtype, seed=0)
    model.fit(X, y, epochs=1, batch_size=60, lr_schedule=schedule)  # rates 0.01: fine
    before, generator = model.get_state(), model._rng.bit_generator.state
    with pytest.raises(ValueError, match=message):
        model.fit(X, y, epochs=2, batch_size=60, lr_schedule=schedule)
    assert all(np.array_equal(v, before[k]) for k, v in model.get_state().items())
    assert model._rng.bit_generator.state == generator and model._epoch == 1


def test_rates_for_epochs_checks_the_dtype_it_is_given():
    assert S.rates_for_epochs(lambda t: 1e-40, 0, 0, 1, 2).tolist() == [[1e-40, 1e-40]]  # no dtype: no check
    assert S.rates_for_epochs(lambda t: 1e-40, 0, 0, 1, 2, dtype="float64").tolist() == [[1e-40, 1e-40]]
    with pytest.raises(ValueError, match="underflows in float32"):
        S.rates_for_epochs(lambda t: 1e-40, 0, 0, 1, 2, dtype=np.float32)


# ------------------------------------------------ validation, early stopping
@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_validation_metrics_are_recorded(fb):
    X, y = data(200)
    model = fb.MLP([4, 8, 3], dtype="float64", seed=0)
    h = model.fit(X, y, epochs=3, validation_split=0.25)
    assert set(h.history) == {"loss", "val_loss", "val_accuracy"} and len(h.history["val_loss"]) == 3
    held_out = model.evaluate(X[150:], y[150:])
    assert h.history["val_loss"][-1] == pytest.approx(held_out["loss"], rel=1e-12)
    assert h.history["val_accuracy"][-1] == held_out["accuracy"]
    h2 = fb.MLP([4, 8, 3], dtype="float64", seed=0).fit(X[:150], y[:150], epochs=3, validation_data=(X[150:], y[150:]))
    assert h2.history == h.history


@pytest.mark.parametrize("kwargs,match", [
    (dict(validation_split=1.0), "validation_split"), (dict(validation_split=0.001), "empty"),
    (dict(validation_data=(np.zeros((3, 5)), [0, 1, 2])), "features"),
    (dict(validation_data=np.zeros(3)), "pair"),
    (dict(early_stopping=fastbp.EarlyStopping(monitor="val_loss")), "no validation data"),
])
def test_bad_validation_settings(kwargs, match):
    X, y = data()
    with pytest.raises(ValueError, match=match):
        fastbp.MLP([4, 3], seed=0).fit(X, y, **kwargs)


def epoch_by_epoch(fb, X, y, Xv, yv, metric, epochs=30):
    """The early-stopping tests' model (seed 3, SGD 0.8 with momentum: a validation loss that
    bounces) trained one epoch per ``fit``: its weights and validation ``metric`` after each."""
    run = fb.MLP([4, 16, 3], optimizer=fb.SGD(0.8, momentum=0.9), dtype="float64", seed=3)
    weights, values = [], []
    for _ in range(epochs):
        run.fit(X, y, epochs=1, batch_size=16)
        weights.append(run.get_weights())
        values.append(run.evaluate(Xv, yv)[metric])
    return weights, values


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_early_stopping_restores_the_best_epoch_exactly(fb):
    X, y = data(200)
    Xv, yv = data(60, seed=1)
    # A learning rate this high makes the validation loss bounce, so the best epoch is early.
    weights_per_epoch, val_losses = epoch_by_epoch(fb, X, y, Xv, yv, "loss")

    model = fb.MLP([4, 16, 3], optimizer=fb.SGD(0.8, momentum=0.9), dtype="float64", seed=3)
    h = model.fit(X, y, epochs=30, batch_size=16, validation_data=(Xv, yv),
                  early_stopping=fb.EarlyStopping(patience=3))
    assert h.history["val_loss"] == val_losses[:len(h)]
    best = int(np.argmin(val_losses[:len(h)]))
    assert h.best_epoch == best + 1
    assert h.stopped and len(h) < 30 and len(h) == best + 1 + 3
    for (Wa, ba), (Wb, bb) in zip(model.get_weights(), weights_per_epoch[best]):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
@pytest.mark.parametrize("min_delta", [0.0, 0.02])
def test_early_stopping_on_val_accuracy_maximises_it(fb, min_delta):
    """``monitor="val_accuracy"``: the best epoch is the one whose validation accuracy rose
    highest (by more than ``min_delta`` over the best before it), and its weights come back."""
    X, y = data(200)
    Xv, yv = data(60, seed=1)
    weights_per_epoch, accuracies = epoch_by_epoch(fb, X, y, Xv, yv, "accuracy")

    model = fb.MLP([4, 16, 3], optimizer=fb.SGD(0.8, momentum=0.9), dtype="float64", seed=3)
    rule = fb.EarlyStopping(patience=3, monitor="val_accuracy", min_delta=min_delta)
    assert rule.mode == "max"
    h = model.fit(X, y, epochs=30, batch_size=16, validation_data=(Xv, yv), early_stopping=rule)
    assert h.history["val_accuracy"] == accuracies[:len(h)]
    best, waited = 0, 0  # the rule, by hand: improve upwards by more than min_delta
    for epoch, accuracy in enumerate(accuracies[1:len(h)], start=1):
        if accuracy > accuracies[best] + min_delta:
            best, waited = epoch, 0
        else:
            waited += 1
    assert h.best_epoch == best + 1 and h.stopped and len(h) == best + 1 + 3 and waited == 3
    assert accuracies[best] >= max(accuracies[:len(h)]) - min_delta
    for (Wa, ba), (Wb, bb) in zip(model.get_weights(), weights_per_epoch[best]):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


@pytest.mark.parametrize("monitor,values,best_epochs", [
    # a loss improves when it falls by more than min_delta (0.125), an accuracy when it rises by more
    ("val_loss", [1.0, 0.75, 0.7, 0.6, 0.7], [1, 2, 2, 4, 4]),
    ("loss", [1.0, 1.5, 0.875, 0.85], [1, 1, 1, 4]),
    ("val_accuracy", [0.5, 0.75, 0.8, 0.9, 0.95], [1, 2, 2, 4, 4]),
    ("val_accuracy", [0.5, 0.25, 0.625, 0.6], [1, 1, 1, 1]),
])
def test_early_stopping_improves_in_the_metrics_direction(monitor, values, best_epochs):
    from fastbp.training import EarlyStopper, History
    rule = fastbp.EarlyStopping(patience=10, min_delta=0.125, monitor=monitor)
    assert rule.mode == ("max" if monitor.endswith("accuracy") else "min")
    stopper, history = EarlyStopper(rule, monitor), History()
    for epoch, (value, best) in enumerate(zip(values, best_epochs), start=1):
        assert not stopper.should_stop({monitor: value}, epoch, np.zeros(1), history)
        assert history.best_epoch == best


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_early_stopping_refuses_a_metric_fit_does_not_record(fb):
    X, y = data()
    for monitor in ("accuracy", "lr", "skipped_batches", "val_acc", "VAL_LOSS"):
        with pytest.raises(ValueError, match="monitor must be one of 'loss', 'val_loss', 'val_accuracy'"):
            fb.EarlyStopping(monitor=monitor)
    regressor, twin = (fb.MLP([4, 1], loss="mse", seed=0) for _ in range(2))
    with pytest.raises(ValueError, match="records no accuracy"):
        regressor.fit(X, y, validation_split=0.2, early_stopping=fb.EarlyStopping(monitor="val_accuracy"))
    with pytest.raises(ValueError, match="no validation data"):
        fb.MLP([4, 3], seed=0).fit(X, y, early_stopping=fb.EarlyStopping(monitor="val_accuracy"))
    assert regressor.fit(X, y, epochs=2) == twin.fit(X, y, epochs=2)  # the refused fit changed nothing


def test_early_stopping_without_restore_keeps_the_last_weights():
    X, y = data(200)
    model = fastbp.MLP([4, 16, 3], optimizer=fastbp.SGD(0.8, momentum=0.9), dtype="float64", seed=3)
    h = model.fit(X, y, epochs=40, validation_split=0.3,
                  early_stopping=fastbp.EarlyStopping(patience=2, restore_best=False))
    last = model.evaluate(X[140:], y[140:])["loss"]
    assert last == pytest.approx(h.history["val_loss"][-1], rel=1e-12)


def test_bad_early_stopping_settings():
    with pytest.raises(ValueError, match="patience"):
        fastbp.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        fastbp.EarlyStopping(min_delta=-1)
    with pytest.raises(TypeError, match="EarlyStopping"):
        fastbp.MLP([4, 3]).fit(*data(), early_stopping=5)


# --------------------------------------------------- progress, plot, gradcheck
def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = data()
    fastbp.MLP([4, 3], seed=0).fit(X, y, epochs=3, validation_split=0.2, verbose=1)
    out = capsys.readouterr().out
    lines = [part.strip() for part in out.replace("\n", "\r").split("\r") if " - loss " in part]
    assert out.endswith("\n") and out.count("\n") == 3
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3 - loss ")
    assert "val_loss" in lines[-1] and "val_accuracy" in lines[-1] and "samples/s" in lines[-1]


class Terminal(io.StringIO):
    """A stdout that says it is a terminal (where the progress bar is drawn)."""

    def isatty(self):
        return True


@pytest.fixture
def fast_redraws(monkeypatch):
    """The progress bar redrawn every 5 ms instead of every 0.5 s: a short epoch draws it
    several times."""
    from fastbp import training
    init = training._Progress.__init__
    monkeypatch.setattr(training._Progress, "__init__", lambda self, *a, **k: init(self, *a, **k, interval=0.005))


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_progress_bar_updates_during_a_long_epoch(fb, monkeypatch, fast_redraws):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    X, y = data(6000)
    fb.MLP([4, 256, 256, 3], seed=0).fit(X, y, epochs=1, batch_size=1, verbose=1)  # ~0.1 s or more
    updates = [u for u in terminal.getvalue().split("\r") if "] " in u]
    assert len(updates) >= 2 and "epoch 1/1 [" in updates[0] and "samples/s" in updates[-1]
    done = [int(u.split("] ")[1].split("/")[0]) for u in updates]
    assert done == sorted(done) and done[-1] > 0


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_not_on_a_terminal_one_plain_line_per_epoch_and_no_bar(fb, capsys, fast_redraws):
    """Output to a file or a pipe (here: capsys, not a terminal) gets no progress bar and no
    carriage returns, however long an epoch takes: one line per epoch."""
    X, y = data(6000)
    fb.MLP([4, 256, 256, 3], seed=0).fit(X, y, epochs=2, batch_size=1, verbose=1)  # ~0.1 s or more an epoch
    out = capsys.readouterr().out
    assert "\r" not in out and "[" not in out
    lines = out.splitlines()
    assert len(lines) == 2 and all(re.fullmatch(rf"epoch {i}/2 - loss \S+ - [\d,]+ samples/s", line)
                                   for i, line in enumerate(lines, 1)), out


def test_history_plot_writes_a_picture(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = data()
    h = fastbp.MLP([4, 3], seed=0).fit(X, y, epochs=4, validation_split=0.2)
    fig = h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert len(fig.axes) == 2


@pytest.mark.parametrize("fb", IMPLS, ids=IDS)
def test_gradcheck_reports_small_errors_and_leaves_the_model_alone(fb):
    X, y = data(12)
    model = fb.MLP([4, 5, 3], activation="tanh", dtype="float64", seed=0, l2=0.01)
    before = model.get_weights()
    report = fb.gradcheck(model, X, y)
    assert len(report) == 2 and set(report[0]) == {"W", "b"}
    assert max(max(r.values()) for r in report) < 1e-6
    for (Wa, ba), (Wb, bb) in zip(before, model.get_weights()):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def test_every_feature_combination_matches_reference():
    """Optimizers x batch norm x dropout x clipping x l2 x per-step schedule x validation: the
    features interact (clipping before the update, schedules inside the compiled epoch, batch
    norm's state, dropout's step counter), and every combination must stay a drop-in."""
    import itertools
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((77, 6)), rng.integers(0, 4, 77)
    for opt, bn, rate, clip, l2, scheduled in itertools.product(
            ["nesterov", "adamw", "rmsprop", "adagrad"], [False, True], [0.0, 0.3], [None, 0.5], [0.0, 1e-3],
            [False, True]):
        kw = dict(activation=["tanh", "relu"], batch_norm=bn, dropout=rate, clip_norm=clip, l2=l2,
                  dtype="float64", seed=5)
        models = [fb.MLP([6, 9, 7, 4], optimizer=fb.SGD(0.05, momentum=0.9, nesterov=True)
                         if opt == "nesterov" else opt, **kw) for fb in IMPLS]
        schedule = S.Warmup(S.Exponential(0.02, 0.01, unit="step"), 4) if scheduled else None
        for m in models:
            m.fit(X, y, epochs=2, batch_size=10, lr_schedule=schedule, validation_split=0.2)
        np.testing.assert_allclose(models[0]._params_ext, models[1]._params_ext, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{opt} bn={bn} dropout={rate} clip={clip} l2={l2} schedule={scheduled}")


# ----------------------------------------------------- changing the learning rate by hand
@pytest.mark.parametrize("opt", ["SGD", "Adam", "RMSprop"])
def test_a_changed_lr_applies_in_both_implementations(opt):
    """``model.optimizer.lr = x`` between calls (a user's own schedule) takes effect at the
    next train_step / fit, identically in both implementations."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 5)), rng.integers(0, 3, 64)
    models = [fb.MLP([5, 8, 3], optimizer=getattr(fb, opt)(0.05), dtype="float64", seed=0)
              for fb in (fastbp, fastbp.reference)]
    twin = fastbp.MLP([5, 8, 3], optimizer=getattr(fastbp, opt)(0.05), dtype="float64", seed=0)
    for m in models + [twin]:
        m.train_step(X[:16], y[:16])
    for m in models:
        m.optimizer.lr = 0.005
        m.train_step(X[16:32], y[16:32])
        m.fit(X, y, epochs=2, batch_size=16)
    twin.train_step(X[16:32], y[16:32])
    fast, ref = (m.get_weights() for m in models)
    for (W, b), (Wr, br) in zip(fast, ref):
        np.testing.assert_allclose(W, Wr, rtol=1e-10, atol=1e-12)
    assert not np.array_equal(fast[0][0], twin.get_weights()[0][0]), "the new rate had no effect"
    assert models[0].get_config()["optimizer_config"]["lr"] == 0.005  # and it is what save records


def test_only_lr_may_change_and_a_bad_rate_changes_nothing():
    for fb in (fastbp, fastbp.reference):
        model = fb.MLP([3, 4, 2], optimizer=fb.SGD(0.1, momentum=0.9), dtype="float32", seed=0)
        with pytest.raises(AttributeError, match="only lr may be changed|Only lr may be changed"):
            model.optimizer.momentum = 0.0
        with pytest.raises(ValueError, match="lr must be"):
            model.optimizer.lr = float("nan")
        model.optimizer.lr = 1e-50  # positive, but 0 in float32: refused by the model's next call
        before = model.get_weights()
        with pytest.raises(ValueError, match="underflows in float32"):
            model.train_step(np.ones((4, 3)), np.array([0, 1, 0, 1]))
        with pytest.raises(ValueError, match="underflows in float32"):
            model.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]))
        for (W, b), (W0, b0) in zip(model.get_weights(), before):
            assert np.array_equal(W, W0) and np.array_equal(b, b0)

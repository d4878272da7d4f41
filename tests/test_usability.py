"""What a newcomer meets first: defaults that follow from the other
arguments, errors that say what is accepted, and an API that describes itself.  Both
implementations."""

import inspect
import io
import json
import pydoc
import re
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastbp


# ------------------------------------------------------- the output a loss implies
@pytest.mark.parametrize("loss,output", [("mse", "linear"), ("binary_cross_entropy", "sigmoid"),
                                         ("cross_entropy", "softmax"), ("mean_squared_error", "linear"),
                                         ("bce", "sigmoid"), ("ce", "softmax")])
def test_output_defaults_to_what_the_loss_implies(fb, loss, output):
    model = fb.MLP([3, 4, 2], loss=loss)
    assert model.output == output
    assert model.get_config()["output"] == output


def test_regression_with_the_default_output_trains(fb):
    """The newcomer's ``MLP([10, 16, 1], loss="mse")`` is a linear-output regressor that learns
    (it was a one-unit softmax: the constant 1.0, trained to nothing)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10))
    y = X[:, 0] - 2 * X[:, 1]
    model = fb.MLP([10, 16, 1], loss="mse", optimizer=fb.Adam(0.01), dtype="float64", seed=0)
    history = model.fit(X, y, epochs=30, batch_size=32)
    assert history[-1] < 0.2 * history[0]
    assert np.std(model.predict(X)) > 0.5


@pytest.mark.parametrize("kwargs", [dict(), dict(loss="cross_entropy"), dict(output="softmax"),
                                    dict(output="softmax", loss="mse"), dict(output="Softmax", loss="mse")])
def test_a_one_unit_softmax_is_refused_for_every_loss(fb, kwargs):
    with pytest.raises(ValueError, match="at least 2 output units.*output='linear'.*output='sigmoid'"):
        fb.MLP([3, 4, 1], **kwargs)


def test_the_resolved_output_is_saved_and_loaded(fb, tmp_path):
    model = fb.MLP([3, 4, 1], loss="bce", seed=0)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        header = json.loads(f["header"].tobytes())
    assert header["config"]["output"] == "sigmoid"
    assert fb.load(tmp_path / "m.npz").output == "sigmoid"


def test_a_saved_one_unit_softmax_is_refused_on_load(tmp_path):
    """Earlier versions built ``mse`` models with a one-unit softmax (whose gradient is 0: they
    never trained); such a file is refused with the reason, not loaded as a constant model."""
    fastbp.MLP([3, 4, 1], output="linear", loss="mse", seed=0).save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays["header"].tobytes())
    header["config"]["output"] = "softmax"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match="old.npz.*at least 2 output units"):
        fastbp.load(tmp_path / "old.npz")


# ------------------------------------------------------------ the shapes of y
LABELS = np.array([0, 1, 2, 0, 1, 2])
X6 = np.linspace(-1, 1, 18).reshape(6, 3)


def everything(model, X, y):
    """What each call computes from (X, y): evaluate, loss_and_grads, then train_step and fit
    (which change the model: the caller passes a fresh one)."""
    loss, grads = model.loss_and_grads(X, y)
    out = [model.evaluate(X, y), loss, [g.tolist() for pair in grads for g in pair]]
    out += [model.train_step(X, y), list(model.fit(X, y, epochs=2, batch_size=4))]
    return out + [[w.tolist() for pair in model.get_weights() for w in pair]]


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "float64", "float32"])
def test_a_column_of_class_labels_is_accepted(fb, dtype):
    """Labels of shape (n, 1) are labels of shape (n,) for a cross-entropy model with k > 1 outputs."""
    make = lambda: fb.MLP([3, 4, 3], dtype="float64", seed=0)  # noqa: E731
    column = LABELS.astype(dtype).reshape(-1, 1)
    assert everything(make(), X6, column) == everything(make(), X6, LABELS)
    assert everything(make(), X6, np.asfortranarray(column)) == everything(make(), X6, LABELS)


CE_ACCEPTS = "class labels of shape (6,) or (6, 1), or one-hot / probability rows of shape (6, 3)"


@pytest.mark.parametrize("kind,y,accepted", [
    ("ce", np.zeros((6, 4)), CE_ACCEPTS),
    ("ce", np.zeros((6, 3, 1)), CE_ACCEPTS),
    ("ce", np.zeros((6, 2), int), CE_ACCEPTS),
    ("mse", np.zeros((6, 1)), "of shape (6, 3) (one target per output)"),
    ("mse", np.zeros((6, 2)), "of shape (6, 3) (one target per output)"),
    ("bce", np.zeros((6, 2)), "of shape (6, 3) (one target per output)"),
    ("mse-1", np.zeros((6, 2)), "of shape (6, 1) or (6,)"),
    ("bce-1", np.zeros((6, 3)), "of shape (6, 1) or (6,)"),
    ("mse-1", np.zeros((6, 1, 1)), "of shape (6, 1) or (6,)"),
])
def test_a_shape_error_says_which_shapes_the_model_accepts(fb, kind, y, accepted):
    loss = {"ce": "cross_entropy", "mse": "mse", "bce": "binary_cross_entropy"}[kind.split("-")[0]]
    k = 1 if kind.endswith("-1") else 3
    model = fb.MLP([3, 4, k], loss=loss, seed=0)
    good = LABELS if loss == "cross_entropy" else np.zeros((6, k))
    message = (f"y for a model with {k} output{'s' if k > 1 else ''} and loss {loss!r} must be {accepted}; "
               f"got shape {y.shape}")
    for call in (lambda: model.fit(X6, y), lambda: model.evaluate(X6, y), lambda: model.train_step(X6, y),
                 lambda: model.loss_and_grads(X6, y), lambda: model.fit(X6, good, validation_data=(X6, y))):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message
    assert model._step == 0


@pytest.mark.parametrize("y", [LABELS, LABELS.reshape(-1, 1), LABELS.astype(np.int32), LABELS.astype(bool)])
def test_mse_with_class_labels_suggests_cross_entropy(fb, y):
    model = fb.MLP([3, 4, 3], loss="mse", seed=0)
    with pytest.raises(ValueError, match=r"mse' must be of shape \(6, 3\) .*for class labels use "
                                         r"loss='cross_entropy' \(softmax output\), which takes labels of shape "
                                         r"\(6,\) or \(6, 1\)"):
        model.fit(X6, y)


def test_regression_targets_of_the_wrong_width_get_no_class_label_hint(fb):
    model = fb.MLP([3, 4, 3], loss="mse", seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(X6, np.linspace(0, 1, 6))
    assert "cross_entropy" not in str(info.value)


# ------------------------------------------------------------ fit's default
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_fit_says_it_trains_one_epoch_by_default(fb):
    assert inspect.signature(fb.MLP.fit).parameters["epochs"].default == 1
    doc = " ".join(fb.MLP.fit.__doc__.split())
    assert "One epoch by default" in doc and "epochs : int, default 1" in doc
    quick_start = README[README.index("## Quick start"):README.index("## API")]
    assert re.search(r"`fit` trains for \*\*one epoch\*\* unless told otherwise", quick_start)


def test_fit_with_the_default_epochs_trains_one_epoch_without_a_warning(fb):
    model = fb.MLP([3, 4, 3], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(X6, LABELS)
    assert len(history) == 1 and model._epoch == 1


# ------------------------------------------------------------ repr and summary
CONFIGS = {
    "defaults": ([3, 4, 3], dict()),
    "no-hidden": ([3, 2], dict(loss="mse")),
    "everything": ([4, 16, 8, 1], dict(activation=["relu", "tanh"], output="sigmoid", loss="mse",
                                       optimizer="sgd", init="xavier", dtype="float64", seed=3, l2=1e-3,
                                       clip_norm=1.0, leaky_slope=0.1, dropout=[0.2, 0.0],
                                       batch_norm=[True, False])),
    "shared-values": ([4, 8, 8, 3], dict(activation="tanh", dropout=0.25, batch_norm=True, seed=0,
                                         optimizer=fastbp.AdamW(0.01, weight_decay=0.1))),
    "momentum": ([4, 8, 2], dict(loss="bce", optimizer=fastbp.SGD(0.05, momentum=0.9, nesterov=True))),
}


def test_repr_names_the_public_class_and_only_what_differs_from_the_defaults(fb):
    prefix = "fastbp.MLP" if fb is fastbp else "fastbp.reference.MLP"
    assert repr(fb.MLP([3, 4, 3])) == f"{prefix}([3, 4, 3])"
    assert repr(fb.MLP([3, 4, 1], loss="mse")) == f"{prefix}([3, 4, 1], loss='mse')"  # output: the loss's own
    assert repr(fb.MLP([3, 4, 1], loss="mse", output="sigmoid")) == f"{prefix}([3, 4, 1], output='sigmoid', loss='mse')"
    model = fb.MLP([3, 4, 4, 3], seed=7, l2=0.01, dropout=0.1, batch_norm=[True, False], optimizer=fb.Adam(0.01))
    assert repr(model) == (f"{prefix}([3, 4, 4, 3], optimizer={prefix[:-4]}.Adam(lr=0.01, beta1=0.9, beta2=0.999, "
                           f"eps=1e-08), seed=7, l2=0.01, dropout=0.1, batch_norm=[True, False])")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_repr_evaluates_to_the_same_configuration(fb, config):
    import fastbp.reference  # noqa: F401  (eval's namespace: fastbp and fastbp.reference)
    sizes, kw = CONFIGS[config]
    model = fb.MLP(sizes, **kw)
    rebuilt = eval(repr(model), {"fastbp": fastbp})
    assert type(rebuilt) is type(model)
    assert rebuilt.get_config() == model.get_config()
    assert repr(rebuilt) == repr(model)


def test_summary_prints_and_returns_a_table_of_the_layers(fb, capsys):
    model = fb.MLP([4, 16, 8, 3], activation=["relu", "tanh"], dropout=[0.2, 0.0], batch_norm=[True, False],
                   optimizer=fb.SGD(0.1, momentum=0.9), l2=1e-3, dtype="float64")
    text = model.summary()
    assert capsys.readouterr().out == text + "\n"
    lines = text.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line[:1].isdigit()}
    assert rows["0"][:6] == ["0", "(4,", "16)", "relu", "112", "yes"] and rows["0"][6] == "0.2"  # 64 + 16 + 2 x 16
    assert rows["1"] == ["1", "(16,", "8)", "tanh", "136", "-", "-"]
    assert rows["2"] == ["2", "(8,", "3)", "softmax", "27", "-", "-"]
    total = next(line for line in lines if line.startswith("total")).split()
    assert total[1] == f"{model.n_params}" == "275" and "+ 32 running statistics" in " ".join(total)
    assert lines[-1] == ("dtype float64, loss cross_entropy, optimizer SGD(lr=0.1, momentum=0.9, nesterov=False), "
                         "l2 0.001")
    stream = io.StringIO()
    assert model.summary(file=stream) == text and stream.getvalue() == text + "\n"
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------ what the API says of itself
def documented_names(doc):
    """The names a numpy-style docstring documents (``name : type`` lines)."""
    return set(re.findall(r"^\s*(\w+) : ", doc, flags=re.M))


def test_every_constructor_argument_is_documented(fb):
    parameters = [p for p in inspect.signature(fb.MLP).parameters]
    assert "batch_norm" in parameters
    assert set(parameters) <= documented_names(fb.MLP.__doc__)
    assert "batch_norm : bool or list of bool" in pydoc.render_doc(fb.MLP, renderer=pydoc.plaintext)


def test_every_fit_argument_is_documented(fb):
    assert set(inspect.signature(fb.MLP.fit).parameters) - {"self"} <= documented_names(fb.MLP.fit.__doc__)


def test_every_public_method_and_property_has_a_docstring(fb):
    names = [name for name in dir(fb.MLP) if not name.startswith("_")]
    assert {"fit", "get_config", "summary", "n_layers", "is_classifier"} <= set(names)
    undocumented = [name for name in names if not (getattr(fb.MLP, name).__doc__ or "").strip()]
    assert undocumented == []


def test_get_config_documents_its_keys(fb):
    doc = fb.MLP.get_config.__doc__
    for key in fb.MLP([3, 4, 3]).get_config():
        assert f"``{key}``" in doc, key


def test_every_loss_alias_is_documented_and_works(fb):
    from fastbp.validation import LOSS_ALIASES
    doc = " ".join(fb.MLP.__doc__.split())
    api = README[README.index("## API"):README.index("## Training features")]
    for alias, loss in LOSS_ALIASES.items():
        assert f"``{alias}``" in doc and f"`{alias}`" in api, alias
        assert fb.MLP([3, 4, 2], loss=alias.upper()).loss == loss


def readme_signature(call):
    """The signature README's API table gives for ``call(...)``."""
    row = next(line for line in README.splitlines() if line.startswith(f"| `{call}("))
    return row.split("`")[1]


@pytest.mark.parametrize("call", ["MLP", "fit"])
def test_readme_gives_the_codes_signatures(call):
    function = fastbp.MLP if call == "MLP" else fastbp.MLP.fit
    params = [p.replace(annotation=inspect.Parameter.empty)  # README gives no types
              for name, p in inspect.signature(function).parameters.items() if name != "self"]
    assert readme_signature(call) == f"{call}({', '.join(str(p) for p in params)})".replace("'", '"')


def test_early_stopping_documents_its_arguments_and_directions():
    doc = " ".join(fastbp.EarlyStopping.__doc__.split())
    assert set(inspect.signature(fastbp.EarlyStopping).parameters) <= documented_names(fastbp.EarlyStopping.__doc__)
    for monitor in fastbp.EarlyStopping.MONITORS:
        assert f'"{monitor}"' in doc
    assert "maximised" in doc and "minimised" in doc and "min_delta" in doc


# ------------------------------------------------------------ type hints
def public_callables():
    import fastbp.reference
    from fastbp import schedules
    out = {"fastbp.load": fastbp.load, "fastbp.reference.load": fastbp.reference.load,
           "fastbp.gradcheck": fastbp.gradcheck, "fastbp.show_config": fastbp.show_config,
           "History.plot": fastbp.History.plot, "EarlyStopping": fastbp.EarlyStopping.__init__,
           "schedules.rates_for_epochs": schedules.rates_for_epochs}
    for cls in (fastbp.MLP, fastbp.reference.MLP):
        out[f"{cls.__module__}.MLP"] = cls.__init__
        for name in dir(cls):
            member = inspect.getattr_static(cls, name)
            if name.startswith("_") and name not in ("__repr__",):
                continue
            if isinstance(member, property):
                out[f"{cls.__module__}.MLP.{name}"] = member.fget
            elif callable(getattr(cls, name)):
                out[f"{cls.__module__}.MLP.{name}"] = getattr(cls, name)
    for cls in (fastbp.Optimizer, fastbp.SGD, fastbp.RMSprop, fastbp.Adam, fastbp.AdamW, fastbp.AdaGrad):
        out[cls.__name__] = cls.__init__ if cls is not fastbp.Optimizer else cls.get_config
    for cls in (schedules.Constant, schedules.StepDecay, schedules.Exponential, schedules.Cosine, schedules.Warmup):
        out[f"schedules.{cls.__name__}"] = cls.__init__
        out[f"schedules.{cls.__name__}.__call__"] = cls.__call__
    return out


@pytest.mark.parametrize("name", list(public_callables()))
def test_the_public_api_is_fully_annotated(name):
    function = public_callables()[name]
    hints = typing.get_type_hints(function)  # every annotation resolves
    params = [p for p in inspect.signature(function).parameters if p not in ("self", "cls")]
    assert set(params) | {"return"} <= set(hints), set(params) | {"return"} - set(hints)


def test_the_package_is_marked_typed():
    import tomllib
    root = Path(__file__).resolve().parents[1]
    assert (root / "fastbp" / "py.typed").is_file()
    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["fastbp"]


def test_help_shows_the_annotated_signatures():
    text = pydoc.render_doc(fastbp.MLP, renderer=pydoc.plaintext)
    assert "MLP(sizes: 'Sequence[int]', activation: 'str | Sequence[str]' = 'relu', output: 'str | None' = None" in text
    assert "fit(self, X: 'ArrayLike', y: 'ArrayLike', epochs: 'int' = 1" in text

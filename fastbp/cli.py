"""The ``fastbp`` command: train an MLP on a CSV file (or the bundled digits), then predict
with it or evaluate it on other CSV files.

    fastbp train [data.csv] [--target COL] [--id COL] [--drop COL,...] [--layers 128,64] [--out model.npz] ...
    fastbp predict model.npz data.csv [--out preds.csv] [--proba] [--id COL]
    fastbp evaluate model.npz data.csv

(also ``python -m fastbp ...``; ``fastbp COMMAND --help`` lists every option).

Data: a CSV file with a header row, read with Python's ``csv`` module (UTF-8, an optional
byte-order mark, blank lines skipped).  The target column (``--target``, by default the last
one) holds class labels or numbers; every other column but the ``--id`` column and the ``--drop``
ones is a feature and must hold a finite number in every row.  ``predict`` writes the id
column (the model's, when the data has it, or ``predict --id``) first, to join the rows back.

The task: ``--task`` if given; else classification when the target holds anything that is not a
number, or only integer values (labels are encoded 0..k-1 in sorted order, the original labels
kept), and regression otherwise.  Integers giving many classes for the rows (``MANY_CLASSES``)
are warned about on stderr, even under ``--quiet``: they are likely a quantity.  Classification
trains softmax + cross-entropy, regression a linear output + mean squared error.

Scaling: features are standardised with the mean and standard deviation (ddof 0) of the
training rows (a constant column gets 1), and so is a regression target (predictions are
mapped back to the target's units); ``--no-standardize`` turns both off.  Any finite
magnitude is scaled (``scaler``: 1e200 and 1e-300 alike); a column the model could not
learn from once scaled is refused, naming it (``check_learnable``: a spread below float64's
smallest normal number, or values beyond the model's dtype or all one value in it).  The
validation rows (``--val-split``) are drawn at random with ``--seed``.

The model file is the model's own ``.npz`` (``fastbp.load`` reads it as a plain MLP) with
arrays attached (``fastbp.fileformat.save``): ``cli`` (JSON: task, target name, feature names,
how the task was decided, the id and dropped columns), ``x_mean`` / ``x_scale`` (the feature
scaler), and ``classes`` (the original labels, in output order) or ``y_mean`` / ``y_scale``
(the target scaler).

Errors: a user mistake (a missing or malformed file, a missing column, a non-numeric cell, a
label the model does not know, features that differ from the model's, a bad option) prints
one line on stderr and exits with status 2; training that diverges (a NaN or inf loss) exits
with 1; Ctrl-C exits with 130.  No traceback for any of them.  Output cut short by its reader
(``fastbp predict ... | head``) ends quietly with status 0.
"""

import argparse
import contextlib
import csv
import decimal
import difflib
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings

import numpy as np

import fastbp
from . import compile_notice, datasets, fileformat
from .training import on_a_terminal

__all__ = ["main", "UsageError"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# What ``train`` writes next to the model (``fileformat.save``'s extra arrays).
CLI_FORMAT, CLI_VERSION = "fastbp-cli", 1
OPTIMIZERS = {"sgd": fastbp.SGD, "rmsprop": fastbp.RMSprop, "adam": fastbp.Adam, "adamw": fastbp.AdamW,
              "adagrad": fastbp.AdaGrad}
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
TASKS = ("classification", "regression")
# Inference runs in chunks of this many rows (the fast model's own chunk), also in the warm-up.
_EVAL_ROWS = 1024
# How the task is decided from a target of integers (kept in the model file: evaluate's hint).
INTEGER_REASON = "the target holds only integers; --task regression to change"
# Integer targets are taken for class codes, but many distinct integers among few rows are the
# mark of a quantity (a count, a score, an age: the diabetes data's target holds 190 values in
# 331 rows), which as classes cannot be learnt and gives labels unseen in training on new rows.
# train warns when there are more than MANY_CLASSES classes (so ratings, grades, digits and
# other small label sets never warn, whatever the row count) with fewer than ROWS_PER_CLASS
# rows per class on average (too few to learn each class from, and a class set large for its
# data: a real 100-class problem with thousands of rows is left alone).
MANY_CLASSES, ROWS_PER_CLASS = 20, 20


class UsageError(Exception):
    """A mistake in the command line or its files: reported as one line, exit status 2."""


class TrainingFailed(Exception):
    """Training produced a NaN or inf loss or update: one line, exit status 1."""


# ------------------------------------------------------------------ CSV input
class Table:
    """A CSV file read into memory: ``columns`` (the header's names), ``rows`` (lists of
    strings, as many as there are columns) and ``lines`` (each row's 1-based first line)."""

    def __init__(self, path, columns, rows, lines):
        self.path, self.columns, self.rows, self.lines = path, columns, rows, lines

    def index(self, name):
        return self.columns.index(name)

    def where(self, i):
        """Where data row ``i`` (0-based) is, for a message: ``'data.csv, line 7 (data row 6)'``."""
        return f"{self.path}, line {self.lines[i]} (data row {i + 1})"

    def column(self, j):
        return [row[j] for row in self.rows]

    def numbers(self, j, what="feature"):
        """Column ``j`` as float64; a cell that is not a finite number is a ``UsageError``
        naming the column and the row."""
        cells = self.column(j)
        try:
            values = np.array([float(c) for c in cells], dtype=np.float64)
        except ValueError:
            values = None
        if values is not None and np.isfinite(values).all():
            return values
        for i, cell in enumerate(cells):  # find the first bad cell, to name it
            try:
                ok = math.isfinite(float(cell))
            except ValueError:
                ok = None
            if not ok:
                problem = ("is empty" if not cell.strip() else
                           f"holds {_short(cell)}, which is not a number" if ok is None else
                           f"holds {_short(cell)}: NaN and infinity are not accepted")
                raise UsageError(f"{self.where(i)}: {what} column {self.columns[j]!r} {problem}")
        raise AssertionError("unreachable")  # pragma: no cover


def _short(text, limit=40):
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _names(names, limit=12):
    """``'a', 'b', 'c'`` (at most ``limit`` names, then how many more)."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _did_you_mean(name, names):
    """``"did you mean 'x'? "`` for the names in ``names`` closest to ``name`` ('' if none):
    the ones equal to it but for case, alone (the usual slip: no near-misses beside it), else
    difflib's close matches (case ignored).  It goes before a list of the names, which
    ``_names`` may cut short of the one meant."""
    matches = [n for n in names if n.casefold() == name.casefold()]
    if not matches:
        folded = {}
        for n in names:
            folded.setdefault(n.casefold(), n)
        matches = [folded[m] for m in difflib.get_close_matches(name.casefold(), list(folded), n=3)]
    if not matches:
        return ""
    return f"did you mean {' or '.join(repr(m) for m in matches)}? "


def read_csv(path):
    """The CSV file ``path`` as a :class:`Table`.  ``UsageError`` for a missing, unreadable,
    empty or ragged file, or a header with an empty or repeated name."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)  # strict: a stray or unclosed quote is an error
            header, rows, lines = None, [], []
            start = 1  # the first line of the row being read
            for row in reader:
                line, start = start, reader.line_num + 1
                if not row:  # a blank line
                    continue
                if header is None:
                    header = [name.strip() for name in row]
                    width = len(header)
                    continue
                if len(row) != width:
                    raise UsageError(f"{path}, line {line}: {len(row)} field{'s' if len(row) != 1 else ''}, "
                                     f"but the header has {width}")
                rows.append(row)
                lines.append(line)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a CSV file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 text file; is it a CSV file?") from None
    except csv.Error as exc:
        raise UsageError(f"{path}, line {start}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if header is None:
        raise UsageError(f"{path}: the file is empty (a CSV file with a header row is needed)")
    for j, name in enumerate(header):
        if not name:
            raise UsageError(f"{path}: column {j + 1} has no name in the header row")
    repeated = sorted({n for n in header if header.count(n) > 1})
    if repeated:
        raise UsageError(f"{path}: the header names {_names(repeated)} more than once")
    if not rows:
        raise UsageError(f"{path}: the header row is followed by no data rows")
    return Table(path, header, rows, lines)


# ----------------------------------------------------------- targets, scaling
def decide_task(table, j, task=None):
    """The target column ``j`` of ``table`` for ``task`` (None: decided from the values).

    Returns ``(task, y, classes, reason)``: for classification ``y`` is int64 codes into
    ``classes`` (the sorted distinct labels: float64 numbers, or str), for regression ``y`` is
    float64 and ``classes`` None; ``reason`` says how the task was decided."""
    name = table.columns[j]
    cells = [c.strip() for c in table.column(j)]
    try:
        values = np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        values = None
    numeric = values is not None
    if numeric and not np.isfinite(values).all():  # a NaN or inf target is no label and no value
        table.numbers(j, what="target")  # raises, naming the first such cell
    if task is None:
        if not numeric:
            task, reason = "classification", "the target holds labels that are not numbers"
        elif np.array_equal(values, np.round(values)):
            task, reason = "classification", INTEGER_REASON
        else:
            task, reason = "regression", "the target holds non-integer numbers"
    else:
        reason = "--task"
    if task == "regression":
        if not numeric:
            table.numbers(j, what="target")  # raises, naming the first bad cell
        return task, values, None, reason
    for i, cell in enumerate(cells):
        if not cell:
            raise UsageError(f"{table.where(i)}: the target cell (column {name!r}) is empty")
    if numeric:
        classes, y = np.unique(values, return_inverse=True)
    else:
        classes, y = np.unique(np.array(cells, dtype=str), return_inverse=True)
    if len(classes) < 2:
        raise UsageError(f"{table.path}: the target column {name!r} holds one class only "
                         f"({label_text(classes[0])}); classification needs two or more")
    return task, y.astype(np.int64).reshape(-1), classes, reason


def many_integer_classes(n_classes, n_rows):
    """Whether ``n_classes`` integer classes in ``n_rows`` rows look like a quantity rather
    than class codes (see ``MANY_CLASSES``)."""
    return n_classes > MANY_CLASSES and n_rows < ROWS_PER_CLASS * n_classes


def label_text(label):
    """A class label as written to a CSV file: strings as they are, integer-valued numbers
    without a decimal point, other numbers in their shortest exact form."""
    if isinstance(label, (str, np.str_)):
        return str(label)
    value = float(label)
    return str(int(value)) if value == round(value) and abs(value) < 2 ** 63 else repr(value)


def scaler(X, standardize):
    """``(mean, scale)`` of the columns of ``X`` (float64): mean and standard deviation (ddof
    0), a constant column's scale 1; with ``standardize`` False, 0 and 1 (no change).

    Robust to any finite magnitude: each column is divided by its largest magnitude first and
    the results multiplied back, so neither the sum nor the squares can overflow (values of
    1e200, whose squares are inf, gave a scale of inf and a model file ``predict`` refused)
    or underflow (a spread of 1e-170 squares to 0: such a column was taken for a constant and
    reached the model as ~0).  A spread that is itself below float64's smallest normal
    number comes back as it is, possibly 0: ``check_learnable`` refuses it."""
    if not standardize:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    peak = np.abs(X).max(axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    Z = X / peak
    mean, std = Z.mean(axis=0) * peak, Z.std(axis=0) * peak
    constant = X.max(axis=0) == X.min(axis=0)  # (its std may be a rounding error of the mean, not 0)
    return mean, np.where(constant, 1.0, std)


def check_learnable(X, scale, Xs, names, what, dtype, standardized):
    """``UsageError`` (one line, naming the column) for the first column of ``X`` (float64, one
    per name in ``names``; ``what``: "feature" or "target") that would reach the model as
    something it cannot learn from: ``Xs``, the column scaled by ``scale`` (``scaler``), as
    the model's ``dtype`` holds it.

    Refused rather than trained on: a column whose values differ but whose scale is below
    float64's smallest normal number (values of ~1e-320: subnormal numbers carry a few bits
    at most, and fastbp's kernels flush them to 0, so a scale of that size is no scale to
    rely on); scaled values beyond the dtype's range; and a column whose values differ but
    are all one value in the dtype once the kernels flush subnormals (``--no-standardize``:
    1e-50 in float32 is 0).  Each would otherwise train a model that learned nothing from
    the column, or one ``predict`` refuses, and exit 0."""
    info, tiny64 = np.finfo(dtype), np.finfo(np.float64).tiny
    varies = X.max(axis=0) > X.min(axis=0)
    with np.errstate(over="ignore"):
        held = Xs.astype(dtype)
    seen = np.where(np.abs(held) < info.tiny, 0, held)  # as the kernels see them
    for j, name in enumerate(names):
        if varies[j] and not scale[j] >= tiny64:
            raise UsageError(f"{what} column {name!r}: its standard deviation, {scale[j]:.3g}, is below float64's "
                             f"smallest normal number ({tiny64:.3g}), too little to standardise by; rescale the "
                             "column in the file")
        beyond = ~np.isfinite(held[:, j])
        if beyond.any():
            value = X[int(np.argmax(beyond)), j]
            raise UsageError(f"{what} column {name!r} holds {float(value)!r}, which"
                             f"{', standardised,' if standardized else ''} is beyond "
                             f"{dtype.name}'s range (the model's dtype: at most {float(info.max):.4g} in magnitude); "
                             f"{_remedies(X[:, j], dtype, standardized)}")
        if varies[j] and seen[:, j].min() == seen[:, j].max():
            raise UsageError(f"{what} column {name!r} varies, but its {'standardised ' if standardized else ''}"
                             f"values are all {seen[0, j]:g} in {dtype.name}, the model's dtype (whose subnormal numbers fastbp's kernels flush to "
                             f"0): the model could learn nothing from it; {_remedies(X[:, j], dtype, standardized)}")


def _remedies(column, dtype, standardized):
    """What would let the model learn from ``column`` (float64) that ``check_learnable``
    refuses: standardising it (if its spread is a normal float64), float64 (if it varies
    there), and in any case rescaling it in the file."""
    tiny64 = np.finfo(np.float64).tiny
    options = []
    if not standardized and scaler(column.reshape(-1, 1), True)[1][0] >= tiny64:
        options.append("drop --no-standardize")
    if dtype == np.float32 and not standardized:
        seen = np.where(np.abs(column) < tiny64, 0, column)
        if seen.max() > seen.min():
            options.append("use --dtype float64")
    return ", or ".join(options + ["rescale the column in the file"])


# ---------------------------------------------------------------- model files
class Bundle:
    """A model with what the command line keeps beside it: ``task``, ``target`` and
    ``features`` names, the ``id`` column (or None) and the ``dropped`` ones, the feature
    scaler (``x_mean``, ``x_scale``), ``classes`` or the target scaler (``y_mean``,
    ``y_scale``)."""

    def __init__(self, model, meta, x_mean, x_scale, classes=None, y_mean=0.0, y_scale=1.0):
        self.model, self.meta = model, meta
        self.task, self.target, self.features = meta["task"], meta["target"], meta["features"]
        # absent from the files of a fastbp without --id / --drop: read as none
        self.id, self.dropped = meta.get("id"), meta.get("dropped", [])
        self.x_mean, self.x_scale, self.classes = x_mean, x_scale, classes
        self.y_mean, self.y_scale = float(y_mean), float(y_scale)

    def scale(self, X):
        return (X - self.x_mean) / self.x_scale

    def extra(self):
        arrays = {"cli": np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8),
                  "x_mean": self.x_mean, "x_scale": self.x_scale}
        if self.task == "classification":
            arrays["classes"] = self.classes
        else:
            arrays["y_mean"], arrays["y_scale"] = np.float64(self.y_mean), np.float64(self.y_scale)
        return arrays

    @staticmethod
    def check_writable(path):
        """``UsageError`` now, not after training, if ``path`` cannot be written: a directory,
        or in a directory that does not exist or is not writable."""
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory; --out needs a file name")
        if not os.path.isdir(directory):
            raise UsageError(f"{path}: cannot write the model: directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise UsageError(f"{path}: cannot write the model: directory {directory} is not writable")

    def save(self, path):
        """Write the model and its extras atomically (``fileformat.save``)."""
        try:
            fileformat.save(self.model, path, self.extra())
        except OSError as exc:
            raise UsageError(f"{path}: cannot write the model ({exc.strerror or exc})") from None

    @classmethod
    def load(cls, path):
        """Read a model file written by ``fastbp train``; ``UsageError`` for anything else."""
        try:
            with open(path, "rb") as f:
                if f.read(4) != b"PK\x03\x04":  # every .npz archive is a zip file
                    raise UsageError(f"{path}: not a fastbp model file (not an .npz archive)")
            model, extra = fileformat.load_with_extra(fastbp.MLP, path)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{path}: is a directory, not a model file") from None
        except ValueError as exc:  # names the file already
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if "cli" not in extra:
            raise UsageError(f"{path}: a fastbp model, but not one written by 'fastbp train' (it holds no feature "
                             "names, scaler or labels); use it from Python with fastbp.load")
        try:
            return cls._from_extra(model, extra)
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not a valid 'fastbp train' model file ({exc})") from None

    @classmethod
    def _from_extra(cls, model, extra):
        meta = json.loads(extra["cli"].tobytes().decode())
        if not isinstance(meta, dict) or meta.get("format") != CLI_FORMAT or meta.get("version") != CLI_VERSION:
            raise ValueError("unknown command-line metadata")
        features, task, d, k = meta["features"], meta["task"], model.sizes[0], model.sizes[-1]
        if not (isinstance(features, list) and len(features) == d and all(isinstance(f, str) for f in features)
                and isinstance(meta["target"], str) and task in TASKS):
            raise ValueError("its task, target or feature names do not fit the model")
        id_column, dropped = meta.get("id"), meta.get("dropped", [])
        if not ((id_column is None or isinstance(id_column, str))
                and isinstance(dropped, list) and all(isinstance(c, str) for c in dropped)):
            raise ValueError("its id or dropped column names are malformed")
        x_mean, x_scale = (np.asarray(extra[key], dtype=np.float64) for key in ("x_mean", "x_scale"))
        if x_mean.shape != (d,) or x_scale.shape != (d,) or not (np.isfinite(x_mean).all()
                                                                 and np.isfinite(x_scale).all() and (x_scale > 0).all()):
            raise ValueError("its feature scaler does not fit the model")
        if task == "classification":
            classes = extra["classes"]
            if model.loss != "cross_entropy" or classes.shape != (k,) or classes.dtype.kind not in "fU" \
                    or not (classes[:-1] < classes[1:]).all():  # sorted and distinct, as encoded
                raise ValueError("its class labels do not fit the model")
            return cls(model, meta, x_mean, x_scale, classes=classes)
        y_mean, y_scale = float(extra["y_mean"]), float(extra["y_scale"])
        if model.loss != "mse" or k != 1 or not (math.isfinite(y_mean) and math.isfinite(y_scale) and y_scale > 0):
            raise ValueError("its target scaler does not fit the model")
        return cls(model, meta, x_mean, x_scale, y_mean=y_mean, y_scale=y_scale)

    # -------------------------------------------------- applying the model
    def features_of(self, table, id_column=None, hint=""):
        """The model's feature columns of ``table`` (by name, in the model's order), scaled;
        ``UsageError`` if some are missing, or there are columns that are neither features nor
        the target nor the model's id column (or ``id_column``) or dropped ones; ``hint`` ends
        that message."""
        missing = [f for f in self.features if f not in table.columns]
        if missing:
            raise UsageError(f"{table.path}: the model's feature column{'s' if len(missing) > 1 else ''} "
                             f"{_names(missing)} {'are' if len(missing) > 1 else 'is'} missing "
                             f"(the file has {_names(table.columns)})")
        known = {*self.features, self.target, self.id, id_column, *self.dropped}
        unknown = [c for c in table.columns if c not in known]
        if unknown:
            raise UsageError(f"{table.path}: column{'s' if len(unknown) > 1 else ''} {_names(unknown)} "
                             f"{'are' if len(unknown) > 1 else 'is'} not among the model's features "
                             f"({_names(self.features)}) nor its target {self.target!r}{hint}")
        X = np.column_stack([table.numbers(table.index(f)) for f in self.features])
        return self.scale(X)

    def targets_of(self, table):
        """The target column of ``table`` as the model's targets: class codes (int64) or
        values (float64, in the target's units); ``UsageError`` if it is missing, or holds a
        label the model does not know or a cell that is not a number (regression)."""
        if self.target not in table.columns:
            raise UsageError(f"{table.path}: no target column {self.target!r} (the model's target); "
                             f"the file has {_names(table.columns)}")
        j = table.index(self.target)
        if self.task == "regression":
            return table.numbers(j, what="target")
        cells = [c.strip() for c in table.column(j)]
        if self.classes.dtype.kind == "U":
            labels = np.array(cells, dtype=str)
        else:
            labels = np.array([_number_or_nan(c) for c in cells], dtype=np.float64)
        codes = np.clip(np.searchsorted(self.classes, labels), 0, len(self.classes) - 1)
        unknown = np.flatnonzero(self.classes[codes] != labels)
        if unknown.size:
            i = int(unknown[0])
            hint = ""
            if self.meta.get("task_reason") == INTEGER_REASON and len(self.classes) > MANY_CLASSES:
                hint = (f"; the target was taken for {len(self.classes)} integer classes: if it is a quantity, "
                        "train again with --task regression")
            raise UsageError(f"{table.where(i)}: label {_short(cells[i])} in {self.target!r} was not seen in "
                             f"training (the model knows {_names([label_text(c) for c in self.classes])}){hint}")
        return codes.astype(np.int64)

    def outputs(self, X):
        """The model's outputs for scaled ``X``: class probabilities, or values in the target's units."""
        P = _library_call(self.model.predict, X)
        if self.task == "classification":
            return P
        return P[:, 0].astype(np.float64) * self.y_scale + self.y_mean

    def metrics(self, X, y):
        """``{"loss": ..., "accuracy": ...}`` (classification: mean cross-entropy) or
        ``{"loss": ..., "r2": ...}`` (regression: mean squared error in the target's units, and
        the coefficient of determination) of the model on scaled ``X`` against ``y``.

        Regression is measured on the standardised targets, as the model is trained (R^2 does
        not change with the units; in them a target of ~1e200 gives squared errors of ~1e398,
        inf in float64), and the loss then taken to the target's units (``_in_target_units``)."""
        if self.task == "classification":
            return _library_call(self.model.evaluate, X, y)
        pred = _library_call(self.model.predict, X)[:, 0].astype(np.float64)
        target = (y - self.y_mean) / self.y_scale
        return {"loss": _in_target_units(float(np.mean((pred - target) ** 2)), self.y_scale),
                "r2": r2_score(target, pred)}


def _number_or_nan(cell):
    try:
        return float(cell)
    except ValueError:
        return math.nan  # matches no class: reported as an unknown label


def _in_target_units(mse, y_scale):
    """The mean squared error ``mse`` of standardised targets in the target's units (times
    ``y_scale`` squared): a float, or, where that is beyond a float64 (a target of ~1e200,
    ~1e-200), the exact ``Decimal``, which prints the same way (``format(.., ".4g")``)."""
    loss = mse * y_scale * y_scale
    if mse == 0 or np.finfo(np.float64).tiny <= loss < math.inf:
        return loss
    return decimal.Decimal(mse) * decimal.Decimal(y_scale) ** 2


def r2_score(y, pred):
    """The coefficient of determination 1 - SSE / SST (scikit-learn's ``r2_score``; for a
    constant ``y``: 1.0 if every prediction is exact, else 0.0)."""
    sse = float(np.sum((y - pred) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return 1.0 - sse / sst


def _library_call(function, *args, **kwargs):
    """A call into the model: its ``ValueError`` (arguments it refuses: e.g. values too
    large for its dtype) is the user's mistake; a non-finite loss is a failed training."""
    try:
        return function(*args, **kwargs)
    except FloatingPointError as exc:  # says what diverged, where, and what to try
        raise TrainingFailed(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# ------------------------------------------------------------------- train
def _digits_table():
    """The bundled digits as ``(X, y, feature names, target name)`` (scikit-learn's names)."""
    X, y = datasets.load_digits()
    features = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    return X, y, features, "digit"


def _columns_of_option(table, values, option):
    """The columns ``values`` (an option's arguments, each a column's name or a comma-separated
    list of them) name in ``table``, in order, each once; ``UsageError`` for a name that is no
    column, with the close matches."""
    names = []
    for value in values:
        # a name holding a comma is taken whole (CSV headers allow it)
        parts = [value] if value in table.columns else [part.strip() for part in value.split(",")]
        for name in parts:
            if not name:
                raise UsageError(f"{option} {value!r}: an empty column name")
            if name not in table.columns:
                raise UsageError(f"{table.path}: no column {name!r} for {option}; {_did_you_mean(name, table.columns)}"
                                 f"the file has {_names(table.columns)}")
            if name not in names:
                names.append(name)
    return names


def _load_training_data(args):
    """``(source, X, features, target, task, y, classes, reason, id_column, dropped)`` for
    ``train``: where the data is from, the features (float64) and their names, the target's
    name, the task, the targets (class codes or values), the class labels (None for
    regression), how the task was decided, the ``--id`` column (or None) and the ``--drop``
    columns."""
    if args.data is None:
        if args.drop or args.id is not None:
            raise UsageError("--drop and --id name columns of a CSV file; the bundled digits (no file given) "
                             "have none to leave out")
        X, digits, features, target = _digits_table()
        classes = np.arange(10, dtype=np.float64)
        task = args.task or "classification"
        if task == "regression":
            return ("the bundled 8x8 digits (no CSV file given)", X, features, target, task,
                    digits.astype(np.float64), None, "--task", None, [])
        reason = "--task" if args.task else INTEGER_REASON
        return ("the bundled 8x8 digits (no CSV file given)", X, features, target, task, digits, classes, reason,
                None, [])
    table = read_csv(args.data)
    if len(table.columns) < 2:
        raise UsageError(f"{args.data}: one column only ({table.columns[0]!r}); a target and at least one "
                         "feature column are needed")
    target = args.target if args.target is not None else table.columns[-1]
    if target not in table.columns:
        raise UsageError(f"{args.data}: no column {target!r} for --target; {_did_you_mean(target, table.columns)}"
                         f"the file has {_names(table.columns)}")
    j = table.index(target)
    dropped = _columns_of_option(table, args.drop, "--drop")
    id_column = _columns_of_option(table, [args.id], "--id")[0] if args.id is not None else None
    if id_column is not None and id_column in dropped:
        raise UsageError(f"column {id_column!r} is given to both --drop and --id; an id column is left out of "
                         "the features already")
    for option, names in (("--drop", dropped), ("--id", [id_column])):
        if target in names:
            which = "--target" if args.target is not None else "the target (the last column by default; " \
                                                                "--target names another)"
            raise UsageError(f"column {target!r} is both {which} and given to {option}")
    features = [c for c in table.columns if c != target and c != id_column and c not in dropped]
    if not features:
        raise UsageError(f"{args.data}: no feature column is left: the file has {_names(table.columns)}, the "
                         f"target is {target!r}" + (f", --id {id_column!r}" if id_column else "")
                         + (f", --drop {_names(dropped)}" if dropped else ""))
    try:
        X = np.column_stack([table.numbers(table.index(f)) for f in features])
    except UsageError as exc:  # e.g. a column of names or ids, which is no feature
        raise UsageError(f"{exc} (--id COL or --drop COL,... leave a column out of the features)") from None
    task, y, classes, reason = decide_task(table, j, args.task)
    return args.data, X, features, target, task, y, classes, reason, id_column, dropped


def _split(n, val_split, seed):
    """Row indices ``(train, validation)``: a random ``val_split`` share held out (seeded)."""
    if not val_split:
        return np.arange(n), None
    n_val = int(round(n * val_split))
    if n_val < 1 or n_val >= n:
        raise UsageError(f"--val-split {val_split} of {n} rows leaves no training or no validation rows")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _make_model(impl, args, sizes, task):
    """An MLP of ``impl`` (``fastbp`` or ``fastbp.reference``) for the options ``args``."""
    output, loss = ("softmax", "cross_entropy") if task == "classification" else ("linear", "mse")
    init = "he" if args.activation in ("relu", "leaky_relu") else "xavier"
    optimizer = OPTIMIZERS[args.optimizer](lr=args.lr)
    return _library_call(impl.MLP, sizes, activation=args.activation, output=output, loss=loss,
                         optimizer=optimizer, init=init, dtype=args.dtype, seed=args.seed)


def _warm_up(args, sizes, task, X_tr, y_tr, val):
    """Compile (or load from Numba's cache) the kernels the timed fit and the report run, on a
    throw-away model: one batch of training and inference over as many rows as the report's
    (the kernels chosen depend on the rows per call).  Returns the seconds it took."""
    start = time.perf_counter()
    model = _make_model(fastbp, args, sizes, task)
    b = min(args.batch_size, len(X_tr))
    with warnings.catch_warnings():  # what this model does is of no interest, only the compiling
        warnings.simplefilter("ignore")
        try:
            model.fit(X_tr[:b], y_tr[:b], epochs=1, batch_size=b, on_nonfinite="skip_batch")
            for X, y in [(X_tr[:_EVAL_ROWS], y_tr[:_EVAL_ROWS])] + ([val] if val is not None else []):
                model.predict(X)
                model.evaluate(X, y)
        except (ValueError, FloatingPointError):
            pass  # the real fit meets the same problem and reports it
    return time.perf_counter() - start


def _timed_fit(model, args, X_tr, y_tr, val, verbose):
    """``(history, seconds)`` of ``model.fit`` with the command's options."""
    start = time.perf_counter()
    history = _library_call(model.fit, X_tr, y_tr, epochs=args.epochs, batch_size=args.batch_size,
                            validation_data=val, verbose=verbose)
    return history, time.perf_counter() - start


def _describe(task, classes, target):
    if task == "classification":
        shown = ", ".join(label_text(c) for c in classes[:10]) + (", ..." if len(classes) > 10 else "")
        return f"target {target!r}: classification, {len(classes)} classes ({shown})"
    return f"target {target!r}: regression"


def cmd_train(args, out):
    """``fastbp train``: read, split, scale, train, report, save."""
    Bundle.check_writable(args.out)
    source, X, features, target, task, y, classes, reason, id_column, dropped = _load_training_data(args)
    n, d = X.shape
    if reason == INTEGER_REASON and many_integer_classes(len(classes), n):
        # on stderr and also under --quiet: the decision is made silently otherwise, and
        # the model it gives is no use for a quantity
        _error(f"fastbp: warning: the target {target!r} holds {len(classes)} distinct integers in {n:,} rows "
               f"({n / len(classes):.1f} rows per class): trained as {len(classes)} classes; if it is a quantity "
               "rather than class labels, use --task regression (--task classification to keep the classes "
               "without this warning)")
    train_rows, val_rows = _split(n, args.val_split, args.seed)
    standardize, dtype = not args.no_standardize, np.dtype(args.dtype)
    x_mean, x_scale = scaler(X[train_rows], standardize)
    with np.errstate(all="ignore"):  # a scale of 0, a value beyond float64: check_learnable names it
        Xs = (X - x_mean) / x_scale
    check_learnable(X, x_scale, Xs, features, "feature", dtype, standardize)
    if task == "regression":
        y_mean, y_scale = scaler(y[train_rows].reshape(-1, 1), standardize)
        y_mean, y_scale = float(y_mean[0]), float(y_scale[0])
        with np.errstate(all="ignore"):
            y_fit = (y - y_mean) / y_scale
        check_learnable(y.reshape(-1, 1), [y_scale], y_fit.reshape(-1, 1), [target], "target", dtype, standardize)
    else:
        y_mean, y_scale, y_fit = 0.0, 1.0, y
    X_tr, y_tr = Xs[train_rows], y_fit[train_rows]
    val = None if val_rows is None else (Xs[val_rows], y_fit[val_rows])
    sizes = [d, *args.layers, len(classes) if task == "classification" else 1]
    model = _make_model(fastbp, args, sizes, task)
    meta = {"format": CLI_FORMAT, "version": CLI_VERSION, "task": task, "target": target, "features": features,
            "task_reason": reason, "standardized": not args.no_standardize, "id": id_column, "dropped": dropped,
            "source": "fastbp.datasets.load_digits" if args.data is None else os.path.basename(args.data)}
    bundle = Bundle(model, meta, x_mean, x_scale, classes=classes, y_mean=y_mean, y_scale=y_scale)
    say = (lambda *a: None) if args.quiet else (lambda text: print(text, file=out, flush=True))

    kind = (f"{model.output}, cross-entropy" if task == "classification" else "linear output, mean squared error")
    say(f"data: {source}: {n:,} rows, {d} features, {_describe(task, classes, target)} [{reason}]")
    # which columns the model reads: an id column or a column of no use is trained on
    # otherwise, and only the count would show it
    left_out = ([f"id {id_column!r} (not a feature; predict writes it first)"] if id_column else []) \
        + ([f"dropped {_names(dropped)}"] if dropped else [])
    say(f"features ({d}): {_names(features)}" + (f"; {'; '.join(left_out)}" if left_out else ""))
    say(f"model: MLP {'-'.join(map(str, sizes))}, {args.activation} hidden, {kind}, {model.optimizer!r}, "
        f"{args.dtype}, seed {args.seed}")
    scaled = ("features and target standardised" if task == "regression" else "features standardised") \
        if not args.no_standardize else "no standardisation"
    split = (f"{len(train_rows):,} training / {len(val_rows):,} validation rows (random {args.val_split:g} "
             f"split, seed {args.seed})" if val_rows is not None else f"{n:,} training rows, no validation")
    say(f"{split}; {scaled} (mean / std of the training rows)")
    compile_seconds = _warm_up(args, sizes, task, X_tr, y_tr, val)
    say(f"compiled (or loaded from Numba's cache) the kernels in {compile_seconds:.2f} s, on a throw-away "
        "model: not counted in the training time")
    if task == "regression":
        say("per-epoch losses: mean squared error of the standardised target" if not args.no_standardize else
            "per-epoch losses: mean squared error")
    history, seconds = _timed_fit(model, args, X_tr, y_tr, val, verbose=0 if args.quiet else 1)
    epochs_run = len(history)
    reference = None
    if args.compare_reference:
        from . import reference  # imported only here: NumPy code, no compile
        ref_model = _make_model(reference, args, sizes, task)
        say("fastbp.reference (plain NumPy), the same data, settings and seed:")
        ref_history, ref_seconds = _timed_fit(ref_model, args, X_tr, y_tr, val, verbose=0 if args.quiet else 1)
        reference = (ref_model, ref_seconds, len(ref_history))

    second, second_name = ("accuracy", "accuracy") if task == "classification" else ("r2", "R^2")
    loss_name = "loss (cross-entropy)" if task == "classification" else "loss (MSE, target units)"
    parts = [("train", X_tr, y[train_rows])] + ([("validation", val[0], y[val_rows])] if val is not None else [])
    print(f"{'':12s}{loss_name:>26s}{second_name:>10s}", file=out)
    for name, Xp, yp in parts:
        m = bundle.metrics(Xp, yp)
        print(f"{name:12s}{m['loss']:>26.4g}{m[second]:>10.4f}", file=out)
    print(f"trained {epochs_run} epoch{'s' if epochs_run != 1 else ''} of {len(X_tr):,} rows in {seconds:.3f} s: "
          f"{len(X_tr) * epochs_run / max(seconds, 1e-9):,.0f} samples/s (compile time excluded)", file=out)
    if reference is not None:
        ref_model, ref_seconds, ref_epochs = reference
        ref_bundle = Bundle(ref_model, meta, x_mean, x_scale, classes=classes, y_mean=y_mean, y_scale=y_scale)
        name, Xp, yp = parts[-1]
        fast_m, ref_m = bundle.metrics(Xp, yp), ref_bundle.metrics(Xp, yp)
        print(f"fastbp:           {seconds:8.3f} s, {name} {second_name} {fast_m[second]:.4f} "
              "(a warm-up fit compiled the kernels first: not counted)", file=out)
        print(f"fastbp.reference: {ref_seconds:8.3f} s, {name} {second_name} {ref_m[second]:.4f} "
              f"({len(X_tr) * ref_epochs / max(ref_seconds, 1e-9):,.0f} samples/s)", file=out)
        print(f"speed-up: {ref_seconds / max(seconds, 1e-9):.1f}x (the same {ref_epochs} epochs"
              f"{' with per-epoch validation' if val is not None else ''}, data, settings and seed)", file=out)
    bundle.save(args.out)
    # the full path: the default --out is relative to a working directory the user may not have in mind
    print(f"saved {os.path.abspath(args.out)} (the model, its feature scaler and "
          f"{'class labels' if task == 'classification' else 'target scaler'})", file=out)
    return EXIT_OK


# -------------------------------------------------------- predict, evaluate
def _format_number(value, dtype):
    """A float for a CSV cell: the shortest text that reads back as the same value of the
    model's dtype.  A prediction in the target's units outside float32's normal range (the
    target scaler undone for a target of ~1e200: float32 would write inf) is written with
    float32's 9 significant digits, as a float64."""
    info = np.finfo(np.float32)
    if dtype == np.float32 and value != 0 and not info.tiny <= abs(value) <= info.max:
        return f"{float(value):.9g}"
    if dtype == np.float32:
        return np.format_float_positional(np.float32(value), unique=True, trim="-") \
            if 1e-4 <= abs(value) < 1e16 or value == 0 else np.format_float_scientific(np.float32(value), unique=True)
    return repr(float(value))


def _write_csv(path, header, rows, out):
    """``rows`` under ``header`` to ``path`` (atomically: a temporary file renamed over it), or
    to ``out`` when ``path`` is None."""
    if path is None:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        out.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".csv.tmp", dir=directory)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_predict(args, out):
    """``fastbp predict``: one prediction per data row, in order (a target column is ignored)."""
    bundle = Bundle.load(args.model)
    table = read_csv(args.data)
    if args.id is not None:
        if args.id not in table.columns:
            raise UsageError(f"{table.path}: no column {args.id!r} for --id; {_did_you_mean(args.id, table.columns)}"
                             f"the file has {_names(table.columns)}")
        if args.id == bundle.target:
            raise UsageError(f"--id {args.id!r} is the model's target, the column predict writes")
        id_column = args.id
    else:  # the model's id column, if the data has it: without it, the rows' order is their id
        id_column = bundle.id if bundle.id in table.columns else None
    P = bundle.outputs(bundle.features_of(table, id_column, hint="; --id COL passes an id column through"))
    dtype = bundle.model.dtype
    if bundle.task == "classification":
        labels = [label_text(c) for c in bundle.classes]
        predicted = [labels[k] for k in P.argmax(axis=1)]
        header = [bundle.target]
        if args.proba:
            header += [f"p_{label}" for label in labels]
            rows = [[p] + [_format_number(v, dtype) for v in probs] for p, probs in zip(predicted, P)]
        else:
            rows = [[p] for p in predicted]
    else:
        header, rows = [bundle.target], [[_format_number(v, dtype)] for v in P]
    if id_column is not None:
        header = [id_column] + header
        rows = [[cell] + row for cell, row in zip(table.column(table.index(id_column)), rows)]
    _write_csv(args.out, header, rows, out)
    if args.out is not None:
        print(f"wrote {len(rows):,} predictions to {args.out}", file=out)
    return EXIT_OK


def cmd_evaluate(args, out):
    """``fastbp evaluate``: the model's loss and accuracy / R^2 on a file with the target."""
    bundle = Bundle.load(args.model)
    table = read_csv(args.data)
    X = bundle.features_of(table)
    y = bundle.targets_of(table)
    m = bundle.metrics(X, y)
    if bundle.task == "classification":
        print(f"{args.data}: {len(y):,} rows, loss (cross-entropy) {m['loss']:.4g}, accuracy {m['accuracy']:.4f}",
              file=out)
    else:
        print(f"{args.data}: {len(y):,} rows, loss (MSE, target units) {m['loss']:.4g}, R^2 {m['r2']:.4f}", file=out)
    return EXIT_OK


# ----------------------------------------------------------- argument parsing
class _Parser(argparse.ArgumentParser):
    """argparse, its errors on one line (exit status 2) instead of usage + message."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _layers(text):
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive integers "
                                         "(e.g. 128,64; 'none' for no hidden layer)")
    return sizes


def _checked(convert, ok, what):
    """An argparse ``type``: ``convert(text)``, refused (one line) unless ``ok`` of it."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_seed = _checked(int, lambda v: v >= 0, "a non-negative integer")
_learning_rate = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number")


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1)")
    return value


def build_parser():
    parser = _Parser(prog="fastbp", description="Train dense neural networks (MLPs) on CSV files with fastbp, "
                                                "and predict or evaluate with them.")
    parser.add_argument("--version", action="version", version=f"fastbp {fastbp.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a model on a CSV file (or, without one, on the bundled digits)",
        description="Train an MLP on a CSV file with a header row, or on the bundled 8x8 digits (1,797 "
                    "images, 10 classes) when no file is given; print the progress and a report, save the "
                    "model with its scaler and labels.",
        epilog="Task: classification when the target holds non-numbers or only integers, else regression "
               "(unless --task).  Features (and a regression target) are standardised with the training "
               "rows' mean and standard deviation unless --no-standardize.")
    train.add_argument("data", nargs="?", help="CSV file with a header row (default: the bundled digits)")
    train.add_argument("--target", help="the target column (default: the last column)")
    train.add_argument("--drop", action="append", default=[], metavar="COL,...",
                       help="columns that are not features: left out (comma-separated; may be repeated)")
    train.add_argument("--id", metavar="COL",
                       help="an id column: not a feature; predict writes it as its first column")
    train.add_argument("--task", choices=TASKS, help="override the task decided from the target's values")
    train.add_argument("--layers", type=_layers, default=[128, 64], metavar="N,N,...",
                       help="hidden layer sizes (default: 128,64; 'none' for no hidden layer)")
    train.add_argument("--activation", choices=ACTIVATIONS, default="relu",
                       help="hidden activation (default: relu)")
    train.add_argument("--epochs", type=_positive_int, default=20, help="default: 20")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="default: adam")
    train.add_argument("--lr", type=_learning_rate, default=1e-3, help="learning rate (default: 1e-3)")
    train.add_argument("--val-split", type=_fraction, default=0.2,
                       help="share of the rows held out at random for validation (default: 0.2; 0: none)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default: float32")
    train.add_argument("--seed", type=_seed, default=0,
                       help="seeds the validation split, the initial weights and the shuffling (default: 0)")
    train.add_argument("--no-standardize", action="store_true", help="train on the raw feature and target values")
    train.add_argument("--out", default="model.npz", help="where to save the model (default: model.npz)")
    train.add_argument("--compare-reference", action="store_true",
                       help="also train fastbp.reference (plain NumPy) the same way and print both times")
    train.add_argument("--quiet", action="store_true",
                       help="no progress display and no compile notice: only the final report (and warnings)")
    train.set_defaults(run=cmd_train)

    predict = commands.add_parser(
        "predict", help="predict with a model saved by 'fastbp train'",
        description="Write one prediction per data row (the original class label, or a value in the target's "
                    "units) as CSV, in the rows' order, after the id column (the model's, when the data has "
                    "it, or --id); a target column and columns dropped in training are ignored.")
    predict.add_argument("model", help="a model file written by 'fastbp train'")
    predict.add_argument("data", help="CSV file with the model's feature columns (any order)")
    predict.add_argument("--out", help="write the predictions to this CSV file (default: standard output)")
    predict.add_argument("--proba", action="store_true", help="classification: add a probability column per class")
    predict.add_argument("--id", metavar="COL",
                         help="write this column first, to join the predictions back (default: the model's --id "
                              "column, when the data has it)")
    predict.set_defaults(run=cmd_predict)

    evaluate = commands.add_parser(
        "evaluate", help="loss and accuracy / R^2 of a model on a CSV file with the target",
        description="Print the model's loss and accuracy (classification) or R^2 (regression) on a CSV file "
                    "holding its feature columns and its target column.")
    evaluate.add_argument("model", help="a model file written by 'fastbp train'")
    evaluate.add_argument("data", help="CSV file with the model's feature and target columns")
    evaluate.set_defaults(run=cmd_evaluate)
    return parser


def main(argv=None):
    """Run the ``fastbp`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit
    status (the console script passes it to ``sys.exit``)."""
    out = sys.stdout
    try:
        with warnings.catch_warnings():  # restores showwarning afterwards
            warnings.showwarning = _show_warning
            args = build_parser().parse_args(argv)
            with _compile_notices(shown=not getattr(args, "quiet", False)):
                return args.run(args, out)
    except UsageError as exc:
        _error(f"fastbp: error: {exc}")
        return EXIT_USAGE
    except TrainingFailed as exc:
        _error(f"fastbp: error: {exc}")
        return EXIT_FAILED
    except MemoryError as exc:  # (its own words where it has them: e.g. an address-space limit's remedy)
        _error(f"fastbp: error: {exc}" if str(exc) else
               "fastbp: error: out of memory (a smaller model, --batch-size or data file?)")
        return EXIT_FAILED
    except KeyboardInterrupt:
        if on_a_terminal(sys.stdout):  # end the progress line the interrupt cut short
            print(file=sys.stdout)
        _error("fastbp: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # e.g. `fastbp predict ... | head -1`: the reader has all it wanted, which is no failure,
        # so stop quietly with status 0, as Unix tools do.  Python would flush the unwritten
        # rest of stdout at exit, fail again and print "Exception ignored": point stdout at
        # /dev/null first (the recipe of Python's signal documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


@contextlib.contextmanager
def _compile_notices(shown):
    """The library's notice of a cold compile ("fastbp: compiling ...", logger ``"fastbp"``,
    on stderr unless logging is configured) while the command runs, unless ``--quiet``; the
    logger's level as it was afterwards (``main`` also runs in-process, in tests)."""
    level = compile_notice.logger.level
    if not shown:
        compile_notice.logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        compile_notice.logger.setLevel(level)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning (e.g. predict's NaN outputs) as one line on stderr, without the source line."""
    _error(f"fastbp: warning: {message}")


def _error(text):
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    print(text, file=sys.stderr)

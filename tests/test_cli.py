"""The ``fastbp`` command (``fastbp.cli``) and the model file's attached arrays it relies on
(``fastbp.fileformat.save`` / ``load_with_extra``).

The command is driven in subprocesses (``python -m fastbp``, ``PYTHONPATH`` set to this
checkout): train -> predict -> evaluate round trips on small CSV files (string labels,
regression), the bundled digits, ``--compare-reference``, the main user mistakes (exit status
2, one line on stderr, no traceback) and Ctrl-C (status 130).  Every mistake, the pieces the
command is built from (task decision, label text, CSV reading, R^2) and the file's contents
are also tested in-process through ``cli.main`` (each subprocess pays ~1 s for importing
Numba and loading the kernels).
"""

import concurrent.futures
import contextlib
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest

import fastbp
import fastbp.reference
from fastbp import cli, fileformat

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           PYTHONUNBUFFERED="1")


def fastbp_cmd(*args, cwd, timeout=300):
    """Run ``python -m fastbp *args`` in ``cwd``: the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "fastbp", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def without_notices(stderr):
    """``stderr``'s lines but the library's compile notices ("fastbp: compiling ..."), which a
    subprocess prints whenever it is the first to need a kernel (CI starts from an empty
    on-disk cache)."""
    return [line for line in stderr.splitlines() if not line.startswith("fastbp: compiling ")]


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr
    return res.stdout


def run_main(*args):
    """``cli.main`` in-process (the code the subprocess runs, without its start-up): its
    stdout, after checking that it succeeded."""
    with contextlib.redirect_stdout(io.StringIO()) as text:
        assert cli.main([str(a) for a in args]) == 0
    return text.getvalue()


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path_or_text):
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def report_value(stdout, row, column):
    """A number of ``train``'s final table: row ``train`` / ``validation``, column 0 (loss)
    or 1 (accuracy / R^2)."""
    match = re.search(rf"^{row}\s+(\S+)\s+(\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return float(match.group(column + 1))


# ----------------------------------------------------------------- data sets
def species_data(n=300, seed=0):
    """Three string classes decided by the sign pattern of two of four columns (one
    constant), on very different scales: learnable only once standardised."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    noise = rng.standard_normal(n)
    labels = np.where(a > 0.3, "virginica", np.where(b > 0, "setosa", "versicolor"))
    header = ["petal", "sepal", "noise", "const", "species"]
    rows = [[f"{1000 + 500 * x:.3f}", f"{0.001 * y:.6f}", f"{z:.4f}", "7", lab]
            for x, y, z, lab in zip(a, b, noise, labels)]
    return header, rows


def price_data(n=300, seed=1):
    """A regression target far from 0 and of large scale (mean ~5000, std ~1000)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    price = 5000 + 800 * X[:, 0] - 500 * X[:, 1] + 10 * rng.standard_normal(n)
    header = ["rooms", "age", "floor", "price"]
    rows = [[f"{x[0]:.5f}", f"{x[1]:.5f}", f"{x[2]:.5f}", f"{p:.2f}"] for x, p in zip(X, price)]
    return header, rows


def magnitude_data(feature=1.0, target=None, n=200, seed=3):
    """Column 'a' decides the target, times ``feature``; 'b' is noise.  The target: classes
    'lo' / 'hi' by the sign of 'a', or (``target`` a number) the value ``(2 a + noise) * target``."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    y = [("hi" if v > 0 else "lo") for v in a] if target is None else \
        [repr(float(v)) for v in (2 * a + 0.05 * rng.standard_normal(n)) * target]
    return ["a", "b", "y"], [[repr(float(v * feature)), repr(float(w)), t] for v, w, t in zip(a, b, y)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with the small CSV files of the round trips."""
    d = tmp_path_factory.mktemp("cli")
    write_csv(d / "species.csv", *species_data())
    write_csv(d / "prices.csv", *price_data())
    return d


# ============================================ the model file's extra arrays
EXTRA = {"scale": np.array([1.5, 2.0, 0.25]), "codes": np.arange(4, dtype=np.int32),
         "names": np.array(["a", "bé", "longer name"]), "flag": np.array(True), "raw": np.frombuffer(b"{}", np.uint8),
         "matrix": np.arange(6.0).reshape(2, 3), "x.y-z_1": np.float32(0.5)}


def small_model(fb):
    model = fb.MLP([3, 5, 2], seed=3, dtype="float64")
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((20, 3)), rng.integers(0, 2, 20), epochs=2, batch_size=8)
    return model


@pytest.mark.parametrize("saver", [fastbp, fastbp.reference], ids=["saved-by-fastbp", "saved-by-reference"])
def test_extra_arrays_round_trip_and_plain_load_ignores_them(saver, tmp_path):
    model = small_model(saver)
    fileformat.save(model, tmp_path / "with.npz", EXTRA)
    model.save(tmp_path / "without.npz")
    for loader in (fastbp, fastbp.reference):
        loaded, extra = fileformat.load_with_extra(loader.MLP, tmp_path / "with.npz")
        assert sorted(extra) == sorted(EXTRA)
        for name, value in EXTRA.items():
            assert extra[name].dtype == np.asarray(value).dtype and extra[name].shape == np.shape(value)
            assert np.array_equal(extra[name], value)
        plain = loader.load(tmp_path / "with.npz")  # a plain model, the same as one saved without extras
        for m in (loaded, plain):
            for (W, b), (W0, b0) in zip(m.get_weights(), model.get_weights()):
                assert np.array_equal(W, W0) and np.array_equal(b, b0)
        assert fileformat.load_with_extra(loader.MLP, tmp_path / "without.npz")[1] == {}


def test_extra_arrays_keep_the_format_version_and_are_checksummed(tmp_path):
    fileformat.save(small_model(fastbp), tmp_path / "m.npz", EXTRA)
    with np.load(tmp_path / "m.npz") as f:
        header = json.loads(f["header"].tobytes().decode())
        files = set(f.files)
    assert header["version"] == 2 and header["extra"] == list(EXTRA)  # an older fastbp still reads the file
    assert {"extra." + name for name in EXTRA} <= files and all("extra." + n in header["crc32"] for n in EXTRA)


def _rewrite(path, edit):
    """Rewrite the archive at ``path`` with ``edit(arrays)`` applied (the zip stays valid)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    edit(arrays)
    np.savez(path, **arrays)


def test_a_changed_extra_array_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "m.npz"
    fileformat.save(small_model(fastbp), path, EXTRA)
    _rewrite(path, lambda a: a.update({"extra.scale": a["extra.scale"] * 2}))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*checksum mismatch in 'extra.scale'"):
        fastbp.load(path)  # the plain load verifies them too
    with pytest.raises(ValueError, match="checksum mismatch"):
        fileformat.load_with_extra(fastbp.MLP, path)


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.update(extra=["nothere"]), "has no checksum"),
    (lambda h: h.update(extra="scale"), "malformed"),
    (lambda h: h.update(extra=[3]), "malformed"),
])
def test_a_bad_list_of_extra_arrays_is_refused(tmp_path, edit, message):
    path = tmp_path / "m.npz"
    fileformat.save(small_model(fastbp), path, {"scale": np.ones(3)})

    def forge(arrays):
        header = json.loads(arrays["header"].tobytes().decode())
        edit(header)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    _rewrite(path, forge)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        fileformat.load_with_extra(fastbp.MLP, path)


@pytest.mark.parametrize("extra, error", [
    ({"": np.ones(2)}, ValueError), ({"a/b": np.ones(2)}, ValueError), ({"x" * 65: np.ones(2)}, ValueError),
    ({3: np.ones(2)}, ValueError), ({"obj": np.array([{}, 1], dtype=object)}, TypeError),
    ([("a", np.ones(2))], TypeError),
])
def test_bad_extra_arrays_are_refused_before_writing(tmp_path, extra, error):
    with pytest.raises(error):
        fileformat.save(small_model(fastbp), tmp_path / "m.npz", extra)
    assert not list(tmp_path.iterdir())


# =========================================================== in-process pieces
def table(text, tmp_path, name="t.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return cli.read_csv(str(path))


@pytest.mark.parametrize("cells, task, expected, classes", [
    (["b", "a", "b", "c"], None, "classification", ["a", "b", "c"]),
    (["3", "1", "1.0", "2"], None, "classification", [1.0, 2.0, 3.0]),  # integer values: 1 and 1.0 are one class
    (["-1", "1", "1", "-1"], None, "classification", [-1.0, 1.0]),
    (["0.5", "1", "2", "3"], None, "regression", None),
    (["1", "2", "3", "2"], "regression", "regression", None),
    (["0.5", "1.5", "0.5", "0.5"], "classification", "classification", [0.5, 1.5]),
    (["1", "x", "2", "2"], None, "classification", ["1", "2", "x"]),  # not all numbers: labels as text
])
def test_the_task_is_decided_from_the_target(tmp_path, cells, task, expected, classes):
    t = table("f,y\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells)), tmp_path)
    got, y, got_classes, reason = cli.decide_task(t, 1, task)
    assert got == expected and reason
    if classes is None:
        assert got_classes is None and np.array_equal(y, [float(c) for c in cells])
    else:  # codes into the sorted labels, which give each row's label back
        assert list(got_classes) == classes and y.dtype == np.int64
        given = cells if got_classes.dtype.kind == "U" else [float(c) for c in cells]
        assert [cli.label_text(got_classes[k]) for k in y] == [cli.label_text(c) for c in given]


def test_close_matches_of_a_column_name():
    names = ["Age", "age_group", "diagnosis", "Diagnosis_code", "sex"]
    assert cli._did_you_mean("AGE", names) == "did you mean 'Age'? "  # case first, not the near miss
    assert cli._did_you_mean("diagnosys", names) == "did you mean 'diagnosis' or 'Diagnosis_code'? "
    assert cli._did_you_mean("weight", names) == ""


def test_label_text():
    assert [cli.label_text(v) for v in (3.0, -1.0, 0.5, 1e15, 1e20, np.str_("cat"), "1.0")] == \
        ["3", "-1", "0.5", "1000000000000000", "1e+20", "cat", "1.0"]
    for v in (3.0, 0.1, 1e20, -2.5e-7):  # read back as the same number
        assert float(cli.label_text(v)) == v


def test_csv_reading_bom_blank_lines_quotes_and_line_numbers(tmp_path):
    t = table('\ufeffa, b ,"c,d"\n\n1,"2",3\n\n"x\n",5,6\n7,8,9\n', tmp_path)
    assert t.columns == ["a", "b", "c,d"] and len(t.rows) == 3
    assert t.lines == [3, 5, 7]  # the second row's quoted field spans lines 5-6
    assert list(t.numbers(1)) == [2.0, 5.0, 8.0]
    with pytest.raises(cli.UsageError, match=r"t.csv, line 5 \(data row 2\): feature column 'a' holds 'x\\n'"):
        t.numbers(0)


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"), ("\n\n", "the file is empty"), ("a,b\n", "no data rows"),
    ("a,b\n1,2\n3,4,5\n", "line 3: 3 fields, but the header has 2"), ("a,,c\n1,2,3\n", "column 2 has no name"),
    ("a,b,a\n1,2,3\n", "the header names 'a' more than once"), ('a,b\n1,"2\n', "line 2: malformed CSV"),
    ('a,b\n1,2\n3,"4"x\n', "line 3: malformed CSV"),
])
def test_csv_mistakes(tmp_path, text, message):
    with pytest.raises(cli.UsageError, match=message):
        table(text, tmp_path)


def test_r2_score_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y, pred = rng.standard_normal(50), rng.standard_normal(50)
    for a, b in ((y, pred), (y, y + 0.1 * pred), (np.ones(5), np.ones(5)), (np.ones(5), np.arange(5.0))):
        assert cli.r2_score(a, b) == pytest.approx(metrics.r2_score(a, b), abs=1e-12)


def test_the_default_run_reaches_95_percent_on_the_digits(tmp_path, capsys):
    """``fastbp train`` with no argument but --out (in-process, the suite's compiled kernels):
    the bundled digits, default settings, >= 95 % validation accuracy.  (One Numba thread: the
    numbers are the same for any thread count, and a busy shared machine cannot stall it.)"""
    numba.set_num_threads(1)  # restored by conftest
    assert cli.main(["train", "--quiet", "--out", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert report_value(out, "validation", 1) >= 0.95, out
    args = cli.build_parser().parse_args(["train"])
    assert (args.data, args.layers, args.epochs, args.batch_size, args.optimizer, args.lr, args.val_split,
            args.dtype, args.out) == (None, [128, 64], 20, 64, "adam", 1e-3, 0.2, "float32", "model.npz")


def test_console_script_is_declared():
    assert 'fastbp = "fastbp.cli:main"' in (ROOT / "pyproject.toml").read_text()


# ============================================================ subprocess runs
def test_classification_round_trip_with_string_labels(workdir, tmp_path):
    model = tmp_path / "species.npz"
    out = ok(fastbp_cmd("train", workdir / "species.csv", "--target", "species", "--layers", "16", "--epochs", 40,
                        "--batch-size", 16, "--lr", 0.01, "--out", model, cwd=tmp_path))
    assert "classification, 3 classes (setosa, versicolor, virginica)" in out and "epoch 40/40" in out
    assert "samples/s" in out and f"saved {model}" in out
    assert report_value(out, "validation", 1) >= 0.85

    header, rows = species_data()
    truth = [r[-1] for r in rows]
    # predict: the target column is ignored; columns by name, in any order
    shuffled = write_csv(tmp_path / "shuffled.csv", ["const", "sepal", "noise", "petal"],
                         [[r[3], r[1], r[2], r[0]] for r in rows])
    got_header, got = read_csv(ok(fastbp_cmd("predict", model, workdir / "species.csv", cwd=tmp_path)))
    assert got_header == ["species"]
    predicted = [r[0] for r in got]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth)])
    assert accuracy >= 0.85 and set(predicted) <= {"setosa", "versicolor", "virginica"}

    # --proba to a file, from the columns in another order: the same labels, a probability
    # column per class, rows summing to 1, the largest one the label's
    out = ok(fastbp_cmd("predict", model, shuffled, "--proba", "--out", tmp_path / "p.csv", cwd=tmp_path))
    assert out == f"wrote 300 predictions to {tmp_path / 'p.csv'}\n"
    p_header, p_rows = read_csv(tmp_path / "p.csv")
    assert p_header == ["species", "p_setosa", "p_versicolor", "p_virginica"] and [r[0] for r in p_rows] == predicted
    P = np.array([[float(v) for v in r[1:]] for r in p_rows])
    assert np.allclose(P.sum(axis=1), 1, atol=1e-5)
    assert [p_header[1 + k][2:] for k in P.argmax(axis=1)] == predicted

    out = ok(fastbp_cmd("evaluate", model, workdir / "species.csv", cwd=tmp_path))
    match = re.search(r"300 rows, loss \(cross-entropy\) (\S+), accuracy (\S+)$", out.strip())
    assert match and float(match.group(2)) == pytest.approx(accuracy, abs=1e-4)


def test_regression_round_trip(workdir, tmp_path):
    model = tmp_path / "prices.npz"
    out = ok(fastbp_cmd("train", workdir / "prices.csv", "--layers", "16", "--epochs", 60, "--batch-size", 16,
                        "--lr", 0.003, "--dtype", "float64", "--out", model, cwd=tmp_path))
    assert "target 'price': regression" in out and "non-integer numbers" in out
    assert report_value(out, "validation", 1) >= 0.97  # R^2
    header, rows = price_data()
    truth = np.array([float(r[-1]) for r in rows])
    got_header, got = read_csv(ok(fastbp_cmd("predict", model, workdir / "prices.csv", cwd=tmp_path)))
    assert got_header == ["price"]
    pred = np.array([float(r[0]) for r in got])  # in the target's units: the target scaler undone
    r2 = cli.r2_score(truth, pred)
    assert r2 >= 0.97 and abs(pred.mean() - 5000) < 200
    out = ok(fastbp_cmd("evaluate", model, workdir / "prices.csv", cwd=tmp_path))
    match = re.search(r"loss \(MSE, target units\) (\S+), R\^2 (\S+)$", out.strip())
    assert match and float(match.group(2)) == pytest.approx(r2, abs=1e-4)
    assert float(match.group(1)) == pytest.approx(np.mean((pred - truth) ** 2), rel=1e-3)


@pytest.mark.parametrize("magnitude", [1e200, 1e-300], ids=["1e200", "1e-300"])
def test_features_of_any_finite_magnitude_are_standardised_and_the_model_is_usable(tmp_path, capsys, magnitude):
    """Values of 1e200 (whose squares overflow: the scale was inf, the model written but
    refused by predict and evaluate) and 1e-300 (whose squares underflow: the column was
    taken for a constant and reached the model as 0)."""
    header, rows = magnitude_data(feature=magnitude)
    data, model = write_csv(tmp_path / "d.csv", header, rows), tmp_path / "m.npz"
    out = run_main("train", data, "--layers", 8, "--epochs", 30, "--lr", 0.01, "--quiet", "--out", model)
    assert report_value(out, "validation", 1) >= 0.9
    a = np.array([float(r[0]) for r in rows])
    extra = fileformat.load_with_extra(fastbp.MLP, model)[1]
    train_rows = cli._split(len(rows), 0.2, 0)[0]
    assert float(extra["x_scale"][0]) == pytest.approx((a[train_rows] / magnitude).std() * magnitude, rel=1e-12)
    predicted = [r[0] for r in read_csv(run_main("predict", model, data))[1]]
    assert np.mean([p == r[-1] for p, r in zip(predicted, rows)]) >= 0.9
    assert float(re.search(r"accuracy (\S+)$", run_main("evaluate", model, data).strip()).group(1)) >= 0.9
    assert capsys.readouterr().err == ""  # (it warned of an overflow in the squares)


@pytest.mark.parametrize("magnitude", [1e200, 1e-300], ids=["1e200", "1e-300"])
def test_a_regression_target_of_any_finite_magnitude_is_standardised_and_the_model_is_usable(tmp_path, capsys,
                                                                                             magnitude):
    """The target scaler, the report's R^2 (it was nan: the squared errors overflowed) and the
    loss in the target's units (beyond float64 for 1e200: printed all the same), predict's
    values in the target's units (beyond float32: written as float64) and evaluate."""
    header, rows = magnitude_data(target=magnitude)
    data, model = write_csv(tmp_path / "d.csv", header, rows), tmp_path / "m.npz"
    # (numbers of 1e200 are all integers: taken for classes without --task)
    out = run_main("train", data, "--task", "regression", "--layers", 8, "--epochs", 30, "--lr", 0.01, "--quiet",
                   "--out", model)
    assert report_value(out, "validation", 1) >= 0.9
    # the MSE in target units, ~(0.1 x magnitude)^2: beyond float64 both ways, printed as a number
    loss = re.search(r"^validation\s+\d(?:\.\d+)?e([+-]\d+)\s", out, re.MULTILINE)
    assert loss and abs(int(loss.group(1)) - 2 * round(np.log10(magnitude))) <= 4, out
    truth = np.array([float(r[-1]) for r in rows]) / magnitude
    pred = np.array([float(r[0]) for r in read_csv(run_main("predict", model, data))[1]]) / magnitude
    assert np.isfinite(pred).all() and cli.r2_score(truth, pred) >= 0.9
    r2 = float(re.search(r"R\^2 (\S+)$", run_main("evaluate", model, data).strip()).group(1))
    assert r2 == pytest.approx(cli.r2_score(truth, pred), abs=1e-3)
    assert capsys.readouterr().err == ""


def test_the_scaler_neither_overflows_nor_underflows():
    for magnitude in (1e300, 1e200, 1.0, 1e-200, 1e-300):
        X = np.array([[1.0, 5.0], [-2.0, 5.0], [4.5, 5.0]]) * magnitude
        mean, scale = cli.scaler(X, True)
        np.testing.assert_allclose(mean / magnitude, [3.5 / 3, 5.0], rtol=1e-12)
        assert scale[0] / magnitude == pytest.approx(np.array([1.0, -2.0, 4.5]).std(), rel=1e-12)
        assert scale[1] == 1.0  # a constant column


@pytest.mark.parametrize("file, options", [
    ("tiny_feature.csv", []), ("tiny_target.csv", []), ("tiny_target.csv", ["--no-standardize", "--dtype", "float64"]),
    ("big_feature.csv", ["--no-standardize"]), ("small_feature.csv", ["--no-standardize"]),
])
def test_a_column_the_model_cannot_learn_from_is_refused_and_nothing_is_written(error_dir, tmp_path, capsys, file,
                                                                                options):
    status = cli.main(["train", str(error_dir / file), "--quiet", "--out", str(tmp_path / "m.npz"), *options])
    err = capsys.readouterr().err
    assert status == 2 and len(without_notices(err)) == 1, err
    assert not (tmp_path / "m.npz").exists()


def test_the_model_file_carries_scaler_labels_and_names(workdir, tmp_path):
    """With no validation split every row is a training row: the stored scaler is the columns'
    mean and std (the constant column's scale 1), and predictions from the plain model on
    data scaled with it are the command's."""
    model = tmp_path / "m.npz"
    run_main("train", workdir / "species.csv", "--val-split", 0, "--layers", "8", "--epochs", 3, "--dtype", "float64",
             "--quiet", "--out", model)
    header, rows = species_data()
    X = np.array([[float(v) for v in r[:4]] for r in rows])
    plain, extra = fileformat.load_with_extra(fastbp.MLP, model)
    meta = json.loads(extra["cli"].tobytes().decode())
    assert meta["task"] == "classification" and meta["target"] == "species" and meta["features"] == header[:4]
    assert list(extra["classes"]) == ["setosa", "versicolor", "virginica"]
    assert np.allclose(extra["x_mean"], X.mean(axis=0)) and extra["x_scale"][3] == 1.0
    assert np.allclose(extra["x_scale"][:3], X[:, :3].std(axis=0))
    got = [r[0] for r in read_csv(run_main("predict", model, workdir / "species.csv"))[1]]
    for impl in (fastbp, fastbp.reference):  # fastbp.load reads it as a plain model
        P = impl.load(model).predict((X - extra["x_mean"]) / extra["x_scale"])
        assert got == [str(extra["classes"][k]) for k in P.argmax(axis=1)]
    assert plain.sizes == [4, 8, 3]


def test_id_and_dropped_columns_are_no_features_and_predict_writes_the_id_first(workdir, tmp_path):
    """A string id, a numeric row number and a text column beside the features: --id and
    --drop leave them out (the report says which columns are the features), the model file
    names them, predict writes the id first when the data has it and needs neither."""
    header, rows = species_data()
    full = write_csv(tmp_path / "full.csv", ["patient", "row_no"] + header[:2] + ["note"] + header[2:],
                     [[f"P{i:03d}", str(i)] + r[:2] + ["n/a"] + r[2:] for i, r in enumerate(rows)])
    model = tmp_path / "m.npz"
    out = run_main("train", full, "--id", "patient", "--drop", "row_no,note", "--val-split", 0, "--layers", 8,
                   "--epochs", 3, "--dtype", "float64", "--out", model)
    assert "data: " + str(full) + ": 300 rows, 4 features, target 'species'" in out
    assert "features (4): 'petal', 'sepal', 'noise', 'const'; id 'patient' (not a feature; predict writes it " \
           "first); dropped 'row_no', 'note'\n" in out
    meta = json.loads(fileformat.load_with_extra(fastbp.MLP, model)[1]["cli"].tobytes())
    assert (meta["features"], meta["id"], meta["dropped"]) == (header[:4], "patient", ["row_no", "note"])

    # the same model as one trained on the features alone (the same seed: the same numbers)
    plain = write_csv(tmp_path / "plain.csv", header, rows)
    run_main("train", plain, "--val-split", 0, "--layers", 8, "--epochs", 3, "--dtype", "float64", "--quiet",
             "--out", tmp_path / "plain.npz")
    expected = read_csv(run_main("predict", tmp_path / "plain.npz", plain))[1]

    got_header, got = read_csv(run_main("predict", model, full, "--proba"))
    assert got_header == ["patient", "species", "p_setosa", "p_versicolor", "p_virginica"]
    assert [r[0] for r in got] == [f"P{i:03d}" for i in range(300)] and [r[1] for r in got] == [r[0] for r in expected]
    # neither the id nor the dropped columns are needed: no id column then
    assert read_csv(run_main("predict", model, plain)) == (["species"], expected)
    # predict --id: another column as the id
    numbered = write_csv(tmp_path / "numbered.csv", ["row_no"] + header[:4], [[str(i)] + r[:4] for i, r in
                                                                             enumerate(rows)])
    got_header, got = read_csv(run_main("predict", model, numbered, "--id", "row_no"))
    assert got_header == ["row_no", "species"] and got == [[str(i)] + e for i, e in enumerate(expected)]
    # evaluate ignores them too
    assert run_main("evaluate", model, full) == run_main("evaluate", model, plain).replace(str(plain), str(full))
    # a model file from before --id and --drop (no such keys) is read as having none
    loaded, extra = fileformat.load_with_extra(fastbp.MLP, model)
    del meta["id"], meta["dropped"]
    extra["cli"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    fileformat.save(loaded, tmp_path / "older.npz", extra)
    assert read_csv(run_main("predict", tmp_path / "older.npz", plain)) == (["species"], expected)


def test_integer_targets_are_classes_unless_task_says_regression(tmp_path):
    rows = [[f"{i * 0.1:.1f}", str(i % 3 * 10)] for i in range(40)]
    write_csv(tmp_path / "ints.csv", ["x", "level"], rows)
    run_main("train", tmp_path / "ints.csv", "--epochs", 1, "--layers", "4", "--quiet", "--out", tmp_path / "c.npz")
    run_main("train", tmp_path / "ints.csv", "--task", "regression", "--val-split", 0, "--epochs", 1, "--layers", "4",
             "--quiet", "--out", tmp_path / "r.npz")
    c = fileformat.load_with_extra(fastbp.MLP, tmp_path / "c.npz")[1]
    r = fileformat.load_with_extra(fastbp.MLP, tmp_path / "r.npz")[1]
    assert list(c["classes"]) == [0.0, 10.0, 20.0] and "y_mean" not in c
    levels = np.array([float(v[1]) for v in rows])  # every row a training row: the target's own mean / std
    assert "classes" not in r and float(r["y_mean"]) == pytest.approx(levels.mean())
    assert float(r["y_scale"]) == pytest.approx(levels.std())
    # numeric labels are written back as they were given
    header, predicted = read_csv(run_main("predict", tmp_path / "c.npz", tmp_path / "ints.csv"))
    assert header == ["level"] and len(predicted) == 40 and {row[0] for row in predicted} <= {"0", "10", "20"}


def test_the_many_classes_rule():
    assert cli.many_integer_classes(190, 331)  # the diabetes data's target
    assert cli.many_integer_classes(21, 419) and not cli.many_integer_classes(21, 420)  # 20 rows per class
    assert not cli.many_integer_classes(20, 25)  # a small label set never warns
    assert not cli.many_integer_classes(100, 50_000)


def quantity_data(n=120, seed=2):
    """An integer-valued quantity (like the diabetes data's target): ~100 distinct values."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    y = np.round(150 + 60 * X[:, 0] + 20 * rng.standard_normal(n)).astype(int)
    return ["bmi", "bp", "progression"], [[f"{a:.4f}", f"{b:.4f}", str(v)] for (a, b), v in zip(X, y)]


def test_many_integer_classes_warn_even_under_quiet_and_evaluate_hints_at_regression(tmp_path, capsys):
    header, rows = quantity_data()
    k = len({r[-1] for r in rows})
    data = write_csv(tmp_path / "quantity.csv", header, rows)
    common = ["--epochs", "1", "--layers", "4", "--val-split", "0", "--quiet"]
    assert cli.main(["train", str(data), *common, "--out", str(tmp_path / "c.npz")]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"fastbp: warning: the target 'progression' holds {k} distinct integers in 120 rows"), captured.err
    assert "--task regression" in lines[0] and "warning" not in captured.out
    for task in ("classification", "regression"):  # the task given: no warning
        assert cli.main(["train", str(data), *common, "--task", task, "--out", str(tmp_path / "m.npz")]) == 0
        assert capsys.readouterr().err == ""
    # a new value of the quantity is an unseen label: the error says what went wrong
    unseen = write_csv(tmp_path / "new.csv", header, rows[:3] + [rows[3][:2] + ["1000"]])
    assert cli.main(["evaluate", str(tmp_path / "c.npz"), str(unseen)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "label '1000' in 'progression' was not seen in training" in err
    assert err.rstrip().endswith(f"the target was taken for {k} integer classes: if it is a quantity, train again "
                                 "with --task regression"), err


def test_few_integer_classes_do_not_warn(tmp_path, capsys):
    rows = [[f"{i * 0.1:.1f}", str(i % 3 * 10)] for i in range(40)]
    write_csv(tmp_path / "ints.csv", ["x", "level"], rows)
    assert cli.main(["train", str(tmp_path / "ints.csv"), "--epochs", "1", "--layers", "4", "--quiet", "--out",
                     str(tmp_path / "c.npz")]) == 0
    assert capsys.readouterr().err == ""


def test_train_without_data_uses_the_bundled_digits(tmp_path):
    out = ok(fastbp_cmd("train", "--epochs", 3, cwd=tmp_path))
    assert "the bundled 8x8 digits" in out and "1,797 rows, 64 features" in out and "10 classes" in out
    assert "\nfeatures (64): 'pixel_0_0', 'pixel_0_1', " in out and ", ... (52 more)\n" in out  # cut short
    assert "1,438 training / 359 validation rows" in out and "epoch 3/3" in out
    assert "compiled (or loaded from Numba's cache)" in out
    assert f"saved {os.path.realpath(tmp_path / 'model.npz')} (" in out  # the default --out's full path
    assert report_value(out, "validation", 1) >= 0.85
    assert (tmp_path / "model.npz").exists()  # the default --out, in the working directory
    assert json.loads(fileformat.load_with_extra(fastbp.MLP, tmp_path / "model.npz")[1]["cli"].tobytes()
                      )["features"][:2] == ["pixel_0_0", "pixel_0_1"]


def test_compare_reference(workdir, tmp_path):
    out = ok(fastbp_cmd("train", workdir / "species.csv", "--compare-reference", "--epochs", 4, "--layers", "8",
                        "--dtype", "float64", "--out", "m.npz", cwd=tmp_path))
    assert "fastbp.reference (plain NumPy), the same data, settings and seed:" in out
    assert len(re.findall(r"^epoch 4/4 - loss", out, re.MULTILINE)) == 2  # both progress displays
    fast = re.search(r"^fastbp:\s+(\S+) s, validation accuracy (\S+) \(a warm-up fit compiled", out, re.MULTILINE)
    ref = re.search(r"^fastbp.reference:\s+(\S+) s, validation accuracy (\S+)", out, re.MULTILINE)
    speed = re.search(r"^speed-up: (\S+)x \(the same 4 epochs", out, re.MULTILINE)
    assert fast and ref and speed, out
    assert fast.group(2) == ref.group(2)  # the same numbers: the same predictions
    assert float(fast.group(1)) > 0 and float(ref.group(1)) > 0 and float(speed.group(1)) > 0


def readme_ci_commands():
    """The commands README.md marks for CI (``<!-- ci -->``), read as ``.ci/run`` reads them."""
    commands, want, inside = [], False, False
    for line in (ROOT / "README.md").read_text().splitlines():
        if "<!-- ci -->" in line:
            want = True
        elif want and line.startswith("```"):
            inside = not inside
            want = inside
        elif inside and line.strip():
            commands.append(line)
    return commands


def test_the_readme_main_command_leaves_no_file_in_the_checkout(tmp_path):
    """README's main command, which CI runs from the repository's root, saves the model outside
    the checkout and says where.  Run as CI runs it, but with a no-op ``pip`` (this checkout is
    on PYTHONPATH) and ``fastbp`` as ``python -m fastbp ... --epochs 1``; ``mktemp -d`` makes
    its directory under ``tmp_path`` (TMPDIR)."""
    command = next(c for c in readme_ci_commands() if "fastbp train" in c)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "fastbp").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fastbp "$@" --epochs 1\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = dict(ENV, PATH=os.pathsep.join([str(bin_dir), os.environ["PATH"]]), TMPDIR=str(tmp_path))
    before = set(os.listdir(ROOT))
    try:
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
        created = set(os.listdir(ROOT)) - before
    finally:  # a failing run must not leave its file behind either
        for name in set(os.listdir(ROOT)) - before:
            if name == "model.npz":
                os.unlink(ROOT / name)
    out = ok(res)
    assert not created, f"{command!r} left {sorted(created)} in the checkout"
    saved = re.search(r"^saved (\S+) \(the model", out, re.MULTILINE)
    assert saved and os.path.isabs(saved.group(1)) and os.path.exists(saved.group(1)), out
    assert Path(saved.group(1)).resolve().is_relative_to(tmp_path.resolve())


def test_no_ignore_rule_hides_a_file_the_commands_write_by_default():
    """A model or picture left in the checkout (by CI, a test, or a command run from the root)
    must show in ``git status``: ``train``'s default --out and the examples' ones are not
    ignored."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    defaults = ["model.npz"] + [m.group(1) for path in (ROOT / "examples").glob("*.py")
                                for m in re.finditer(r'"--out", default="([^"]+)"', path.read_text())]
    assert len(defaults) >= 3  # the examples' pictures were found
    ignored = subprocess.run(["git", "check-ignore", *defaults], cwd=ROOT, capture_output=True, text=True).stdout
    assert ignored == "", f".gitignore hides {ignored.split()}"


# ------------------------------------------------------------------ mistakes
def _error_files(d):
    """The CSV and model files of the error cases, in ``d``."""
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b,y\n")
    (d / "ragged.csv").write_text("a,b,y\n1,2,x\n3,4\n5,6,y\n")
    (d / "text_cell.csv").write_text("a,b,y\n1,2,x\n3,4,y\n5,five,x\n")
    (d / "empty_cell.csv").write_text("a,b,y\n1,2,x\n3,,y\n")
    (d / "nan_cell.csv").write_text("a,b,y\n1,2,x\n3,inf,y\n")
    (d / "one_class.csv").write_text("a,b,y\n1,2,x\n3,4,x\n")
    (d / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd")
    header, rows = species_data(60)
    write_csv(d / "train.csv", header, rows)
    write_csv(d / "unknown_label.csv", header, rows[:5] + [rows[5][:4] + ["daisy"]])
    write_csv(d / "other_features.csv", ["petal", "sepal", "noise", "colour"], [r[:4] for r in rows])
    write_csv(d / "extra_column.csv", header[:4] + ["id"], [r[:4] + ["1"] for r in rows])
    write_csv(d / "no_target.csv", header[:4], [r[:4] for r in rows])
    write_csv(d / "ids.csv", ["patient", "row_no"] + header, [[f"P{i}", str(i)] + r for i, r in enumerate(rows)])
    # 'diagnosis' after the first 12 columns, where the list of them is cut short
    write_csv(d / "wide.csv", [f"f{j}" for j in range(20)] + ["diagnosis"], [[str(j) for j in range(21)]] * 3)
    for name, kwargs in [("tiny_feature", dict(feature=1e-320)), ("tiny_target", dict(target=1e-320)),
                         ("big_feature", dict(feature=1e200)), ("small_feature", dict(feature=1e-50))]:
        write_csv(d / f"{name}.csv", *magnitude_data(n=40, **kwargs))
    np.savez(d / "foreign.npz", weights=np.ones(3))
    small_model(fastbp).save(d / "plain.npz")  # a fastbp model, but without the command's extras


# (name, arguments, what the one line must say); "model.npz" is trained from train.csv first
ERRORS = [
    ("missing file", ["train", "nope.csv"], "nope.csv: no such file"),
    ("missing target", ["train", "train.csv", "--target", "colour"],
     "no column 'colour' for --target; the file has 'petal', 'sepal', 'noise', 'const', 'species'"),
    ("target in another case", ["train", "wide.csv", "--target", "Diagnosis"],
     "wide.csv: no column 'Diagnosis' for --target; did you mean 'diagnosis'? the file has 'f0', 'f1',"),
    ("misspelt target", ["train", "train.csv", "--target", "specis"],
     "no column 'specis' for --target; did you mean 'species'? the file has 'petal'"),
    ("non-numeric cell", ["train", "text_cell.csv"], "text_cell.csv, line 4 (data row 3): feature column 'b' holds "
                                                     "'five', which is not a number"),
    ("string id as a feature", ["train", "ids.csv"], "feature column 'patient' holds 'P0', which is not a number "
                                                     "(--id COL or --drop COL,... leave a column out of the features)"),
    ("unknown --id", ["train", "ids.csv", "--id", "Patient"],
     "ids.csv: no column 'Patient' for --id; did you mean 'patient'? the file has 'patient', 'row_no',"),
    ("unknown --drop", ["train", "ids.csv", "--id", "patient", "--drop", "noise,rowno"],
     "ids.csv: no column 'rowno' for --drop; did you mean 'row_no'? the file has"),
    ("empty --drop name", ["train", "ids.csv", "--drop", "row_no,"], "--drop 'row_no,': an empty column name"),
    ("--id also dropped", ["train", "ids.csv", "--id", "patient", "--drop", "row_no", "--drop", "patient"],
     "column 'patient' is given to both --drop and --id"),
    ("--target also dropped", ["train", "ids.csv", "--target", "noise", "--drop", "patient,noise"],
     "column 'noise' is both --target and given to --drop"),
    ("default target as --id", ["train", "ids.csv", "--id", "species"],
     "column 'species' is both the target (the last column by default; --target names another) and given to --id"),
    ("no feature left", ["train", "ids.csv", "--id", "patient", "--drop", "row_no,petal,sepal,noise,const"],
     "ids.csv: no feature column is left: the file has 'patient', 'row_no', 'petal', 'sepal', 'noise', 'const', "
     "'species', the target is 'species', --id 'patient', --drop 'row_no', 'petal', 'sepal', 'noise', 'const'"),
    ("--drop without a file", ["train", "--drop", "pixel_0_0"], "--drop and --id name columns of a CSV file"),
    ("unknown predict --id", ["predict", "model.npz", "ids.csv", "--id", "row"],
     "ids.csv: no column 'row' for --id; did you mean 'row_no'? the file has"),
    ("predict --id target", ["predict", "model.npz", "ids.csv", "--id", "species"],
     "--id 'species' is the model's target, the column predict writes"),
    ("empty cell", ["train", "empty_cell.csv"], "empty_cell.csv, line 3 (data row 2): feature column 'b' is empty"),
    ("infinite cell", ["train", "nan_cell.csv"], "nan_cell.csv, line 3 (data row 2): feature column 'b' holds 'inf'"),
    ("empty file", ["train", "empty.csv"], "empty.csv: the file is empty"),
    ("header only", ["train", "header_only.csv"], "header_only.csv: the header row is followed by no data rows"),
    ("ragged row", ["train", "ragged.csv"], "ragged.csv, line 3: 2 fields, but the header has 3"),
    ("binary file", ["train", "binary.csv"], "binary.csv: not a UTF-8 text file"),
    ("one class", ["train", "one_class.csv"], "holds one class only (x)"),
    ("regression of labels", ["train", "train.csv", "--task", "regression"],
     "train.csv, line 2 (data row 1): target column 'species' holds"),
    ("bad option", ["train", "train.csv", "--layers", "64,x"], "argument --layers: '64,x' is not a comma-separated"),
    ("unknown command", ["fit"], "invalid choice: 'fit'"),
    ("output directory missing", ["train", "train.csv", "--out", "no/such/dir/m.npz"], "does not exist"),
    ("unknown label", ["evaluate", "model.npz", "unknown_label.csv"],
     "unknown_label.csv, line 7 (data row 6): label 'daisy' in 'species' was not seen in training (the model knows "
     "'setosa', 'versicolor', 'virginica')"),
    ("evaluate without target", ["evaluate", "model.npz", "no_target.csv"],
     "no_target.csv: no target column 'species' (the model's target); the file has 'petal', 'sepal'"),
    ("features differ", ["predict", "model.npz", "other_features.csv"],
     "other_features.csv: the model's feature column 'const' is missing"),
    ("extra feature column", ["predict", "model.npz", "extra_column.csv"],
     "extra_column.csv: column 'id' is not among the model's features ('petal', 'sepal', 'noise', 'const') nor "
     "its target 'species'; --id COL passes an id column through"),
    ("CSV as model", ["predict", "train.csv", "train.csv"], "train.csv: not a fastbp model file"),
    ("foreign npz as model", ["predict", "foreign.npz", "train.csv"], "foreign.npz: not a fastbp model file"),
    ("plain model", ["predict", "plain.npz", "train.csv"], "plain.npz: a fastbp model, but not one written by"),
    ("missing model", ["evaluate", "nope.npz", "train.csv"], "nope.npz: no such file"),
    ("feature of ~1e-320", ["train", "tiny_feature.csv", "--out", "refused.npz"],
     "feature column 'a': its standard deviation, "),
    ("feature of ~1e-320 (the rest)", ["train", "tiny_feature.csv", "--out", "refused.npz"],
     ", is below float64's smallest normal number (2.23e-308), too little to standardise by; rescale the column "
     "in the file"),
    ("target of ~1e-320", ["train", "tiny_target.csv", "--out", "refused.npz"],
     "target column 'y': its standard deviation, "),
    ("raw target of ~1e-320", ["train", "tiny_target.csv", "--no-standardize", "--out", "refused.npz"],
     "target column 'y' varies, but its values are all 0 in float32, the model's dtype (whose subnormal numbers "
     "fastbp's kernels flush to 0): the model could learn nothing from it; rescale the column in the file"),
    ("raw feature of ~1e200", ["train", "big_feature.csv", "--no-standardize", "--out", "refused.npz"],
     "feature column 'a' holds 2.0"),
    ("raw feature of ~1e-50", ["train", "small_feature.csv", "--no-standardize", "--out", "refused.npz"],
     "feature column 'a' varies, but its values are all 0 in float32, the model's dtype (whose subnormal numbers "
     "fastbp's kernels flush to 0): the model could learn nothing from it; drop --no-standardize, or use --dtype "
     "float64, or rescale the column in the file"),
]


# The mistakes the command must report in a subprocess too (the rest in-process: each
# process pays for importing Numba and loading the kernels).
IN_A_SUBPROCESS = ["missing file", "missing target", "non-numeric cell", "empty file", "ragged row", "unknown label",
                   "CSV as model", "features differ", "bad option"]


@pytest.fixture(scope="module")
def error_dir(tmp_path_factory):
    """The files of ``ERRORS``, with ``model.npz`` trained on ``train.csv`` (in-process)."""
    d = tmp_path_factory.mktemp("errors")
    _error_files(d)
    run_main("train", d / "train.csv", "--epochs", 2, "--layers", 4, "--quiet", "--out", d / "model.npz")
    return d


@pytest.fixture(scope="module")
def error_runs(error_dir):
    """The cases of ``IN_A_SUBPROCESS`` run once, four processes at a time: name -> CompletedProcess."""
    cases = {name: args for name, args, _ in ERRORS if name in IN_A_SUBPROCESS}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(fastbp_cmd, *args, cwd=error_dir) for name, args in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def check_one_line_error(returncode, stdout, stderr, message):
    assert returncode == 2, (stdout, stderr)
    assert "Traceback" not in stderr and stdout == ""
    lines = without_notices(stderr)
    assert len(lines) == 1 and lines[0].startswith(("fastbp: error: ", "fastbp train: error: ")), stderr
    assert message in lines[0]


@pytest.mark.parametrize("name, args, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_a_mistake_is_one_line_on_stderr_and_exit_status_2(error_dir, monkeypatch, capsys, name, args, message):
    monkeypatch.chdir(error_dir)
    try:
        status = cli.main(args)
    except SystemExit as exc:  # argparse's own exit (after our one-line message)
        status = exc.code
    captured = capsys.readouterr()
    check_one_line_error(status, captured.out, captured.err, message)


@pytest.mark.slow
@pytest.mark.parametrize("name", IN_A_SUBPROCESS)
def test_a_mistake_in_a_subprocess(error_runs, name):
    res = error_runs[name]
    check_one_line_error(res.returncode, res.stdout, res.stderr, next(m for n, _, m in ERRORS if n == name))


def test_divergence_is_one_line_and_exit_status_1(workdir, tmp_path, capsys):
    status = cli.main(["train", str(workdir / "species.csv"), "--optimizer", "sgd", "--lr", "1e30", "--epochs", "3",
                       "--quiet", "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert status == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("fastbp: error: training diverged: ") and "Lower the learning rate" in err
    assert not (tmp_path / "m.npz").exists()


def test_a_warning_is_one_line(workdir, tmp_path, capsys):
    """predict's warning about outputs that overflow (raw inputs near float32's largest value)."""
    model = str(tmp_path / "m.npz")
    assert cli.main(["train", str(workdir / "species.csv"), "--no-standardize", "--epochs", "1", "--layers", "4",
                     "--quiet", "--out", model]) == 0
    write_csv(tmp_path / "huge.csv", ["petal", "sepal", "noise", "const"], [["3e38", "3e38", "3e38", "3e38"]] * 3)
    capsys.readouterr()
    assert cli.main(["predict", model, str(tmp_path / "huge.csv")]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"fastbp: warning: predict: \d+ outputs are NaN or inf: the inputs' "
                                            r"scale overflows float32 inside the network; scale the inputs", lines[0])
    assert captured.out.startswith("species\n")


@pytest.mark.slow
def test_ctrl_c_exits_with_130_without_a_traceback(workdir, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "fastbp", "train", str(workdir / "species.csv"), "--epochs",
                             "1000000", "--layers", "8", "--out", "m.npz"], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        while "compiled" not in seen:  # the warm-up is over: training has started
            line = proc.stdout.readline()
            assert line, proc.communicate(timeout=60)
            seen += line
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and without_notices(stderr.strip()) == ["fastbp: interrupted"]
    assert "epoch" in stdout and not (tmp_path / "m.npz").exists()


@pytest.mark.slow
def test_predict_into_a_pipe_closed_early_exits_quietly_with_status_0(workdir, tmp_path):
    """``fastbp predict ... | head -1``: far more output than a pipe's buffer, so the writes
    after ``head`` exits fail (EPIPE); the command stops with status 0 and says nothing."""
    model = tmp_path / "m.npz"
    run_main("train", workdir / "species.csv", "--epochs", 1, "--layers", 4, "--quiet", "--out", model)
    header, rows = species_data()
    big = write_csv(tmp_path / "big.csv", header, rows * 100)  # 30,000 rows: ~1.5 MB of --proba output
    producer = subprocess.Popen([sys.executable, "-m", "fastbp", "predict", str(model), str(big), "--proba"],
                                cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-n", "1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # head holds the only read end: the pipe breaks when it exits
    first, _ = head.communicate(timeout=300)
    stderr = producer.stderr.read().decode()
    producer.stderr.close()
    assert producer.wait(timeout=300) == 0, stderr
    assert without_notices(stderr) == [] and first == b"species,p_setosa,p_versicolor,p_virginica\n"


@pytest.mark.parametrize("quiet", [False, True])
def test_a_cold_compile_is_announced_unless_quiet(workdir, tmp_path, caplog, monkeypatch, quiet):
    """The library's notice reaches the command line's user (on stderr, by logging's last
    resort, when nothing configured logging) before the compile; ``--quiet`` silences it, and
    the logger's level is as it was afterwards."""
    import logging
    import fastbp.model
    ready = fastbp.model._ready

    def compiling_ready(dispatcher, args):  # what Numba broadcasts before a cold compile
        from numba.core import event
        with event.trigger_event("numba:compile", data=dict(dispatcher=dispatcher, return_type=None,
                                                              args=tuple(dispatcher.typeof_pyval(a) for a in args))):
            pass
        return ready(dispatcher, args)

    run_main("train", workdir / "species.csv", "--epochs", 1, "--layers", 4, "--out", tmp_path / "m.npz")  # warm
    monkeypatch.setattr(fastbp.model, "_ready", compiling_ready)
    caplog.set_level(logging.WARNING, logger="fastbp")
    caplog.clear()
    run_main("train", workdir / "species.csv", "--epochs", 1, "--layers", 4, "--out", tmp_path / "m.npz",
             *(["--quiet"] if quiet else []))
    notices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fastbp: compiling ")]
    if quiet:
        assert notices == []
    else:
        assert notices and all(n.startswith("fastbp: compiling the training kernels for float32 (first use")
                               for n in notices), notices
    assert logging.getLogger("fastbp").level == logging.WARNING

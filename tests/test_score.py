"""``MLP.predict_proba`` and ``MLP.score`` for scikit-learn hands: ``predict`` under
scikit-learn's name for classifiers (and absent for regression models), and scikit-learn's
accuracy / R², checked against ``sklearn.metrics``.  Both implementations."""

import warnings

import numpy as np
import pytest

metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test dependency: pip install 'fastbp[test]'")


def data(rng, n=40, features=3):
    return rng.normal(size=(n, features))


@pytest.mark.parametrize("loss, sizes", [("cross_entropy", [3, 8, 4]), ("binary_cross_entropy", [3, 8, 1]),
                                         ("binary_cross_entropy", [3, 8, 3])])
def test_predict_proba_is_predict_for_classifiers(fb, rng, loss, sizes):
    model = fb.MLP(sizes, loss=loss, seed=0)
    X = data(rng)
    np.testing.assert_array_equal(model.predict_proba(X), model.predict(X))
    assert "predict" in fb.MLP.predict_proba.__doc__


@pytest.mark.parametrize("output", ["linear", "sigmoid", "softmax"])
def test_a_regression_model_has_no_predict_proba(fb, output):
    model = fb.MLP([3, 4, 2], loss="mse", output=output)
    assert not hasattr(model, "predict_proba")  # as scikit-learn's regressors: duck typing sees none
    with pytest.raises(AttributeError, match="loss 'mse' has no predict_proba: its outputs are regression values"):
        model.predict_proba(np.zeros((2, 3)))


def test_score_of_a_softmax_classifier_is_scikit_learns_accuracy(fb, rng):
    model = fb.MLP([3, 8, 4], seed=1)
    X, labels = data(rng), rng.integers(0, 4, 40)
    model.fit(X, labels, epochs=3, batch_size=8)
    expected = metrics.accuracy_score(labels, model.predict_classes(X))
    assert 0 < expected < 1, "all right or all wrong: the test shows little"
    assert model.score(X, labels) == expected
    assert model.score(X, labels.reshape(-1, 1)) == expected
    assert model.score(X, np.eye(4)[labels]) == expected  # one-hot rows
    assert model.score(X, np.eye(4)[labels] * 0.7 + 0.075) == expected  # probability rows: their largest entry
    assert type(model.score(X, labels)) is float


def test_score_of_sigmoid_outputs_is_scikit_learns_subset_accuracy(fb, rng):
    model = fb.MLP([3, 8, 3], loss="binary_cross_entropy", seed=2)
    X, Y = data(rng), rng.integers(0, 2, (40, 3))
    model.fit(X, Y, epochs=3, batch_size=8)
    expected = metrics.accuracy_score(Y, (model.predict(X) > 0.5).astype(int))
    # (evaluate's accuracy counts outputs; scikit-learn's counts samples with every label right)
    assert expected != model.evaluate(X, Y)["accuracy"]
    assert model.score(X, Y) == expected
    one = fb.MLP([3, 8, 1], loss="binary_cross_entropy", seed=2)  # one output: the two accuracies agree
    assert one.score(X, Y[:, 0]) == metrics.accuracy_score(Y[:, 0], one.predict_classes(X)) == \
        one.evaluate(X, Y[:, 0])["accuracy"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("outputs", [1, 3])
def test_score_of_a_regression_model_is_scikit_learns_r2(fb, rng, dtype, outputs):
    model = fb.MLP([3, 8, outputs], loss="mse", dtype=dtype, seed=3)
    X = data(rng)
    Y = X @ rng.normal(size=(3, outputs)) * [1.0, 10.0, 0.1][:outputs] + 0.3  # outputs of unlike scales
    model.fit(X, Y, epochs=5, batch_size=8)
    P = model.predict(X)
    expected = metrics.r2_score(Y, P)  # multioutput="uniform_average"
    assert expected != metrics.r2_score(Y, P, multioutput="variance_weighted") or outputs == 1
    assert model.score(X, Y) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    if outputs == 1:
        assert model.score(X, Y[:, 0]) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_r2_follows_scikit_learns_conventions_for_constant_targets(fb, rng):
    model = fb.MLP([3, 4, 2], loss="mse", dtype="float64")
    model.set_weights([(np.zeros_like(W), np.full_like(b, 2.0)) for W, b in model.get_weights()])
    X = data(rng, n=10)
    assert np.all(model.predict(X) == 2.0)
    varying = rng.normal(size=10)
    for Y, score in [(np.full((10, 2), 2.0), 1.0),  # constant targets predicted exactly: 1.0 (not nan)
                     (np.full((10, 2), 5.0), 0.0),  # constant targets missed: 0.0 (not -inf)
                     (np.column_stack([np.full(10, 5.0), varying]), None),
                     (np.column_stack([np.full(10, 2.0), varying]), None)]:
        expected = metrics.r2_score(Y, model.predict(X))
        assert score is None or expected == score
        assert model.score(X, Y) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_r2_of_one_sample_is_nan_with_a_warning(fb):
    model = fb.MLP([3, 4, 1], loss="mse")
    with pytest.warns(RuntimeWarning, match="fewer than two samples") as record:
        assert np.isnan(model.score(np.zeros((1, 3)), [1.0]))
    assert record[0].filename == __file__  # the warning points at the call to score


def test_score_warns_when_outputs_overflow(fb):
    model = fb.MLP([2, 8, 3], dtype="float32", seed=0)
    with pytest.warns(RuntimeWarning, match="score: .*outputs are NaN or inf") as record:
        with np.errstate(over="ignore", invalid="ignore"):  # (the reference's NumPy says it too)
            model.score(np.full((2, 2), 3e38, dtype=np.float32), [0, 1])
    assert [w.filename for w in record if "score:" in str(w.message)] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.score(np.ones((2, 2), dtype=np.float32), [0, 1])


def test_score_checks_its_targets_as_fit_does(fb):
    model = fb.MLP([3, 4, 3])
    with pytest.raises(ValueError, match=r"class label 3 is outside \[0, 3\)"):
        model.score(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="X has 2 samples but y has 3"):
        model.score(np.zeros((2, 3)), [0, 1, 2])

"""The reference must stay textbook-honest: it is the baseline every speed-up divides by, so
it may not do work the textbook model does not (a weight gradient computed twice was once
there, inflating every "x faster than the reference" figure)."""

import numpy as np
import pytest

import fastbp.reference as R


class _CountingArray(np.ndarray):
    """An ndarray that counts the matrix products it takes part in (``@``, ``np.matmul``,
    ``np.dot``) and passes itself on to every result, so all arrays derived from the input
    are counted too."""

    products = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.matmul:
            _CountingArray.products += 1
        inputs = [np.asarray(x) if isinstance(x, _CountingArray) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(o) if isinstance(o, _CountingArray) else o for o in kwargs["out"])
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if isinstance(result, np.ndarray) and result.dtype.kind == "f":
            return result.view(_CountingArray)
        return result

    def __array_function__(self, func, types, args, kwargs):
        if func is np.dot:
            _CountingArray.products += 1
        result = super().__array_function__(func, tuple(t for t in types if t is not _CountingArray) or (np.ndarray,),
                                            args, kwargs)
        if isinstance(result, np.ndarray) and result.dtype.kind == "f" and not isinstance(result, _CountingArray):
            return result.view(_CountingArray)
        return result


def _products_per_step(model, X, T, call):
    _CountingArray.products = 0
    call(X.view(_CountingArray), T)
    return _CountingArray.products


CASES = [([5, 3], 0.0, False)] + [(sizes, dropout, batch_norm)
                                   for sizes in ([5, 8, 3], [5, 8, 6, 3])
                                   for dropout in (0.0, 0.25)
                                   for batch_norm in (False, True, [True] + [False] * (len(sizes) - 3))]


@pytest.mark.parametrize("sizes,dropout,batch_norm", CASES)
def test_one_step_takes_exactly_the_textbook_matrix_products(sizes, dropout, batch_norm):
    """Per step, L forward products, L weight gradients and L - 1 input gradients: 3L - 1."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((11, sizes[0]))
    model = R.MLP(sizes, dtype="float64", seed=0, dropout=dropout, batch_norm=batch_norm)
    T = model._check_y(rng.integers(0, sizes[-1], 11), 11)
    L = len(sizes) - 1
    assert _products_per_step(model, X, T, model._loss_and_grads) == 3 * L - 1
    assert _products_per_step(model, X, T, lambda X, T: model._train_step(X, T)) == 3 * L - 1
    # and the counting itself sees the forward pass (or the equalities above prove nothing)
    assert _products_per_step(model, X, T, lambda X, T: model._forward(X)) == L


def test_counting_catches_a_duplicated_product():
    """The counter is not blind: a step that computes one weight gradient twice is seen."""
    rng = np.random.default_rng(1)
    model = R.MLP([4, 6, 3], dtype="float64", seed=0, batch_norm=True)
    X = rng.standard_normal((9, 4))
    T = model._check_y(rng.integers(0, 3, 9), 9)

    def twice(X, T):
        model._loss_and_grads(X, T)
        X @ model._W[0]

    assert _products_per_step(model, X, T, twice) == 3 * 2 - 1 + 1

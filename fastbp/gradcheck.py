"""``gradcheck``: a model's analytic gradient against central finite differences of its loss
(both implementations; ``fastbp.gradcheck`` and ``fastbp.reference.gradcheck``)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ._base import BaseMLP

__all__ = ["gradcheck"]


def gradcheck(model: BaseMLP, X: ArrayLike, y: ArrayLike, eps: float = 1e-6) -> list[dict[str, float]]:
    """Compare ``model.loss_and_grads`` with central finite differences of the loss.

    Returns one dict per layer, ``{"W": max relative error, "b": ...}`` (and ``gamma``,
    ``beta`` for batch-normalised layers),
    the error of each entry taken relative to the largest gradient entry of that array
    (so entries near zero do not blow up the ratio).  Use a float64 model: in float32 the
    differences are dominated by rounding.  Costs two loss evaluations per parameter.
    The model is left exactly as it was.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    X, T = model._check_data(X, y)
    with model._exclusive():
        model._loss_and_grads(X, T)
        analytic = model._grads.copy()
        original = model._params.copy()
        numeric = np.empty_like(analytic, dtype=np.float64)
        try:
            for i in range(original.size):
                model._params[i] = original[i] + eps
                up = float(model._loss_and_grads(X, T))
                model._params[i] = original[i] - eps
                down = float(model._loss_and_grads(X, T))
                model._params[i] = original[i]
                numeric[i] = (up - down) / (2 * eps)
        finally:
            model._params[...] = original
            model._loss_and_grads(X, T)
    report = []
    for l in range(model.n_layers):
        errors = {}
        for name, lo, hi in _blocks(model, l):
            a, num = analytic[lo:hi].astype(np.float64), numeric[lo:hi]
            scale = max(np.abs(a).max(), np.abs(num).max(), 1e-12)
            errors[name] = float(np.abs(a - num).max() / scale)
        report.append(errors)
    return report


def _blocks(model, l):
    """Layer ``l``'s parameter arrays as ``(name, start, end)`` in the flat parameter buffer."""
    w, b, n_in, n_out, g = (int(model._layers[l][k]) for k in ("w", "b", "n_in", "n_out", "gamma"))
    blocks = [("W", w, w + n_in * n_out), ("b", b, b + n_out)]
    if g >= 0:
        blocks += [("gamma", g, g + n_out), ("beta", g + n_out, g + 2 * n_out)]
    return blocks

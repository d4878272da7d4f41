"""The scores ``MLP.score`` reports, as scikit-learn defines them (``accuracy_score`` and
``r2_score`` with its defaults), in NumPy: ``import fastbp`` never imports scikit-learn.

Free functions of the network's outputs ``P`` and the checked targets ``T`` (both
``(n, k)``, as ``validation.check_y`` returns the targets), computed in float64.
"""

import warnings

import numpy as np


def accuracy(P, T, loss):
    """The share of samples predicted right (scikit-learn's ``accuracy_score``): the largest
    output is the target's class (``cross_entropy``; one-hot or probability rows name the
    class of their largest entry), or every output is on its target's side of 0.5
    (``binary_cross_entropy``: for several outputs a sample counts only when all its labels
    are right, scikit-learn's subset accuracy for multi-label targets)."""
    if loss == "cross_entropy":
        right = P.argmax(axis=1) == T.argmax(axis=1)
    else:
        right = ((P > 0.5) == (T > 0.5)).all(axis=1)
    return float(np.mean(right))


def r2(P, T, stacklevel=2):
    """The coefficient of determination ``1 - SSE / SST`` per output, averaged uniformly over
    the outputs (scikit-learn's ``r2_score``, ``multioutput="uniform_average"``,
    ``force_finite=True``): a constant target column scores 1.0 when predicted exactly and
    0.0 otherwise (not -inf); fewer than two samples score nan, with a ``RuntimeWarning``
    (``stacklevel`` as ``warnings.warn``'s, counted from the caller of this function)."""
    if T.shape[0] < 2:
        warnings.warn("R² is not defined for fewer than two samples: the score is nan", RuntimeWarning,
                      stacklevel=stacklevel + 1)
        return float("nan")
    P, T = P.astype(np.float64, copy=False), T.astype(np.float64, copy=False)
    sse = ((T - P) ** 2).sum(axis=0)
    sst = ((T - T.mean(axis=0)) ** 2).sum(axis=0)
    scores = np.ones(T.shape[1])
    defined = (sse != 0) & (sst != 0)
    scores[defined] = 1 - sse[defined] / sst[defined]
    scores[(sse != 0) & (sst == 0)] = 0.0
    return float(scores.mean())

"""Output activation fused with the loss: one pass over the logits per row.

Given the logits ``Z`` (without bias), ``output_loss`` adds the bias ``b``, overwrites ``Z``
with the output ``P``, writes ``D = dLoss/dZ`` and returns the batch's mean loss (accumulated in
float64).  Definitions are PyTorch's with mean reduction:

* ``cross_entropy`` + softmax: ``mean_i sum_j -t_ij log softmax(z_i)_j`` from the logits by
  log-sum-exp; ``D = (P * sum_j t_ij - T) / n`` (``(P - T) / n`` for one-hot rows).
* ``binary_cross_entropy`` + sigmoid: ``mean_ij max(z,0) - z t + log1p(exp(-|z|))``;
  ``D = (P - T) / (n k)``.
* ``mse`` + any output: ``mean_ij (p - t)^2``; ``G = 2 (P - T) / (n k)`` times the output's
  Jacobian (identity, ``P (1 - P)``, or softmax's ``P * (G - sum_j G P)``).
"""

import numpy as np

from .activations import add_bias_max, exp_shifted, sigmoid_scalar
from .codes import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, SIGMOID, SOFTMAX
from .common import jit


@jit
def output_loss(Z, D, b, T, out_code, loss_code):
    """Fused output activation + loss + output delta; returns the mean loss of the batch."""
    m, k = Z.shape
    dt = Z.dtype.type
    acc = 0.0
    if loss_code == CROSS_ENTROPY:
        n_t = dt(m)
        for i in range(m):
            z, t, d = Z[i], T[i], D[i]
            mx = add_bias_max(z, b)
            tsum = 0.0
            tz = 0.0
            for j in range(k):
                tsum += t[j]
                tz += t[j] * z[j]
            total = exp_shifted(z, mx)  # one exp per element: z <- exp(z - max)
            acc += (mx + np.log(total)) * tsum - tz
            tot = dt(total)
            ts = dt(tsum)
            for j in range(k):
                p = z[j] / tot
                z[j] = p
                d[j] = (p * ts - t[j]) / n_t
        return acc / m
    nk = dt(m * k)
    one = dt(1.0)
    if loss_code == BINARY_CROSS_ENTROPY:
        for i in range(m):
            z, t, d = Z[i], T[i], D[i]
            for j in range(k):
                v = z[j] + b[j]
                e = np.exp(-abs(v))  # shared by the loss and the sigmoid
                acc += max(v, 0.0) - v * t[j] + np.log1p(e)
                p = one / (one + e) if v >= 0 else e / (one + e)
                z[j] = p
                d[j] = (p - t[j]) / nk
        return acc / (m * k)
    # mean squared error
    for i in range(m):
        z, t, d = Z[i], T[i], D[i]
        if out_code == SOFTMAX:
            tot = dt(exp_shifted(z, add_bias_max(z, b)))
            gp = 0.0
            for j in range(k):
                p = z[j] / tot
                z[j] = p
                e = p - t[j]
                acc += e * e
                d[j] = (e + e) / nk
                gp += d[j] * p
            gpt = dt(gp)
            for j in range(k):
                d[j] = z[j] * (d[j] - gpt)
        else:
            for j in range(k):
                v = z[j] + b[j]
                p = sigmoid_scalar(v) if out_code == SIGMOID else v
                z[j] = p
                e = p - t[j]
                acc += e * e
                g = (e + e) / nk
                d[j] = g * p * (one - p) if out_code == SIGMOID else g
    return acc / (m * k)

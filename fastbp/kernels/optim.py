"""Fused optimizer updates over ONE flat parameter buffer, gradient clipping and the L2 term.

Every update is a single pass over ``params``, ``grads`` and the optimizer's state rows
(``slots[0]``, ``slots[1]``), elementwise and independent per parameter, so the result does
not depend on how the loop is split.  ``hyper`` holds the optimizer's hyper-parameters as
float64 (see ``fastbp.optimizers``); scalars are cast to the buffer's dtype before the loop,
as NumPy does for Python floats, so float32 arithmetic matches the reference.
The rules are PyTorch's (``torch.optim``); ``t`` is the 1-based step count.
"""

import math

import numpy as np

from .common import ADAGRAD_CODE, ADAM_CODE, ADAMW_CODE, RMSPROP_CODE, SGD_CODE, jit


@jit
def sgd_update(p, g, v, lr, momentum, nesterov):
    dt = p.dtype.type
    lr_, mu = dt(lr), dt(momentum)
    if momentum == 0.0:
        for i in range(p.size):
            p[i] -= lr_ * g[i]
    elif nesterov:
        for i in range(p.size):
            v[i] = mu * v[i] + g[i]
            p[i] -= lr_ * (g[i] + mu * v[i])
    else:
        for i in range(p.size):
            v[i] = mu * v[i] + g[i]
            p[i] -= lr_ * v[i]


@jit
def rmsprop_update(p, g, s, lr, rho, eps):
    dt = p.dtype.type
    lr_, rho_, c, eps_ = dt(lr), dt(rho), dt(1.0 - rho), dt(eps)
    for i in range(p.size):
        s[i] = rho_ * s[i] + c * g[i] * g[i]
        p[i] -= lr_ * g[i] / (np.sqrt(s[i]) + eps_)


@jit
def adam_update(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """Adam (``weight_decay == 0``) or AdamW (decoupled decay of every parameter first)."""
    dt = p.dtype.type
    b1, c1, b2, c2, eps_ = dt(beta1), dt(1.0 - beta1), dt(beta2), dt(1.0 - beta2), dt(eps)
    step_size = dt(lr / (1.0 - beta1 ** t))
    bc2_sqrt = dt(math.sqrt(1.0 - beta2 ** t))
    decay = dt(1.0 - lr * weight_decay)
    if weight_decay != 0.0:
        for i in range(p.size):
            p[i] *= decay
    for i in range(p.size):
        m[i] = b1 * m[i] + c1 * g[i]
        v[i] = b2 * v[i] + c2 * g[i] * g[i]
        p[i] -= step_size * m[i] / (np.sqrt(v[i]) / bc2_sqrt + eps_)


@jit
def adagrad_update(p, g, s, lr, eps):
    dt = p.dtype.type
    lr_, eps_ = dt(lr), dt(eps)
    for i in range(p.size):
        s[i] += g[i] * g[i]
        p[i] -= lr_ * g[i] / (np.sqrt(s[i]) + eps_)


@jit
def optimizer_update(code, params, grads, slots, t, hyper):
    """Dispatch on the optimizer code; ``slots`` has one row per state buffer."""
    if code == SGD_CODE:
        sgd_update(params, grads, slots[0] if slots.shape[0] > 0 else grads, hyper[0], hyper[1], hyper[2] != 0.0)
    elif code == RMSPROP_CODE:
        rmsprop_update(params, grads, slots[0], hyper[0], hyper[1], hyper[2])
    elif code == ADAM_CODE or code == ADAMW_CODE:
        adam_update(params, grads, slots[0], slots[1], t, hyper[0], hyper[1], hyper[2], hyper[3], hyper[4])
    elif code == ADAGRAD_CODE:
        adagrad_update(params, grads, slots[0], hyper[0], hyper[1])


@jit
def sum_squares(x):
    """``sum(x**2)`` accumulated in float64, in order (deterministic)."""
    acc = 0.0
    for i in range(x.size):
        acc += np.float64(x[i]) * np.float64(x[i])
    return acc


@jit
def clip_global_norm(g, max_norm):
    """PyTorch's ``clip_grad_norm_``: scale by ``max_norm / (norm + 1e-6)`` when that is < 1.

    Returns the norm before clipping.
    """
    norm = math.sqrt(sum_squares(g))
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        c = g.dtype.type(coef)
        for i in range(g.size):
            g[i] *= c
    return norm

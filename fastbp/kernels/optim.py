"""Fused optimizer updates over ONE flat parameter buffer, and gradient clipping.

Every update is a single pass over ``params``, the optimizer's state rows (``slots[0]``,
``slots[1]``) and ``grads``, elementwise and independent per parameter, so the result does
not depend on how the loop is split.  ``h`` is the optimizer as a ``codes.Hyper`` (built by
``fastbp.optimizers``); ``lr`` is this step's learning rate (the optimizer's, or a
schedule's).  Scalars are cast to the buffer's dtype before the loop, as NumPy does for
Python floats, so float32 arithmetic matches the reference.
The rules are PyTorch's (``torch.optim``); ``t`` is the 1-based step count.
"""

import math

import numpy as np

from .codes import ADAGRAD, ADAM, ADAMW, RMSPROP, SGD
from .common import jit


@jit
def sgd_update(p, v, g, lr, momentum, nesterov):
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
def rmsprop_update(p, s, g, lr, rho, eps):
    dt = p.dtype.type
    lr_, rho_, c, eps_ = dt(lr), dt(rho), dt(1.0 - rho), dt(eps)
    for i in range(p.size):
        s[i] = rho_ * s[i] + c * g[i] * g[i]
        p[i] -= lr_ * g[i] / (np.sqrt(s[i]) + eps_)


@jit
def adam_update(p, m, v, g, t, lr, beta1, beta2, eps, weight_decay):
    """Adam (``weight_decay == 0``) or AdamW (decoupled decay of every parameter first).

    The bias correction of the second moment is applied as a multiplication by
    ``1 / sqrt(1 - beta2**t)`` (PyTorch divides by its inverse): one division per element
    instead of two, the same value to the last bit or so.
    """
    dt = p.dtype.type
    b1, c1, b2, c2, eps_ = dt(beta1), dt(1.0 - beta1), dt(beta2), dt(1.0 - beta2), dt(eps)
    step_size = dt(lr / (1.0 - beta1 ** t))
    inv_bc2_sqrt = dt(1.0 / math.sqrt(1.0 - beta2 ** t))
    decay = dt(1.0 - lr * weight_decay)
    if weight_decay != 0.0:
        for i in range(p.size):
            p[i] *= decay
    for i in range(p.size):
        mi = b1 * m[i] + c1 * g[i]
        vi = b2 * v[i] + c2 * g[i] * g[i]
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) * inv_bc2_sqrt + eps_)


@jit
def adagrad_update(p, s, g, lr, eps):
    dt = p.dtype.type
    lr_, eps_ = dt(lr), dt(eps)
    for i in range(p.size):
        s[i] += g[i] * g[i]
        p[i] -= lr_ * g[i] / (np.sqrt(s[i]) + eps_)


@jit
def optimizer_update(params, slots, grads, t, lr, h):
    """One step of the optimizer ``h`` over the flat buffers: parameters, state rows
    ``slots`` (``(n_slots, stride)``; each row's first ``grads.size`` entries) and gradient."""
    n = grads.size
    p = params[:n]
    s0 = slots[0][:n] if slots.shape[0] > 0 else grads  # unused rows: any array of the type
    s1 = slots[1][:n] if slots.shape[0] > 1 else grads
    if h.code == SGD:
        sgd_update(p, s0, grads, lr, h.momentum, h.nesterov)
    elif h.code == RMSPROP:
        rmsprop_update(p, s0, grads, lr, h.rho, h.eps)
    elif h.code == ADAM or h.code == ADAMW:
        adam_update(p, s0, s1, grads, t, lr, h.beta1, h.beta2, h.eps, h.weight_decay)
    elif h.code == ADAGRAD:
        adagrad_update(p, s0, grads, lr, h.eps)


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

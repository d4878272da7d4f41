"""Fused optimizer updates over ONE flat parameter buffer, the check that an update stays
finite, and gradient clipping.

Every update is a single pass over ``params``, the optimizer's state rows (``slots[0]``,
``slots[1]``) and ``grads``, elementwise and independent per parameter, so the result does
not depend on how the loop is split.  ``h`` is the optimizer as a ``codes.Hyper`` (built by
``fastbp.optimizers``); ``lr`` is this step's learning rate (the optimizer's, or a
schedule's).  Scalars are cast to the buffer's dtype before the loop, as NumPy does for
Python floats, so float32 arithmetic matches the reference.
The rules are PyTorch's (``torch.optim``); ``t`` is the 1-based step count.

Each rule is written once, as a function of one element (``*_rule``: old parameter, state
and gradient in, new ones out).  ``optimizer_update`` stores what the rule returns;
``update_nonfinite`` only tells whether any new parameter or state would be NaN or inf, so
that a training step can refuse an update before writing any of it (a huge learning
rate, an ``eps`` that is 0 in the dtype, a second moment that overflows): the same function
of the same inputs, so the check and the update cannot disagree.
"""

import math

import numpy as np
from numba import prange

from .blas import chunks_for
from .codes import ADAGRAD, ADAM, ADAMW, RMSPROP, SGD
from .common import by_threshold, float_from_bits, flush_denormals, jit, restore_fp_control


@jit
def nonfinite(x):
    """Whether ``x`` is NaN or inf.  ``x - x`` is 0 for every finite ``x`` and NaN otherwise;
    the checks pass ``(a - a) + (b - b)``, NaN if either is not finite (never an overflow)."""
    d = x - x
    return d != d


# ---------------------------------------------------------------- the rules
@jit
def sgd_rule(p, v, g, lr, mu, nesterov):
    """SGD with momentum ``mu`` (dampening 0): ``(p, v)`` after one step (``mu == 0``:
    plain SGD, ``v`` unused)."""
    if mu == 0:
        return p - lr * g, v
    v = mu * v + g
    if nesterov:
        return p - lr * (g + mu * v), v
    return p - lr * v, v


@jit
def rmsprop_rule(p, s, g, lr, rho, c, eps):
    """RMSprop (``c = 1 - rho``): ``(p, s)`` after one step."""
    s = rho * s + c * g * g
    return p - lr * g / (np.sqrt(s) + eps), s


@jit
def adam_constants(dt, t, lr, beta1, beta2, eps, weight_decay):
    """Adam's per-step scalars in the dtype ``dt``: ``(b1, 1 - b1, b2, 1 - b2, eps, step
    size, 1 / sqrt(1 - b2**t), 1 - lr * weight_decay)``.

    The bias correction of the second moment is a multiplication by
    ``1 / sqrt(1 - beta2**t)`` (PyTorch divides by its inverse): one division per element
    instead of two, the same value to the last bit or so.
    """
    return (dt(beta1), dt(1.0 - beta1), dt(beta2), dt(1.0 - beta2), dt(eps), dt(lr / (1.0 - beta1 ** t)),
            dt(1.0 / math.sqrt(1.0 - beta2 ** t)), dt(1.0 - lr * weight_decay))


@jit
def adam_rule(p, m, v, g, k, decoupled):
    """Adam (AdamW with ``decoupled``: the parameter decays first): ``(p, m, v)`` after one
    step; ``k`` are ``adam_constants``."""
    b1, c1, b2, c2, eps, step_size, inv_bc2_sqrt, decay = k
    if decoupled:
        p = p * decay
    m = b1 * m + c1 * g
    v = b2 * v + c2 * g * g
    return p - step_size * m / (np.sqrt(v) * inv_bc2_sqrt + eps), m, v


@jit
def adagrad_rule(p, s, g, lr, eps):
    """AdaGrad: ``(p, s)`` after one step."""
    s = s + g * g
    return p - lr * g / (np.sqrt(s) + eps), s


# --------------------------------------------------------- the update loops
@jit
def sgd_update(p, v, g, lr, momentum, nesterov):
    dt = p.dtype.type
    lr_, mu = dt(lr), dt(momentum)
    for i in range(p.size):
        p[i], vi = sgd_rule(p[i], v[i], g[i], lr_, mu, nesterov)
        if momentum != 0.0:  # without momentum ``v`` may be any array (``optimizer_update``)
            v[i] = vi


@jit
def rmsprop_update(p, s, g, lr, rho, eps):
    dt = p.dtype.type
    lr_, rho_, c, eps_ = dt(lr), dt(rho), dt(1.0 - rho), dt(eps)
    for i in range(p.size):
        p[i], s[i] = rmsprop_rule(p[i], s[i], g[i], lr_, rho_, c, eps_)


@jit
def adam_update(p, m, v, g, t, lr, beta1, beta2, eps, weight_decay):
    """Adam (``weight_decay == 0``) or AdamW (decoupled decay of every parameter first)."""
    k = adam_constants(p.dtype.type, t, lr, beta1, beta2, eps, weight_decay)
    decoupled = weight_decay != 0.0
    for i in range(p.size):
        p[i], m[i], v[i] = adam_rule(p[i], m[i], v[i], g[i], k, decoupled)


@jit
def adagrad_update(p, s, g, lr, eps):
    dt = p.dtype.type
    lr_, eps_ = dt(lr), dt(eps)
    for i in range(p.size):
        p[i], s[i] = adagrad_rule(p[i], s[i], g[i], lr_, eps_)


@jit
def state_rows(slots, grads, lo, hi):
    """The optimizer state rows' entries ``lo:hi`` (rows the optimizer does not have: any
    array of the type, here the gradient's)."""
    s0 = slots[0][lo:hi] if slots.shape[0] > 0 else grads[lo:hi]
    s1 = slots[1][lo:hi] if slots.shape[0] > 1 else grads[lo:hi]
    return s0, s1


@jit(inline="always")
def update_range(params, slots, grads, lo, hi, t, lr, h):
    """One step of the optimizer ``h`` on the entries ``lo:hi`` of the flat buffers."""
    p, g = params[lo:hi], grads[lo:hi]
    s0, s1 = state_rows(slots, grads, lo, hi)
    if h.code == SGD:
        sgd_update(p, s0, g, lr, h.momentum, h.nesterov)
    elif h.code == RMSPROP:
        rmsprop_update(p, s0, g, lr, h.rho, h.eps)
    elif h.code == ADAM or h.code == ADAMW:
        adam_update(p, s0, s1, g, t, lr, h.beta1, h.beta2, h.eps, h.weight_decay)
    elif h.code == ADAGRAD:
        adagrad_update(p, s0, g, lr, h.eps)


@jit(parallel=True)
def _update_chunks(params, slots, grads, t, lr, h, chunks):
    n = grads.size
    for c in prange(chunks):
        fp = flush_denormals()  # each thread: the kernels' floating-point mode
        update_range(params, slots, grads, n * c // chunks, n * (c + 1) // chunks, t, lr, h)
        restore_fp_control(fp)


def optimizer_update(params, slots, grads, t, lr, h, par_elements):
    """One step of the optimizer ``h`` over the flat buffers: parameters, state rows
    ``slots`` (``(n_slots, stride)``; each row's first ``grads.size`` entries) and gradient;
    on all threads from ``par_elements`` parameters on (None: never; compiled code only,
    ``common.by_threshold``)."""


def _optimizer_update_split(params, slots, grads, t, lr, h, par_elements):
    n = grads.size
    chunks = chunks_for(n, par_elements)
    if chunks > 1:
        _update_chunks(params, slots, grads, t, lr, h, chunks)
    else:
        update_range(params, slots, grads, 0, n, t, lr, h)


def _optimizer_update_whole(params, slots, grads, t, lr, h, par_elements):
    update_range(params, slots, grads, 0, grads.size, t, lr, h)


by_threshold(optimizer_update, _optimizer_update_whole, _optimizer_update_split)


@jit
def optimizer_step(params, slots, grads, t, lr, h, par_elements):
    """``optimizer_update`` as a call of its own (from Python: tests and benchmarks)."""
    optimizer_update(params, slots, grads, t, lr, h, par_elements)


# ---------------------------------------------------------- the check loops
@jit
def finite_limit(x):
    """The largest magnitude the update checks let a new parameter or state entry of ``x``'s
    dtype reach: half the dtype's largest value, room for the rule's few roundings."""
    return np.finfo(x.dtype).max / 2


@jit
def update_bounded(params, slots, grads, lo, hi, t, lr, h):
    """True if every entry ``lo:hi`` of the update is certainly finite, by a bound that needs
    no square root or division (False: maybe not; ``update_nonfinite`` then runs the rule).

    RMSprop, Adam and AdaGrad divide by ``sqrt(state) + eps >= eps`` (``eps`` is a normal
    number: ``validation`` refuses others), so a new parameter is at most
    ``|p| + lr / eps * |numerator|`` in size: with the new state computed exactly (cheap), in
    ``[0, max / 2]``, and that bound at most ``max / 2``, the few roundings of the rule cannot
    reach inf.  A NaN anywhere fails the comparisons, so it falls through to the exact check.
    SGD has no division: its exact check is as cheap.  Measured: README, "Faults and bad
    input".
    """
    p, g = params[lo:hi], grads[lo:hi]
    s0, s1 = state_rows(slots, grads, lo, hi)
    dt = p.dtype.type
    limit = dt(finite_limit(p))
    zero = dt(0)
    safe = True
    if h.code == RMSPROP or h.code == ADAGRAD:
        rho, c = (dt(h.rho), dt(1.0 - h.rho)) if h.code == RMSPROP else (dt(1.0), dt(1.0))
        scale = dt(lr / h.eps)
        for i in range(p.size):
            si = rho * s0[i] + c * g[i] * g[i]
            safe &= (zero <= si) & (si <= limit) & (abs(p[i]) + scale * abs(g[i]) <= limit)
    elif h.code == ADAM or h.code == ADAMW:
        b1, c1, b2, c2, _, _, _, decay = adam_constants(dt, t, lr, h.beta1, h.beta2, h.eps, h.weight_decay)
        decoupled = h.weight_decay != 0.0
        scale = dt(lr / (1.0 - h.beta1 ** t) / h.eps)
        for i in range(p.size):
            mi = b1 * s0[i] + c1 * g[i]
            vi = b2 * s1[i] + c2 * g[i] * g[i]
            pi = p[i] * decay if decoupled else p[i]
            safe &= (zero <= vi) & (vi <= limit) & (abs(pi) + scale * abs(mi) <= limit)
    else:
        safe = False
    return safe


@jit
def update_nonfinite(params, slots, grads, lo, hi, t, lr, h):
    """Whether any of the entries ``lo:hi`` would have a NaN or inf parameter or optimizer
    state after ``optimizer_update(params, slots, grads, t, lr, h)``; writes nothing.

    First the cheap bound (``update_bounded``: almost always conclusive); if it is not, the
    rule itself, element by element: the check and the update cannot disagree.
    """
    if update_bounded(params, slots, grads, lo, hi, t, lr, h):
        return False
    p, g = params[lo:hi], grads[lo:hi]
    s0, s1 = state_rows(slots, grads, lo, hi)
    dt = p.dtype.type
    lr_ = dt(lr)
    bad = False  # a bool: an integer count would halve the loop's vector width
    if h.code == SGD:
        mu = dt(h.momentum)
        for i in range(p.size):
            pi, vi = sgd_rule(p[i], s0[i], g[i], lr_, mu, h.nesterov)
            bad |= nonfinite((pi - pi) + (vi - vi))
    elif h.code == RMSPROP:
        rho, c, eps = dt(h.rho), dt(1.0 - h.rho), dt(h.eps)
        for i in range(p.size):
            pi, si = rmsprop_rule(p[i], s0[i], g[i], lr_, rho, c, eps)
            bad |= nonfinite((pi - pi) + (si - si))
    elif h.code == ADAM or h.code == ADAMW:
        k = adam_constants(dt, t, lr, h.beta1, h.beta2, h.eps, h.weight_decay)
        decoupled = h.weight_decay != 0.0
        for i in range(p.size):
            pi, mi, vi = adam_rule(p[i], s0[i], s1[i], g[i], k, decoupled)
            bad |= nonfinite((pi - pi) + (mi - mi) + (vi - vi))
    elif h.code == ADAGRAD:
        eps = dt(h.eps)
        for i in range(p.size):
            pi, si = adagrad_rule(p[i], s0[i], g[i], lr_, eps)
            bad |= nonfinite((pi - pi) + (si - si))
    return bad


@jit(parallel=True)
def _nonfinite_chunks(flags, params, slots, grads, lo, hi, t, lr, h, chunks):
    n = hi - lo
    for c in prange(chunks):
        fp = flush_denormals()
        flags[c] = update_nonfinite(params, slots, grads, lo + n * c // chunks, lo + n * (c + 1) // chunks, t, lr, h)
        restore_fp_control(fp)
    bad = False
    for c in range(chunks):
        bad = bad or flags[c] != 0
    return bad


def update_nonfinite_split(flags, params, slots, grads, lo, hi, t, lr, h, par_elements):
    """``update_nonfinite`` on all threads from ``par_elements`` entries on (each chunk's answer
    left in ``flags``, one integer slot per thread: a ``prange`` reduction would allocate;
    None: never; compiled code only, ``common.by_threshold``)."""


def _update_nonfinite_split(flags, params, slots, grads, lo, hi, t, lr, h, par_elements):
    chunks = min(chunks_for(hi - lo, par_elements), flags.size)
    if chunks > 1:
        return _nonfinite_chunks(flags, params, slots, grads, lo, hi, t, lr, h, chunks)
    return update_nonfinite(params, slots, grads, lo, hi, t, lr, h)


def _update_nonfinite_whole(flags, params, slots, grads, lo, hi, t, lr, h, par_elements):
    return update_nonfinite(params, slots, grads, lo, hi, t, lr, h)


by_threshold(update_nonfinite_split, _update_nonfinite_whole, _update_nonfinite_split)


# ------------------------------------------- the check in O(1): bounds carried from step to step
# Within one compiled call nothing but the optimizer writes the parameters and the state, so
# bounds on their magnitudes, measured once at the start of the call, can be carried from
# step to step by the rules' own arithmetic: given the largest gradient entry (measured by
# the gradient check, which reads the gradient anyway), the largest parameter and state entry
# after the step are bounded by a few scalar operations.  When those bounds pass the test
# ``update_bounded`` applies entry by entry (at most half the dtype's largest value), no entry
# can overflow, and the update check's pass over every parameter, both state rows and the
# gradient is skipped.  When they do not, the exact check runs, as before, and the call stops
# carrying bounds.  (README, "Faults and bad input"; measured there.)
UNMEASURED, MEASURED, GIVEN_UP = 0.0, 1.0, 2.0  # the last field of a bounds tuple


@jit
def _magnitude_bits(b, mask):
    m = b.dtype.type(mask)
    largest = b.dtype.type(0)
    signs = b.dtype.type(0)
    for i in range(b.size):
        v = b[i]
        largest = max(largest, v & m)
        signs |= v
    return np.int64(largest), signs < 0


@jit
def magnitude_bits(x):
    """``(bits, signed)``: the bit pattern of the largest ``|x_i|`` as an integer, and whether
    any entry has its sign bit set.  Non-negative floats order as their bit patterns do, and
    NaN / inf lie above every finite number (``inf_bits``), so one integer max (which
    vectorises, where a float max with NaN would not) both finds the largest magnitude and
    tells whether any entry is not finite."""
    if x.itemsize == 4:
        return _magnitude_bits(x.view(np.int32), 0x7FFFFFFF)
    return _magnitude_bits(x.view(np.int64), 0x7FFFFFFFFFFFFFFF)


@jit
def inf_bits(x):
    """The bit pattern of inf in ``x``'s dtype: magnitudes at or above it are not finite."""
    return np.int64(0x7F800000) if x.itemsize == 4 else np.int64(0x7FF0000000000000)


@jit
def from_bits(bits, x):
    """The magnitude ``bits`` (``magnitude_bits``) as a float64."""
    return np.float64(float_from_bits(bits, x.dtype.type(0)))


@jit
def state_bounds(params, slots, n, h):
    """Bounds to start a call with: ``(max |p|, max |state row 0|, max |state row 1|,
    MEASURED)`` over the first ``n`` entries; ``GIVEN_UP`` where a state row the rules keep
    non-negative (RMSprop's and AdaGrad's sums, Adam's second moment) has a negative entry
    (only a file could bring one: the exact check then decides, every step)."""
    pb, _ = magnitude_bits(params[:n])
    s0, s1, neg0, neg1 = np.int64(0), np.int64(0), False, False
    if slots.shape[0] > 0:
        s0, neg0 = magnitude_bits(slots[0][:n])
    if slots.shape[0] > 1:
        s1, neg1 = magnitude_bits(slots[1][:n])
    signed = neg0 if (h.code == RMSPROP or h.code == ADAGRAD) else neg1 if (h.code == ADAM or h.code == ADAMW) \
        else False
    mode = GIVEN_UP if signed else MEASURED
    return from_bits(pb, params), from_bits(s0, params), from_bits(s1, params), mode


@jit
def bounds_after(bounds, gmax, t, lr, h, limit):
    """``(bounds after step t, safe)``: with ``gmax`` the largest gradient magnitude, the
    bounds on ``|p|`` and the state rows after the update, and whether they pass
    ``update_bounded``'s test (``limit``: ``finite_limit``).  Float64
    arithmetic; an overflow gives inf, which fails the test (then the exact check runs)."""
    pb, s0b, s1b, mode = bounds
    if mode != MEASURED:
        return bounds, False
    p, s0, s1 = pb, s0b, s1b
    if h.code == SGD:
        mu = abs(h.momentum)
        if h.momentum == 0.0:
            p = pb + lr * gmax
        else:
            s0 = mu * s0b + gmax
            p = pb + lr * ((gmax + mu * s0) if h.nesterov else s0)
        safe = p <= limit and s0 <= limit
    elif h.code == RMSPROP or h.code == ADAGRAD:
        rho, c = (h.rho, 1.0 - h.rho) if h.code == RMSPROP else (1.0, 1.0)
        s0 = rho * s0b + c * gmax * gmax
        p = pb + lr / h.eps * gmax
        safe = s0 <= limit and p <= limit
    elif h.code == ADAM or h.code == ADAMW:
        s0 = h.beta1 * s0b + (1.0 - h.beta1) * gmax
        s1 = h.beta2 * s1b + (1.0 - h.beta2) * gmax * gmax
        decay = abs(1.0 - lr * h.weight_decay)
        p = pb * decay + lr / (1.0 - h.beta1 ** t) / h.eps * s0
        safe = s1 <= limit and p <= limit
    else:
        safe = False
    # The rules run in the model's dtype: each result may exceed the exact value by a few
    # roundings (< 2^-21 relative in float32); growing the bounds by 2^-20 a step keeps them
    # upper bounds however many steps they are carried.
    grow = 1.0 + 2.0 ** -20
    return (p * grow, s0 * grow, s1 * grow, MEASURED), safe


# ----------------------------------------------------------------- clipping
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

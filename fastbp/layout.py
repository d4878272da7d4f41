"""Where the parameters live: the offsets of each layer's block in the one flat parameter
buffer (``layer_layout``), the initial weights (``init_weights``) and the aligned
allocation of parameters, gradients and optimizer state (``carve``, ``allocate_state``).

Storage (identical in both implementations): all parameters live in ONE flat buffer ordered
``W1, b1, W2, b2, ...`` (each ``W`` row-major, shaped ``(n_in, n_out)``; a batch-normalised
layer's ``gamma, beta`` follow its ``b``), then batch norm's running averages.  Gradients and
optimizer state (``n_slots`` rows of the same length) use the same layout; all three are
regions of one allocation (``allocate_state``).
"""

import math

import numpy as np


def layer_layout(sizes, batch_norm=None):
    """Offsets in the flat parameter buffer: per layer ``W``, ``b`` and (batch-normalised
    layers, else -1) ``gamma`` followed by ``beta``; the end of each layer's block; the
    number of trainable parameters ``P``; and per layer the offset of its running mean
    (followed by its running variance) in the ``R`` entries stored after them."""
    batch_norm = batch_norm or [False] * (len(sizes) - 1)
    w_off, b_off, g_off, end, off = [], [], [], [], 0
    for (n_in, n_out), bn in zip(zip(sizes[:-1], sizes[1:]), batch_norm):
        w_off.append(off)
        off += n_in * n_out
        b_off.append(off)
        off += n_out
        g_off.append(off if bn else -1)
        off += 2 * n_out if bn else 0
        end.append(off)
    r_off, r = [], off
    for n_out, bn in zip(sizes[1:], batch_norm):
        r_off.append(r if bn else -1)
        r += 2 * n_out if bn else 0
    return w_off, b_off, g_off, end, off, r_off, r - off


def init_weights(rng, sizes, init, dtype):
    """Initial (W, b) per layer, drawn in float64 from ``rng`` and cast to ``dtype``.

    ``he``: N(0, 2/n_in); ``xavier`` (Glorot normal): N(0, 2/(n_in + n_out));
    ``normal``: N(0, 0.01**2).  Biases are zero.
    """
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        if init == "he":
            std = math.sqrt(2.0 / n_in)
        elif init == "xavier":
            std = math.sqrt(2.0 / (n_in + n_out))
        else:
            std = 0.01
        W = rng.standard_normal((n_in, n_out)) * std
        out.append((W.astype(dtype), np.zeros(n_out, dtype=dtype)))
    return out


def carve(lengths, dtype):
    """Zeroed 1-D arrays of the given lengths, carved from ONE 64-byte aligned allocation.

    Region ``r`` starts ``r`` KiB past a page boundary (modulo 4 KiB): were the regions all
    page-aligned, loops streaming through several of them at once (an optimizer's
    ``p[i], g[i], m[i], v[i]``; a layer's activations and deltas) would alias modulo 4 KiB —
    Adam over W3's 269k parameters measured 243 us that way and 77 us this way.
    """
    itemsize = np.dtype(dtype).itemsize
    page, kib = 4096 // itemsize, 1024 // itemsize
    starts, end = [], 0
    for r, n in enumerate(lengths):
        start = -(-end // page) * page + (r % 4) * kib
        starts.append(start)
        end = start + n
    raw = np.zeros(end + 4096 // itemsize, dtype=dtype)
    base = (-raw.ctypes.data % 4096) // itemsize  # page-align region 0
    return [raw[base + a:base + a + n] for a, n in zip(starts, lengths)]


def allocate_state(n_params, n_extra, n_slots, dtype):
    """Parameters, gradients and optimizer state: ``(params, grads, slots)`` from ``carve``.

    ``params`` holds the ``n_params`` trainable parameters followed by ``n_extra`` entries
    of state that is not trained (batch norm's running averages); ``grads`` the first
    ``n_params``.  ``slots`` is C-contiguous ``(n_slots, stride)``; its rows hold the state
    in their first ``n_params`` entries and are ``stride`` apart, ``stride`` being
    ``n_params`` rounded up to a page plus one KiB, for the same reason as in ``carve``.
    """
    itemsize = np.dtype(dtype).itemsize
    stride = -(-n_params // (4096 // itemsize)) * (4096 // itemsize) + 1024 // itemsize
    params, grads, slots = carve([n_params + n_extra, n_params, n_slots * stride], dtype)
    return params, grads, slots.reshape(n_slots, stride)


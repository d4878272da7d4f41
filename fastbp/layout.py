"""Where everything lives: the layer table, the allocation of parameters, gradients and
optimizer state, the workspace, and the initial weights.

Storage (identical in both implementations): all parameters live in ONE flat buffer ordered
``W1, b1[, gamma1, beta1], W2, ...`` (each ``W`` row-major, shaped ``(n_in, n_out)``), then
batch norm's running averages (not trained).  Gradients and optimizer state (``n_slots``
rows of the same length) use the same layout; all three are regions of one allocation
(``allocate_state``).  The layer table (``codes.LAYER`` records, one per layer) is the one
description of that layout and of each layer's columns in the workspace: both
implementations build their named views from it, the kernels read it directly.
"""

import math

import numba
import numpy as np

from .kernels.codes import BN_STATS, LAYER, Workspace
from .validation import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS


def layer_table(sizes, codes, batch_norm, dropout):
    """The layer table for layer widths ``sizes``, activation ``codes`` (one per layer, the
    output activation last), per hidden layer ``batch_norm`` flags and ``dropout`` rates.

    Returns ``(layers, n_params, n_running)``: the table, the number of trainable parameters
    and the number of running-average entries stored after them in ``params``.
    """
    L = len(sizes) - 1
    bn = list(batch_norm) + [False]  # the output layer is never normalised nor dropped
    layers = np.zeros(L, dtype=LAYER)
    off = ws = bn_col = 0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lay = layers[l]
        lay["n_in"], lay["n_out"], lay["act"] = n_in, n_out, codes[l]
        lay["w"], lay["b"] = off, off + n_in * n_out
        off += n_in * n_out + n_out
        lay["gamma"] = off if bn[l] else -1
        off += 2 * n_out if bn[l] else 0
        lay["end"] = off
        lay["ws"], ws = ws, ws + n_out
        lay["bn"] = bn_col if bn[l] else -1
        bn_col += n_out if bn[l] else 0
        lay["dropout"] = dropout[l] if l < L - 1 else 0.0
    running = off
    for l in range(L):
        layers[l]["running"] = running if bn[l] else -1
        running += 2 * sizes[l + 1] if bn[l] else 0
    return layers, off, running - off


def model_layer_table(sizes, activations, output, batch_norm, dropout):
    """``layer_table`` for a model's checked configuration (activation names, not codes)."""
    codes = [HIDDEN_ACTIVATIONS[a] for a in activations] + [OUTPUT_ACTIVATIONS[output]]
    return layer_table(sizes, codes, batch_norm, dropout)


def state_views(layers, flat):
    """The model state in ``flat`` (a parameter buffer followed by its running averages) as
    views by name, layer by layer (``get_state``'s names): ``W{l}`` (``n_in x n_out``),
    ``b{l}``, and for a batch-normalised layer ``gamma{l}``, ``beta{l}``,
    ``running_mean{l}``, ``running_var{l}``.  Together they cover all of ``flat``."""
    views = {}
    for l, lay in enumerate(layers):
        w, b, n_in, n_out, gamma, running = (int(lay[k]) for k in ("w", "b", "n_in", "n_out", "gamma", "running"))
        views[f"W{l}"], views[f"b{l}"] = flat[w:w + n_in * n_out].reshape(n_in, n_out), flat[b:b + n_out]
        if gamma >= 0:
            views[f"gamma{l}"], views[f"beta{l}"] = flat[gamma:gamma + n_out], flat[gamma + n_out:gamma + 2 * n_out]
            views[f"running_mean{l}"] = flat[running:running + n_out]
            views[f"running_var{l}"] = flat[running + n_out:running + 2 * n_out]
    return views


def workspace_widths(layers):
    """``(width, bn_width)``: the columns of every layer's rows in the workspace, and of the
    batch-normalised layers' (``make_workspace`` takes them; computed once per model)."""
    return int(layers["n_out"].sum()), int(layers["n_out"][layers["bn"] >= 0].sum())


def make_workspace(widths, sizes, rows, dtype):
    """A ``Workspace`` for batches of up to ``rows`` rows, carved from one allocation;
    ``widths`` from ``workspace_widths``.

    ``acts`` is followed by batch norm's ``xhat`` and ``stats`` in the same region, then come
    ``deltas`` and the gathered batch ``xb`` / ``tb`` (see ``carve`` for the offsets).
    """
    width, bn_width = widths
    acts_size = rows * (width + bn_width) + BN_STATS * bn_width
    acts, deltas, xb, tb = carve([acts_size, rows * width, rows * sizes[0], rows * sizes[-1]], dtype)
    return Workspace(acts=acts[:rows * width], deltas=deltas, xhat=acts[rows * width:rows * (width + bn_width)],
                     stats=acts[rows * (width + bn_width):], xb=xb, tb=tb, rows=rows,
                     counts=np.zeros(max(1, numba.config.NUMBA_NUM_THREADS), np.int64))


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
    ``p[i], g[i], m[i], v[i]``; a layer's activations and deltas) would alias modulo 4 KiB
    and run several times slower (README, "How it is built").
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

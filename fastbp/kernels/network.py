"""Whole-network kernels over flat buffers: forward, loss + gradients, a training step,
a whole training epoch, and chunked inference.

Layout, shared with ``fastbp._base``:

* ``params`` / ``grads``: one flat buffer each, ``W1, b1, W2, b2, ...``; ``slots`` holds the
  optimizer state, one row per state buffer, in the same layout.
* ``meta``: int64 ``(L, 11)``, one row per layer: ``n_in, n_out, W offset, b offset,
  workspace offset, activation code`` (the last layer's code is the output activation),
  then for batch norm (-1 when the layer has none) ``gamma offset`` (beta follows),
  ``running-mean offset`` (the variance follows; in ``params``, after the trainable ones),
  ``xhat offset`` and ``stats offset`` (both in ``acts``); last, the end of the layer's
  block of parameters.
* ``params`` holds the trainable parameters (``grads.size`` of them) followed by batch
  norm's running averages, which the optimizer does not touch.
* ``acts`` / ``deltas``: the workspace, one flat buffer each; layer ``l`` uses
  ``capacity * n_out`` entries at its workspace offset, of which the first ``m * n_out``
  hold an ``m``-row batch.  ``Xb`` / ``Tb`` receive each gathered mini-batch.
* ``cfg``: float64 ``[leaky slope, l2, clip_norm (0 = off), 5 optimizer hyper-parameters,
  one dropout rate per hidden layer]``.
* ``state``: int64 ``[step, status, bad layer, bad batch, skipped batches, dropout key,
  batches done in the current epoch]``.
  Dropout is applied when a forward pass is given ``step >= 0`` (training), never in inference.

Nothing here allocates: every array is a view into a buffer the caller owns.  The entry
points called from Python flush subnormal numbers to zero for their own duration
(``common.flush_denormals``); ``train_epochs`` also works on borrowed views of its arguments
(``common.borrowed``: no reference counting in the loop).
"""

import numpy as np

from .activations import bias_activation, dropout_backward, dropout_forward
from .batchnorm import batchnorm_backward, batchnorm_forward_infer, batchnorm_forward_train, batchnorm_update_running
from .common import LINEAR, borrowed, flush_denormals, jit, matrix_view, restore_fp_control
from .dense import dense_backward, dense_forward
from .losses import output_loss
from .optim import clip_global_norm, sum_squares, update_range

CFG_SLOPE, CFG_L2, CFG_CLIP, CFG_HYPER, CFG_DROPOUT = 0, 1, 2, 3, 8
STATUS_OK, STATUS_LOSS, STATUS_GRAD = 0, 1, 2
INFERENCE = np.int64(-1)  # the "step" of a forward pass without dropout (typed int64, not a literal)


@jit(inline="always")
def layer_params(flat, meta, l):
    """Views ``(W, b)`` of layer ``l`` in a flat parameter-shaped buffer."""
    n_in, n_out, wo, bo = meta[l, 0], meta[l, 1], meta[l, 2], meta[l, 3]
    return matrix_view(flat, wo, n_in, n_out), flat[bo:bo + n_out]


@jit(inline="always")
def layer_rows(buf, meta, l, m):
    """The ``m``-row view of layer ``l``'s part of a workspace buffer."""
    return matrix_view(buf, meta[l, 4], m, meta[l, 1])


@jit(inline="always")
def bn_xhat(acts, meta, l, m):
    return matrix_view(acts, meta[l, 8], m, meta[l, 1])


@jit(inline="always")
def bn_stats(acts, meta, l):
    off = meta[l, 9]
    return acts[off:off + 3 * meta[l, 1]]


@jit(inline="always")
def forward_hidden(params, X, meta, cfg, acts, key, step):
    """Run the hidden layers on ``X``; returns the last hidden activation (or ``X``).

    With ``step >= 0`` (training) each layer's dropout is applied, mask drawn for ``step``.
    """
    m = X.shape[0]
    A_prev = X
    for l in range(meta.shape[0] - 1):
        W, b = layer_params(params, meta, l)
        A = layer_rows(acts, meta, l, m)
        g, n = meta[l, 6], meta[l, 1]
        if g < 0:
            dense_forward(A_prev, W, b, A, meta[l, 5], cfg[CFG_SLOPE])
        else:  # Z = A_prev @ W (no bias), normalised, scaled; beta added with the activation
            np.dot(A_prev, W, A)
            if step >= 0:
                batchnorm_forward_train(A, params[g:g + n], bn_xhat(acts, meta, l, m), bn_stats(acts, meta, l))
            else:
                r = meta[l, 7]
                batchnorm_forward_infer(A, params[g:g + n], params[r:r + n], params[r + n:r + 2 * n])
            bias_activation(A, params[g + n:g + 2 * n], meta[l, 5], cfg[CFG_SLOPE])
        rate = cfg[CFG_DROPOUT + l]
        if step >= 0 and rate > 0.0:
            dropout_forward(A, rate, key, step, l)
        A_prev = A
    return A_prev


@jit
def l2_term(params, meta, l2):
    """``l2 / 2 * sum_l ||W_l||^2`` (weights only)."""
    if l2 == 0.0:
        return 0.0
    acc = 0.0
    for l in range(meta.shape[0]):
        W, _ = layer_params(params, meta, l)
        acc += sum_squares(W.reshape(W.size))
    return 0.5 * l2 * acc


@jit(inline="always")
def forward_loss(params, X, T, meta, loss_code, cfg, acts, deltas, key, step):
    """Forward pass and fused output loss; leaves the output in ``acts`` and dL/dZ in ``deltas``."""
    m = X.shape[0]
    L = meta.shape[0]
    A_prev = forward_hidden(params, X, meta, cfg, acts, key, step)
    W, b = layer_params(params, meta, L - 1)
    Z = layer_rows(acts, meta, L - 1, m)
    np.dot(A_prev, W, Z)
    return output_loss(Z, b, T, meta[L - 1, 5], loss_code, layer_rows(deltas, meta, L - 1, m))


@jit(inline="always")
def backward_layer(params, grads, X, meta, l, m, cfg, acts, deltas, key, step):
    """Gradients of layer ``l`` from its delta; writes the previous layer's delta (if any)."""
    slope, l2 = cfg[CFG_SLOPE], cfg[CFG_L2]
    W, _ = layer_params(params, meta, l)
    gW, gb = layer_params(grads, meta, l)
    D = layer_rows(deltas, meta, l, m)
    g, n = meta[l, 6], meta[l, 1]
    if g >= 0:  # D: dL/dY in, dL/dZ out
        batchnorm_backward(D, bn_xhat(acts, meta, l, m), bn_stats(acts, meta, l), params[g:g + n],
                           grads[g:g + n], grads[g + n:g + 2 * n])
    # One call site with run-time (not literal) arguments: one compiled specialisation.
    # The first layer passes no gradient down (nobody needs the input's); a dropped-out
    # previous layer gets its mask and derivative from dropout_backward instead.
    A_prev, D_prev, prev_code, rate = X, D, np.int64(LINEAR), 0.0
    if l > 0:
        A_prev, D_prev = layer_rows(acts, meta, l - 1, m), layer_rows(deltas, meta, l - 1, m)
        rate = cfg[CFG_DROPOUT + l - 1]
        if rate == 0.0:
            prev_code = meta[l - 1, 5]
    dense_backward(A_prev, W, D, gW, gb, D_prev, prev_code, slope, l2, l > 0)
    if rate > 0.0:
        dropout_backward(D_prev, A_prev, meta[l - 1, 5], slope, rate, key, step, l - 1)
    if g >= 0:  # a normalised layer has no bias
        gb[:] = 0


@jit
def loss_and_grads(params, grads, X, T, meta, loss_code, cfg, acts, deltas, state):
    """Mean loss (with the L2 term) of the batch ``(X, T)``; writes the gradient into ``grads``.

    Training mode: dropout masks are those of the next step, ``state[0] + 1``.
    """
    fp = flush_denormals()
    m = X.shape[0]
    key, step = state[5], state[0] + 1
    loss = forward_loss(params, X, T, meta, loss_code, cfg, acts, deltas, key, step) \
        + l2_term(params, meta, cfg[CFG_L2])
    for l in range(meta.shape[0] - 1, -1, -1):
        backward_layer(params, grads, X, meta, l, m, cfg, acts, deltas, key, step)
    restore_fp_control(fp)
    return loss


@jit
def count_nonfinite(x):
    """Number of NaN / inf entries (an integer reduction, so the loop vectorises)."""
    bad = 0
    for i in range(x.size):
        bad += (x[i] - x[i]) != 0
    return bad


@jit(inline="always")
def train_batch(params, grads, slots, state, X, T, meta, loss_code, opt_code, cfg, acts, deltas):
    """Forward, backward, optional global-norm clipping and one optimizer update.

    ``state`` is int64 ``[step, status, layer, batch, skipped]``.  If the loss or any
    layer's gradient is NaN or inf, nothing is updated: ``status`` becomes
    ``STATUS_LOSS`` or ``STATUS_GRAD`` and ``layer`` names the layer (the output layer for
    the loss), so the parameters stay the last finite ones.  Otherwise ``step`` is
    incremented and every layer is updated (after clipping the global norm, if asked).
    """
    m = X.shape[0]
    clip = cfg[CFG_CLIP]
    L = meta.shape[0]
    key, step = state[5], state[0] + 1
    loss = forward_loss(params, X, T, meta, loss_code, cfg, acts, deltas, key, step) \
        + l2_term(params, meta, cfg[CFG_L2])
    if not np.isfinite(loss):
        state[1] = STATUS_LOSS
        state[2] = L - 1
        return loss
    for l in range(L - 1, -1, -1):
        backward_layer(params, grads, X, meta, l, m, cfg, acts, deltas, key, step)
        # checked while this layer's gradient is still in cache
        if count_nonfinite(grads[meta[l, 2]:meta[l, 10]]) > 0:
            state[1] = STATUS_GRAD
            state[2] = l
            return loss
    if clip > 0.0:
        clip_global_norm(grads, clip)
    state[0] += 1
    state[1] = STATUS_OK
    update_range(opt_code, params, grads, slots, 0, grads.size, state[0], cfg[CFG_HYPER:])
    for l in range(L - 1):  # batch norm's running averages move with applied steps only
        r, n = meta[l, 7], meta[l, 1]
        if r >= 0:
            batchnorm_update_running(params[r:r + n], params[r + n:r + 2 * n], bn_stats(acts, meta, l), m)
    return loss


@jit
def train_step(params, grads, slots, state, X, T, meta, loss_code, opt_code, cfg, acts, deltas):
    """``train_batch`` as a call of its own (``MLP.train_step``)."""
    fp = flush_denormals()
    loss = train_batch(params, grads, slots, state, X, T, meta, loss_code, opt_code, cfg, acts, deltas)
    restore_fp_control(fp)
    return loss


@jit(inline="always")
def train_epoch(params, grads, slots, state, X, T, perm, batch_size, meta, loss_code, opt_code, cfg,
                acts, deltas, Xb, Tb, skip_nonfinite, rates):
    """One epoch over ``X[perm]`` in mini-batches; returns the sample-weighted mean batch loss.

    ``rates``: one learning rate per mini-batch (a schedule), or empty for the optimizer's.
    A batch whose loss or gradient is not finite is not applied.  With ``skip_nonfinite``
    the epoch goes on (``state[4]`` counts the skipped batches, their samples are left out
    of the mean); otherwise it stops there, with ``state[3]`` the batch's index.
    """
    n, n_in = X.shape
    k = T.shape[1]
    total = 0.0
    counted = 0
    base_lr = cfg[CFG_HYPER]
    state[1] = STATUS_OK
    state[3] = -1
    state[4] = 0
    for b in range((n + batch_size - 1) // batch_size):
        state[6] = b  # progress, read by fit's progress display from another thread
        start = b * batch_size
        m = min(batch_size, n - start)
        xb = matrix_view(Xb, 0, m, n_in)
        tb = matrix_view(Tb, 0, m, k)
        for i in range(m):
            r = perm[start + i]
            for j in range(n_in):
                xb[i, j] = X[r, j]
            for j in range(k):
                tb[i, j] = T[r, j]
        if rates.size > 0:
            cfg[CFG_HYPER] = rates[b]
        loss = train_batch(params, grads, slots, state, xb, tb, meta, loss_code, opt_code, cfg, acts, deltas)
        if state[1] != STATUS_OK:
            state[3] = b
            if not skip_nonfinite:
                break
            state[4] += 1
            continue
        total += loss * m
        counted += m
    cfg[CFG_HYPER] = base_lr
    if counted == 0:
        return np.nan
    return total / counted


@jit
def train_epochs(params, grads, slots, state, X, T, perms, batch_size, meta, loss_code, opt_code, cfg,
                 acts, deltas, Xb, Tb, skip_nonfinite, rates, losses, skipped):
    """``train_epoch`` once per row of ``perms`` (with the same row of ``rates``, whose rows
    may be empty); writes each epoch's loss and skipped-batch count.

    Returns the number of epochs completed: fewer than ``len(perms)`` only when a batch was
    not finite and ``skip_nonfinite`` is off (``state`` then says where).
    """
    fp = flush_denormals()  # for this call only (see common.flush_denormals)
    # Views of borrowed arrays skip the atomic reference counting (see ``borrowed``).
    params, grads, slots, state, X, T, perms = (borrowed(params), borrowed(grads), borrowed(slots),
                                                borrowed(state), borrowed(X), borrowed(T), borrowed(perms))
    meta, cfg, acts, deltas, Xb, Tb, rates = (borrowed(meta), borrowed(cfg), borrowed(acts), borrowed(deltas),
                                              borrowed(Xb), borrowed(Tb), borrowed(rates))
    done = perms.shape[0]
    for e in range(perms.shape[0]):
        losses[e] = train_epoch(params, grads, slots, state, X, T, perms[e], batch_size, meta, loss_code,
                                opt_code, cfg, acts, deltas, Xb, Tb, skip_nonfinite, rates[e])
        skipped[e] = state[4]
        if state[1] != STATUS_OK and not skip_nonfinite:
            done = e
            break
    restore_fp_control(fp)
    return done


@jit
def predict(params, X, meta, cfg, acts, chunk, P):
    """``P <- network(X)``, ``chunk`` rows at a time through the workspace."""
    fp = flush_denormals()
    n = X.shape[0]
    L = meta.shape[0]
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        A_prev = forward_hidden(params, X[start:start + m], meta, cfg, acts, INFERENCE, INFERENCE)
        W, b = layer_params(params, meta, L - 1)
        out = layer_rows(acts, meta, L - 1, m)
        dense_forward(A_prev, W, b, out, meta[L - 1, 5], cfg[CFG_SLOPE])
        P[start:start + m] = out
    restore_fp_control(fp)


@jit
def evaluate(params, X, T, meta, loss_code, cfg, acts, deltas, chunk, P):
    """Mean loss (with the L2 term) over ``(X, T)``, ``chunk`` rows at a time; output into ``P``."""
    fp = flush_denormals()
    n = X.shape[0]
    L = meta.shape[0]
    total = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        total += forward_loss(params, X[start:start + m], T[start:start + m], meta, loss_code,
                              cfg, acts, deltas, INFERENCE, INFERENCE) * m
        P[start:start + m] = layer_rows(acts, meta, L - 1, m)
    loss = total / n + l2_term(params, meta, cfg[CFG_L2])
    restore_fp_control(fp)
    return loss

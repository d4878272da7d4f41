"""Whole-network kernels over flat buffers: forward, loss + gradients, a training step, a
whole chunk of training epochs, and chunked inference.

The structures (``codes``): ``net`` is a ``Network`` (parameters, gradients, optimizer
state, the layer table ``layers`` of ``LAYER`` records), ``ws`` a ``Workspace`` (scratch
for batches of up to ``ws.rows`` rows), ``state`` a one-element ``STATE`` array (step,
status, ...), ``cfg`` a ``Config`` (loss code, leaky slope, l2, clip_norm), ``h`` a
``Hyper`` (the optimizer).  Arguments come in one order everywhere: what the kernel
writes first (``losses``, ``P``), then the model (``net``, ``state``), the workspace, the
data (``X``, ``T``, ...), the configuration.

Entry points (called from Python): ``loss_and_grads``, ``train_epochs`` (also a single
training step), ``batch_gradients`` and ``apply_gradients`` (a training step in two halves,
for data-parallel training), ``infer`` (prediction and evaluation).  They take ``net``, ``ws``, ``cfg`` and ``h`` as plain tuples
(the fields in order) and name them on entry (``named``): Numba's dispatcher types a plain
tuple on its fast path and a named tuple on a slow Python path, which made every call from
Python several microseconds slower (README, "How it is built").  Each flushes subnormal
numbers to zero for its own duration (``common.flush_denormals``); ``train_epochs`` also
works on borrowed views of its arguments (``common.borrowed``: no reference counting in the
loop).  The helpers they share are
inlined into them (``inline="always"``: one compiled function per entry point, and no
re-optimisation of every level's callees).

Dropout is applied when a forward pass is given ``step >= 0`` (training), never in
inference.  Nothing here allocates: every array is a view into a buffer the caller owns.
Large products and elementwise passes run on all of Numba's threads (``cfg.par_product``,
``cfg.par_elements``, ``cfg.blocks``; see ``dense``, ``optim`` and ``blas``); the entry points
themselves are serial code that starts those parallel loops.
"""

import numpy as np
from numba import prange

from .batchnorm import (batchnorm_backward, batchnorm_forward_infer, batchnorm_forward_train, batchnorm_update_running,
                        running_nonfinite)
from .codes import (BINARY_CROSS_ENTROPY, BN_STATS, CROSS_ENTROPY, LINEAR, PRODUCT_ONLY, STATUS_GRAD, STATUS_LOSS, STATUS_OK, STATUS_UPDATE, Config, Hyper,
                    Network, Workspace)
from .activations import bias_activation
from .common import borrowed, by_threshold, flush_denormals, jit, matrix_view, restore_fp_control
from .blas import chunks_for
from .dense import dense_backward, dense_forward, row_blocks
from .dropout import dropout_backward, dropout_forward
from .losses import output_loss
from .optim import (GIVEN_UP, UNMEASURED, bounds_after, clip_global_norm, finite_limit, from_bits, inf_bits, magnitude_bits,
                    optimizer_update, state_bounds, sum_squares, update_nonfinite_split)

# Typed int64 scalars, not literals: a literal argument would compile its own specialisation.
INFERENCE = np.int64(-1)  # the "step" of a forward pass without dropout
_LINEAR = np.int64(LINEAR)
_PRODUCT_ONLY = np.int64(PRODUCT_ONLY)


# ------------------------------------------------------------------------- names
@jit(inline="always")
def named(net, ws, cfg):
    """``Network``, ``Workspace`` and ``Config`` from the plain tuples an entry point takes."""
    return Network(*net), Workspace(*ws), Config(*cfg)


# ------------------------------------------------------------------------- views
@jit(inline="always")
def layer_weights(flat, lay):
    """Views ``(W, b)`` of layer ``lay`` in a flat parameter-shaped buffer."""
    return matrix_view(flat, lay.w, lay.n_in, lay.n_out), flat[lay.b:lay.b + lay.n_out]


@jit(inline="always")
def layer_rows(buf, ws, lay, m):
    """The ``m``-row view of layer ``lay``'s block of a workspace buffer (``acts``, ``deltas``)."""
    return matrix_view(buf, ws.rows * lay.ws, m, lay.n_out)


@jit(inline="always")
def bn_buffers(ws, lay, m):
    """Batch norm's ``xhat`` (``m`` rows) and batch ``stats`` of layer ``lay``."""
    n = lay.n_out
    return matrix_view(ws.xhat, ws.rows * lay.bn, m, n), ws.stats[BN_STATS * lay.bn:BN_STATS * (lay.bn + n)]


@jit(inline="always")
def running_buffers(net, ws, lay, m):
    """Batch norm's running mean and variance of layer ``lay`` (views of ``net.params``) and
    the batch ``stats`` of ``m`` rows they move towards."""
    r, n = lay.running, lay.n_out
    _, stats = bn_buffers(ws, lay, m)
    return net.params[r:r + n], net.params[r + n:r + 2 * n], stats


# ------------------------------------------------------------------------ forward
@jit(inline="always")
def layer_forward(A, A_prev, net, ws, l, cfg, key, step, row0, loss_follows):
    """The forward pass of layer ``l``: ``A <- act(bn(A_prev @ W) + b)``, then dropout.

    A batch-normalised layer (``gamma >= 0``) has no bias: the product is normalised
    (batch statistics when training, ``step >= 0``; running averages otherwise), scaled by
    gamma, and beta is added with the activation.  With ``loss_follows`` (the output layer
    in training and evaluation) only the product is computed: ``output_loss`` adds the bias
    and applies the output activation, fused with the loss.  With ``step >= 0`` the layer's
    dropout mask for that step is applied.
    """
    lay = net.layers[l]
    params = net.params
    W, b = layer_weights(params, lay)
    code = lay.act
    if lay.gamma >= 0 or loss_follows:
        code = _PRODUCT_ONLY
    dense_forward(A, A_prev, W, b, code, cfg.slope, cfg.par_product, cfg.par_elements, cfg.blocks)
    g, n = lay.gamma, lay.n_out
    if g >= 0:
        m = A.shape[0]
        if step >= 0:
            xhat, stats = bn_buffers(ws, lay, m)
            batchnorm_forward_train(A, xhat, stats, params[g:g + n])
        else:
            r = lay.running
            batchnorm_forward_infer(A, params[g:g + n], params[r:r + n], params[r + n:r + 2 * n])
        bias_activation(A, params[g + n:g + 2 * n], lay.act, cfg.slope)  # beta is the bias
    if step >= 0 and lay.dropout > 0.0:
        dropout_forward(A, lay.dropout, key, step, l, row0)


@jit(inline="always")
def forward(net, ws, X, cfg, key, step, row0, loss_follows):
    """Every layer on ``X``, into the layers' rows of ``ws.acts`` (the output layer's: only
    the product, when ``loss_follows``)."""
    m = X.shape[0]
    L = net.layers.shape[0]
    A_prev = X
    for l in range(L):
        A = layer_rows(ws.acts, ws, net.layers[l], m)
        layer_forward(A, A_prev, net, ws, l, cfg, key, step, row0, loss_follows and l == L - 1)
        A_prev = A


@jit(inline="always")
def forward_loss(net, ws, X, T, cfg, key, step, row0):
    """Forward pass and fused output loss (without the L2 penalty); leaves the output in
    ``ws.acts`` and dL/dZ of the output layer in ``ws.deltas``."""
    m = X.shape[0]
    lay = net.layers[net.layers.shape[0] - 1]
    forward(net, ws, X, cfg, key, step, row0, True)
    _, b = layer_weights(net.params, lay)
    return output_loss(layer_rows(ws.acts, ws, lay, m), layer_rows(ws.deltas, ws, lay, m), b, T, lay.act, cfg.loss)


# ------------------------------------------------------------------------- L2
@jit
def l2_penalty(net, l2):
    """``l2 / 2 * sum_l ||W_l||^2`` (weights only); its gradient: ``add_l2_gradient``."""
    if l2 == 0.0:
        return 0.0
    acc = 0.0
    for l in range(net.layers.shape[0]):
        W, _ = layer_weights(net.params, net.layers[l])
        acc += sum_squares(W.reshape(W.size))
    return 0.5 * l2 * acc


@jit(inline="always")
def add_l2_gradient(gW, W, l2):
    """``gW <- gW + l2 * W``: the L2 penalty's share of a weight gradient."""
    if l2 == 0.0:
        return
    m, n = gW.shape
    s = gW.dtype.type(l2)
    for i in range(m):
        g = gW[i]
        w = W[i]
        for j in range(n):
            g[j] += s * w[j]


# ----------------------------------------------------------------------- backward
@jit(inline="always")
def layer_backward(net, ws, X, l, m, cfg, key, step, row0):
    """Gradients of layer ``l`` from its delta in ``ws.deltas``; writes the previous layer's
    delta (if any), through its activation and dropout."""
    params, grads = net.params, net.grads
    lay = net.layers[l]
    W, _ = layer_weights(params, lay)
    gW, gb = layer_weights(grads, lay)
    D = layer_rows(ws.deltas, ws, lay, m)
    g, n = lay.gamma, lay.n_out
    if g >= 0:  # D: dL/dY in, dL/dZ out
        xhat, stats = bn_buffers(ws, lay, m)
        batchnorm_backward(D, grads[g:g + n], grads[g + n:g + 2 * n], xhat, stats, params[g:g + n])
    # One call site with run-time (not literal) arguments: one compiled specialisation.
    # The first layer passes no gradient down (nobody needs the input's); a dropped-out
    # previous layer gets its mask and derivative from dropout_backward instead.
    A_prev, D_prev, prev_code, rate = X, D, _LINEAR, 0.0
    if l > 0:
        prev = net.layers[l - 1]
        A_prev, D_prev = layer_rows(ws.acts, ws, prev, m), layer_rows(ws.deltas, ws, prev, m)
        rate = prev.dropout
        if rate == 0.0:
            prev_code = prev.act
    dense_backward(D_prev, gW, gb, D, A_prev, W, prev_code, cfg.slope, l > 0, cfg.par_product,
                   cfg.par_elements, cfg.blocks)
    add_l2_gradient(gW, W, cfg.l2)
    if rate > 0.0:
        dropout_backward(D_prev, A_prev, net.layers[l - 1].act, cfg.slope, rate, key, step, l - 1, row0)
    if g >= 0:  # a normalised layer has no bias
        gb[:] = 0


@jit
def count_nonfinite(x):
    """Number of NaN / inf entries (an integer reduction, so the loop vectorises)."""
    bad = 0
    for i in range(x.size):
        bad += (x[i] - x[i]) != 0
    return bad


@jit
def largest_magnitude(x):
    """The bit pattern of the largest ``|x_i|`` (``optim.magnitude_bits``): at or above
    ``optim.inf_bits(x)`` if any entry is NaN or inf."""
    bits, _ = magnitude_bits(x)
    return bits


@jit(parallel=True)
def _largest_magnitude_chunks(counts, x, chunks):
    n = x.size
    for c in prange(chunks):
        counts[c] = largest_magnitude(x[n * c // chunks:n * (c + 1) // chunks])
    largest = counts[0]
    for c in range(1, chunks):
        largest = max(largest, counts[c])
    return largest


def largest_magnitude_split(counts, x, par_elements):
    """``largest_magnitude`` on all threads from ``par_elements`` entries on (each chunk's
    answer left in ``counts``, one slot per thread; None: never; ``common.by_threshold``)."""


def _largest_magnitude_split(counts, x, par_elements):
    chunks = min(chunks_for(x.size, par_elements), counts.size)
    if chunks > 1:
        return _largest_magnitude_chunks(counts, x, chunks)
    return largest_magnitude(x)


def _largest_magnitude_whole(counts, x, par_elements):
    return largest_magnitude(x)


by_threshold(largest_magnitude_split, _largest_magnitude_whole, _largest_magnitude_split)


@jit
def gather_rows(xb, X, perm, start):
    """``xb[i] <- X[perm[start + i]]`` for every row of ``xb``."""
    m, n = xb.shape
    for i in range(m):
        r = perm[start + i]
        for j in range(n):
            xb[i, j] = X[r, j]


@jit(parallel=True)
def _gather_blocks(xb, X, perm, start, blocks):
    m = xb.shape[0]
    for k in prange(blocks):
        lo = m * k // blocks
        gather_rows(xb[lo:m * (k + 1) // blocks], X, perm, start + lo)


@jit(inline="always")
def gather_together(xb, tb, X, T, perm, start):
    """``gather_rows`` of both in one pass over the rows (the small networks' case)."""
    n_in, k = xb.shape[1], tb.shape[1]
    for i in range(xb.shape[0]):
        r = perm[start + i]
        for j in range(n_in):
            xb[i, j] = X[r, j]
        for j in range(k):
            tb[i, j] = T[r, j]


def gather_batch(xb, tb, X, T, perm, start, par_elements):
    """The mini-batch ``X[perm[start:start + m]]``, ``T[...]`` into ``xb``, ``tb``; the inputs
    on all threads from ``par_elements`` entries on (None: never; ``common.by_threshold``)."""


def _gather_batch_split(xb, tb, X, T, perm, start, par_elements):
    blocks = row_blocks(xb, par_elements)
    if blocks > 1:
        _gather_blocks(xb, X, perm, start, blocks)
        gather_rows(tb, T, perm, start)
    else:
        gather_together(xb, tb, X, T, perm, start)


def _gather_batch_whole(xb, tb, X, T, perm, start, par_elements):
    gather_together(xb, tb, X, T, perm, start)


by_threshold(gather_batch, _gather_batch_whole, _gather_batch_split)


@jit
def copy_into(dst, src):
    """``dst[...] = src`` for two arrays of one shape (an array assignment would also compile
    its shape-mismatch message, over a second of a cold start in string code)."""
    m, n = src.shape
    for i in range(m):
        for j in range(n):
            dst[i, j] = src[i, j]


# ------------------------------------------------------------------ entry points
@jit
def loss_and_grads(net, state, ws, X, T, cfg):
    """Mean loss (with the L2 term) of the batch ``(X, T)``; writes the gradient into
    ``net.grads``.  Training mode: dropout masks are those of the next step."""
    fp = flush_denormals()
    net, ws, cfg = named(net, ws, cfg)
    st = state[0]
    key, step = st.dropout_key, st.step + 1
    loss = forward_loss(net, ws, X, T, cfg, key, step, 0) + l2_penalty(net, cfg.l2)
    for l in range(net.layers.shape[0] - 1, -1, -1):
        layer_backward(net, ws, X, l, X.shape[0], cfg, key, step, 0)
    restore_fp_control(fp)
    return loss


@jit(inline="always")
def running_nonfinite_layer(net, ws, m, l):
    """Whether this step would make a running average of layer ``l`` NaN or inf (batch norm
    only; ``batchnorm.running_nonfinite``)."""
    lay = net.layers[l]
    if lay.running < 0 or m == 0:  # (m == 0: a rank with none of the batch's rows moves none)
        return False
    run_mean, run_var, stats = running_buffers(net, ws, lay, m)
    return running_nonfinite(run_mean, run_var, stats, m)


@jit
def nonfinite_update_layer(net, ws, m, t, lr, h, par_elements, bounded):
    """-1 if the update at step ``t`` keeps every parameter, optimizer state and running
    average finite; else the layer (the first from the output) it would make NaN or inf.
    ``bounded``: the parameters and state are known to stay finite (``optim.bounds_after``),
    so only the running averages are checked.

    All of it at once, then, only if that fails, layer by layer.  A function of its own,
    not inlined: every entry point shares one compiled copy (the first session compiles it
    once, not once per entry point)."""
    L = net.layers.shape[0]
    # l == L: every parameter at once; then l = L - 1, ..., 0.  One call site of the check:
    # each site is another copy for LLVM to optimise (two cost 1.9 s of a cold start).
    for l in range(L, -1, -1):
        lay = net.layers[min(l, L - 1)]
        lo, hi = (0, net.grads.size) if l == L else (lay.w, lay.end)
        bad = False
        if not (bounded and l == L):
            bad = update_nonfinite_split(ws.counts, net.params, net.slots, net.grads, lo, hi, t, lr, h, par_elements)
        if l == L:
            for j in range(L - 1):
                bad = bad or running_nonfinite_layer(net, ws, m, j)
            if not bad:
                return -1
        elif bad or running_nonfinite_layer(net, ws, m, l) or l == 0:
            return l
    return 0


@jit(inline="always")
def _train_step(net, state, ws, X, T, lr, cfg, h, bounds):
    """Forward, backward, optional global-norm clipping and one optimizer update at rate ``lr``;
    returns the loss and the bounds to carry to the next step of this call (``bounds``:
    ``optim.bounds_after``; ``UNMEASURED`` at the start of a call).

    Nothing is updated if the loss or any layer's gradient is NaN or inf (``status`` becomes
    ``STATUS_LOSS`` / ``STATUS_GRAD``), or if the update would make any parameter, optimizer
    state or running average NaN or inf (``STATUS_UPDATE``: a finite gradient with a huge
    step, a second moment that overflows); ``bad_layer`` names the layer (the output layer
    for the loss), and the parameters stay the last finite ones.  Otherwise ``step`` is
    incremented and every parameter is updated (after clipping the global norm, if asked).
    """
    m = X.shape[0]
    L = net.layers.shape[0]
    st = state[0]
    key, step = st.dropout_key, st.step + 1
    loss = forward_loss(net, ws, X, T, cfg, key, step, 0) + l2_penalty(net, cfg.l2)
    if not np.isfinite(loss):
        st.status = STATUS_LOSS
        st.bad_layer = L - 1
        return loss, bounds
    g_bits = np.int64(0)  # the largest gradient magnitude, as its bit pattern
    for l in range(L - 1, -1, -1):
        layer_backward(net, ws, X, l, m, cfg, key, step, 0)
        lay = net.layers[l]  # checked while this layer's gradient is still in cache
        layer_bits = largest_magnitude_split(ws.counts, net.grads[lay.w:lay.end], cfg.par_elements)
        if layer_bits >= inf_bits(net.grads):
            st.status = STATUS_GRAD
            st.bad_layer = l
            return loss, bounds
        g_bits = max(g_bits, layer_bits)
    return loss, _apply_gradients(net, state, ws, m, step, g_bits, lr, cfg, h, bounds)


@jit(inline="always")
def _apply_gradients(net, state, ws, m, step, g_bits, lr, cfg, h, bounds):
    """The rest of a training step from the finite gradient in ``net.grads`` (``g_bits``: the
    bit pattern of its largest magnitude): optional global-norm clipping, the check that the
    update stays finite, the fused optimizer update at rate ``lr`` as step ``step``, and batch
    norm's running averages (from the ``m``-row batch statistics in ``ws``).  Sets ``status``
    (``STATUS_UPDATE`` and ``bad_layer`` if the update would not stay finite; nothing is
    written then) and returns the bounds to carry on (``_train_step``).  Shared by
    ``_train_step`` and ``apply_gradients`` (data-parallel training: a gradient summed
    over ranks)."""
    L = net.layers.shape[0]
    st = state[0]
    if cfg.clip_norm > 0.0:  # (only shrinks the gradient: its largest magnitude stays a bound)
        clip_global_norm(net.grads, cfg.clip_norm)
    # The update is checked before any of it is written: by the bounds carried from the last
    # step where they hold, else by a read-only pass (``optim``; its cost: README, "Faults and
    # bad input"): all of it at once, then, only if it fails, layer by layer from the output
    # to name the layer.
    if bounds[3] == UNMEASURED:
        bounds = state_bounds(net.params, net.slots, net.grads.size, h)
    after, bounded = bounds_after(bounds, from_bits(g_bits, net.grads), step, lr, h, finite_limit(net.grads))
    bad = nonfinite_update_layer(net, ws, m, step, lr, h, cfg.par_elements, bounded)
    if bad >= 0:
        st.status = STATUS_UPDATE
        st.bad_layer = bad
        return bounds
    st.step = step
    st.status = STATUS_OK
    optimizer_update(net.params, net.slots, net.grads, step, lr, h, cfg.par_elements)
    for l in range(L - 1):  # batch norm's running averages move with applied steps only
        lay = net.layers[l]
        if lay.running >= 0 and m > 0:  # (m == 0: a data-parallel rank with no rows of the batch)
            run_mean, run_var, stats = running_buffers(net, ws, lay, m)
            batchnorm_update_running(run_mean, run_var, stats, m)
    if not bounded:  # the exact check passed: no bounds from here on in this call
        after = (after[0], after[1], after[2], GIVEN_UP)
    return after


@jit(inline="always")
def _train_epoch(losses, skipped, e, net, state, ws, X, T, perm, rates, batch_size, skip_nonfinite, one_step, cfg, h,
                 bounds):
    """Epoch ``e`` of a chunk: ``X[perm]`` in mini-batches, from batch ``state.batch`` on (0,
    or where an epoch stopped part-way earlier: it goes on there).  True when it finishes;
    then ``losses[e]`` is its sample-weighted mean batch loss and ``skipped[e]`` its count of
    skipped batches.

    ``rates``: one learning rate per mini-batch of the whole epoch (a schedule), or empty for
    the optimizer's.  A batch whose loss, gradient or update is not finite is not applied.
    With ``skip_nonfinite`` the epoch goes on (its samples are left out of the mean);
    otherwise it stops there, part-way, with ``bad_batch`` the batch's index.

    The position (``batch``, ``batches``, ``epoch``) and the epoch's loss so far live in the
    state record and move with each batch: whenever this returns, they describe exactly the
    steps the weights have taken.

    ``one_step`` (``MLP.train_step``): the first batch only, none of the above bookkeeping;
    ``losses[e]`` is its loss, and True means it was applied.  Also returns the bounds to
    carry on (``_train_step``).  The same code as an epoch's
    steps rather than an entry point of its own: a first session compiles one training
    step, not two (README, "Start-up").
    """
    n, n_in = X.shape
    k = T.shape[1]
    st = state[0]
    if not one_step:
        st.status = STATUS_OK
        st.bad_batch = -1
    first = 0 if one_step else st.batch
    for b in range(first, 1 if one_step else (n + batch_size - 1) // batch_size):
        start = b * batch_size
        m = min(batch_size, n - start)
        xb = matrix_view(ws.xb, 0, m, n_in)
        tb = matrix_view(ws.tb, 0, m, k)
        gather_batch(xb, tb, X, T, perm, start, cfg.par_elements)
        lr = rates[b] if rates.size > 0 else h.lr
        loss, bounds = _train_step(net, state, ws, xb, tb, lr, cfg, h, bounds)
        if one_step:
            losses[e] = loss
            return st.status == STATUS_OK, bounds
        if st.status != STATUS_OK:
            st.bad_batch = b
            if not skip_nonfinite:
                return False, bounds  # stopped at this batch, which the next fit runs again
            st.skipped += 1
        else:
            st.loss_sum += loss * m
            st.counted += m
        st.batch = b + 1  # (also read by fit's progress display, from another thread)
        st.batches += 1
    losses[e] = st.loss_sum / st.counted if st.counted > 0 else np.nan
    skipped[e] = st.skipped
    st.epoch += 1
    st.batch = 0
    st.skipped = 0
    st.loss_sum = 0.0
    st.counted = 0
    return True, bounds


@jit
def train_epochs(losses, skipped, net, state, ws, X, T, perms, rates, batch_size, skip_nonfinite, one_step, cfg, h):
    """``_train_epoch`` once per row of ``perms`` (with the same row of ``rates``, whose rows
    may be empty); writes each epoch's loss and skipped-batch count.  The first row may be
    an epoch stopped part-way before (``state.batch > 0``): it goes on from there.
    With ``one_step``: one training step on the first ``batch_size`` rows of ``X[perms[0]]``
    (``_train_epoch``), its loss in ``losses[0]``.

    Returns the number of epochs completed: fewer than ``len(perms)`` only when a batch was
    not finite and ``skip_nonfinite`` is off (``state`` then says where).
    """
    fp = flush_denormals()  # for this call only (see common.flush_denormals)
    net, ws, cfg = named(net, ws, cfg)
    h = Hyper(*h)
    # Views of borrowed arrays skip the atomic reference counting (see ``borrowed``).
    net = Network(borrowed(net.params), borrowed(net.grads), borrowed(net.slots), borrowed(net.layers))
    ws = Workspace(borrowed(ws.acts), borrowed(ws.deltas), borrowed(ws.xhat), borrowed(ws.stats),
                   borrowed(ws.xb), borrowed(ws.tb), ws.rows, borrowed(ws.counts))
    state, X, T, perms, rates = borrowed(state), borrowed(X), borrowed(T), borrowed(perms), borrowed(rates)
    done = perms.shape[0]
    bounds = (0.0, 0.0, 0.0, UNMEASURED)  # measured at the first step (``_train_step``)
    for e in range(perms.shape[0]):
        finished, bounds = _train_epoch(losses, skipped, e, net, state, ws, X, T, perms[e], rates[e], batch_size,
                                        skip_nonfinite, one_step, cfg, h, bounds)
        if not finished:
            done = e
            break
    restore_fp_control(fp)
    return done



# ------------------------------------------------- a step split in two (data-parallel)
@jit
def batch_gradients(net, state, ws, X, T, perm, start, m, row0, scale, cfg):
    """The first half of a training step, for data-parallel training (``fastbp.distributed``):
    gathers the ``m`` rows ``X[perm[start:start + m]]`` (and ``T``'s) into the workspace,
    then forward and backward exactly as ``_train_step`` (the L2 term's gradient included;
    dropout masks of the next step for rows ``row0 .. row0 + m - 1`` of the global batch;
    batch norm on these ``m`` rows' statistics), and leaves ``scale`` times the gradient of
    the batch's mean loss in ``net.grads`` (``scale``: this rank's share of the global batch,
    its rows / the global batch's rows).  Returns the batch's mean loss (with the L2 term),
    unscaled.

    No rows (a rank with none of this global batch): a zero gradient and loss 0.  A loss that
    is NaN or inf, or batch statistics that would make a running average NaN or inf: the
    gradient is zero but for a NaN in its first entry, so that the summed gradient is not
    finite on every rank and every rank skips the step (``apply_gradients`` then reports
    ``STATUS_GRAD`` for layer 0, where one process reports ``STATUS_LOSS`` or
    ``STATUS_UPDATE``): whether a step is applied must not depend on a rank's own rows."""
    fp = flush_denormals()
    net, ws, cfg = named(net, ws, cfg)
    grads = net.grads
    loss = 0.0
    if m == 0:
        grads[:] = 0
    else:
        n_in, k = X.shape[1], T.shape[1]
        xb = matrix_view(ws.xb, 0, m, n_in)
        tb = matrix_view(ws.tb, 0, m, k)
        gather_batch(xb, tb, X, T, perm, start, cfg.par_elements)
        st = state[0]
        key, step = st.dropout_key, st.step + 1
        loss = forward_loss(net, ws, xb, tb, cfg, key, step, row0) + l2_penalty(net, cfg.l2)
        bad = not np.isfinite(loss)
        for l in range(net.layers.shape[0] - 1):
            bad = bad or running_nonfinite_layer(net, ws, m, l)
        if bad:
            grads[:] = 0
            grads[0] = np.nan
        else:
            for l in range(net.layers.shape[0] - 1, -1, -1):
                layer_backward(net, ws, xb, l, m, cfg, key, step, row0)
            if scale != 1.0:
                s = grads.dtype.type(scale)
                for i in range(grads.size):
                    grads[i] *= s
    restore_fp_control(fp)
    return loss


@jit
def apply_gradients(net, state, ws, m, lr, cfg, h, bounds):
    """The second half of a training step from the gradient in ``net.grads`` (summed over the
    ranks): the non-finite gradient guard (``STATUS_GRAD`` and the first layer from the output
    that is not finite), then ``_apply_gradients``, the same code as ``train_epochs``' steps
    (clipping, the update check, the fused update, batch norm's running averages from the
    ``m``-row statistics in ``ws``).  Returns whether the step was applied (``state`` says
    why not) and the bounds to pass to the next call (``_train_step``; ``(0, 0, 0,
    UNMEASURED)`` at the first, or after anything but this function changed the parameters
    or the optimizer state)."""
    fp = flush_denormals()
    net, ws, cfg = named(net, ws, cfg)
    h = Hyper(*h)
    st = state[0]
    step = st.step + 1
    L = net.layers.shape[0]
    g_bits = largest_magnitude_split(ws.counts, net.grads, cfg.par_elements)
    if g_bits >= inf_bits(net.grads):
        st.status = STATUS_GRAD
        st.bad_layer = 0
        for l in range(L - 1, -1, -1):
            lay = net.layers[l]
            if largest_magnitude(net.grads[lay.w:lay.end]) >= inf_bits(net.grads):
                st.bad_layer = l
                break
    else:
        bounds = _apply_gradients(net, state, ws, m, step, g_bits, lr, cfg, h, bounds)
    restore_fp_control(fp)
    return st.status == STATUS_OK, bounds


@jit
def first_max(row):
    """``np.argmax(row)``: the first largest entry, or the first NaN (NumPy's rule)."""
    best, at = row[0], 0
    if best != best:
        return 0
    for j in range(1, row.size):
        v = row[j]
        if v != v:
            return j
        if v > best:
            best, at = v, j
    return at


@jit
def correct_outputs(out, T, loss_code):
    """What ``MLP.evaluate``'s accuracy counts in a chunk: rows whose largest output is the
    target's largest entry (cross-entropy), or outputs on the target's side of 0.5 (binary
    cross-entropy); 0 for MSE.  NumPy's rules (``argmax``, ``>``), NaN included."""
    count = 0
    if loss_code == CROSS_ENTROPY:
        for i in range(out.shape[0]):
            count += first_max(out[i]) == first_max(T[i])
    elif loss_code == BINARY_CROSS_ENTROPY:
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                count += (out[i, j] > 0.5) == (T[i, j] > 0.5)
    return count


@jit
def infer(P, net, ws, X, T, cfg):
    """The network on ``X``, ``ws.rows`` rows at a time through the workspace, its output into
    ``P`` (unless ``P`` has no rows: ``MLP.evaluate`` needs none).  Returns the mean loss
    (with the L2 term) against ``T`` (NaN where ``T`` has no columns: ``MLP.predict``), how
    many outputs are NaN or inf (``predict`` warns) and how many are correct
    (``correct_outputs``), each counted while its chunk is in cache.  One entry point for
    prediction and evaluation, so a first session compiles one inference pass (README,
    "Start-up")."""
    fp = flush_denormals()
    net, ws, cfg = named(net, ws, cfg)
    n = X.shape[0]
    with_loss = T.shape[1] > 0
    lay = net.layers[net.layers.shape[0] - 1]
    _, b = layer_weights(net.params, lay)
    total = 0.0
    bad = 0
    correct = 0
    for start in range(0, n, ws.rows):
        m = min(ws.rows, n - start)
        forward(net, ws, X[start:start + m], cfg, INFERENCE, INFERENCE, 0, with_loss)
        out = layer_rows(ws.acts, ws, lay, m)
        if with_loss:  # the output activation fused with the loss
            Tc = T[start:start + m]
            total += output_loss(out, layer_rows(ws.deltas, ws, lay, m), b, Tc, lay.act, cfg.loss) * m
            correct += correct_outputs(out, Tc, cfg.loss)
        if P.shape[0] > 0:
            copy_into(P[start:start + m], out)
        bad += count_nonfinite(out.reshape(out.size))
    loss = total / n + l2_penalty(net, cfg.l2) if with_loss else np.nan
    restore_fp_control(fp)
    return loss, bad, correct

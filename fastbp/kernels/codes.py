"""Everything the kernels and the Python side must agree on: the integer codes the kernels
dispatch on, the constants they use, and the named layouts of the structures they share.

This module imports nothing from fastbp; every other module of fastbp imports its codes
from here.  Activations, losses and optimizers reach the kernels as integer codes, never as
functions, which would defeat Numba's on-disk cache and multiply the compiled
specialisations.

A compiled kernel keeps the values it was compiled with.  Numba's on-disk cache checks a
kernel against its own source file only, so ``common.jit`` adds a digest of every file of
this package to each kernel's cache key: changing a code here recompiles the kernels
(``tests/test_codes.py`` proves it).  The records and named tuples below are part of the
compiled signatures (field names, types, offsets), so changing them compiles afresh too.
"""

from collections import namedtuple

import numpy as np

# ----------------------------------------------------------------- activations
LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, SOFTMAX = 0, 1, 2, 3, 4, 5
# ``dense_forward`` with this code computes the product only: the caller normalises first
# (batch norm) or the fused loss adds the bias and applies the output activation.
PRODUCT_ONLY = -1

# ---------------------------------------------------------------------- losses
MSE, BINARY_CROSS_ENTROPY, CROSS_ENTROPY = 0, 1, 2

# ------------------------------------------------------------------ optimizers
SGD, RMSPROP, ADAM, ADAMW, ADAGRAD = 0, 1, 2, 3, 4

# ----------------------------------------------------- what a training step reports
STATUS_OK, STATUS_LOSS, STATUS_GRAD, STATUS_UPDATE = 0, 1, 2, 3  # UPDATE: parameters / state would be NaN or inf

# ----------------------------------------------------- batch norm (PyTorch's defaults)
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
BN_STATS = 6  # entries of the workspace's ``stats`` per normalised unit (kernels/batchnorm.py)

# ---------------------------------------------------------------- shared records
LAYER = np.dtype([
    ("n_in", np.int64), ("n_out", np.int64),
    ("w", np.int64),        # offset of W (n_in x n_out, row-major) in params / grads / slots rows
    ("b", np.int64),        # offset of b
    ("end", np.int64),      # end of the layer's trainable block (W, b[, gamma, beta])
    ("act", np.int64),      # activation code (the output activation for the last layer)
    ("gamma", np.int64),    # batch norm: offset of gamma (beta follows), -1 without
    ("running", np.int64),  # batch norm: offset of the running mean (variance follows) in params, -1
    ("ws", np.int64),       # first column of the layer's block in the workspace rows (acts, deltas)
    ("bn", np.int64),       # batch norm: first column of its block in xhat (BN_STATS x that in stats), -1
    ("dropout", np.float64),  # inverted-dropout rate of the layer's output (0 for the output layer)
])
"""One row per layer of the layer table ``layers`` (a structured array): where the layer's
parameters lie in the flat buffers, where its rows lie in the workspace, and what it
computes.  Built by ``fastbp.layout.layer_table``."""

STATE = np.dtype([
    ("step", np.int64),         # optimizer updates applied (the 1-based step of the last one)
    ("status", np.int64),       # STATUS_* of the last batch
    ("bad_layer", np.int64),    # the layer whose loss / gradient / update was not finite
    ("bad_batch", np.int64),    # the batch (index in its epoch) that was not finite, -1 if none
    ("skipped", np.int64),      # batches skipped in the unfinished epoch (on_nonfinite="skip_batch")
    ("dropout_key", np.int64),  # key of the counter-based dropout stream
    ("batch", np.int64),        # batches run in the unfinished epoch (0 between epochs; read by the progress display)
    # The training position, moved by the code that applies the steps, in the same call as
    # the weights (an interrupted fit leaves counts that match the weights):
    ("epoch", np.int64),        # epochs completed (the count epoch-unit schedules see)
    ("batches", np.int64),      # mini-batches run by fit, applied or skipped (what step-unit schedules see)
    ("loss_sum", np.float64),   # the unfinished epoch so far: sum of its applied batches' loss x rows
    ("counted", np.int64),      # ... and of their rows
    # What the unfinished epoch runs over (set by fit, not the kernels): its rows, batch size
    # and whether it is shuffled; a later fit goes on with it only over data of that shape.
    ("samples", np.int64),
    ("batch_size", np.int64),
    ("shuffled", np.int64),
])
"""The training state the kernels update: a one-element structured array, ``state[0].step``.

An epoch stopped part-way (a non-finite batch, or Ctrl-C between two batches of the
reference) has ``batch > 0``: ``skipped``, ``loss_sum`` and ``counted`` hold what it did so
far, and the next ``fit`` goes on with it from batch ``batch``.  Between epochs ``batch``,
``skipped``, ``loss_sum`` and ``counted`` are 0."""

Network = namedtuple("Network", "params grads slots layers")
Network.__doc__ = """The model's buffers, as the kernels see them (llm.c's ``ParameterTensors``).

``params``: ``W1, b1[, gamma1, beta1], W2, ...`` — the trainable parameters — followed by
batch norm's running averages; ``grads``: the gradient of the trainable ones, same layout;
``slots``: the optimizer's state, ``(n_slots, stride)``, each row in the same layout;
``layers``: the layer table (``LAYER`` records)."""

Workspace = namedtuple("Workspace", "acts deltas xhat stats xb tb rows counts")
Workspace.__doc__ = """Scratch buffers for batches of up to ``rows`` rows.

``acts`` / ``deltas``: each layer's activations / dL/dZ, ``rows x n_out`` at column
``layer.ws * rows``; ``xhat`` / ``stats``: batch norm's normalised pre-activations
(``rows x n_out`` at ``layer.bn * rows``) and batch statistics (``[mean, var, std]`` and
the backward pass's scratch, ``BN_STATS * n_out`` at ``BN_STATS * layer.bn``); ``xb`` / ``tb``: the gathered mini-batch;
``counts``: one integer per Numba thread, where a parallel check leaves each chunk's count
(a ``prange`` reduction would allocate its accumulator on every call)."""

Config = namedtuple("Config", "loss slope l2 clip_norm par_product par_elements blocks")
Config.__doc__ = """The model's settings the kernels need: the loss code, leaky ReLU's slope, the
L2 coefficient, the global-norm clipping threshold (0: no clipping), and from what size a
phase runs on all of Numba's threads: matrix products of more than ``par_product``
multiply-adds, elementwise passes over at least ``par_elements`` entries (``PAR_PRODUCT``,
``PAR_ELEMENTS``; 0: always, as the tests force it; None: never, and then the kernels are
compiled without any parallel loop, see ``common.by_threshold``), and into how many blocks
such a product is split (``blas.BLOCKS``: the machine's cores, never the thread count, see
``.blas``)."""

# From what size a phase runs in parallel (measured: README, "Performance").
# Products: those OpenBLAS itself would thread (more than 65,536 x 4 multiply-adds); smaller
# ones run whole on the calling thread.
PAR_PRODUCT = 1 << 18
# Elementwise passes (bias + activation, derivative, the optimizer's pass, checks, gather).
PAR_ELEMENTS = 1 << 16

Hyper = namedtuple("Hyper", "code lr momentum nesterov rho beta1 beta2 eps weight_decay")
Hyper.__doc__ = """An optimizer as the kernels see it: its code and every hyper-parameter any
rule uses (0 where a rule has none), so that all optimizers share one compiled type.
``lr`` is the optimizer's own rate; a schedule hands each step its rate instead."""

"""Numba kernels: pure functions that write into arrays they are given and allocate nothing.

This package imports nothing from the rest of fastbp; the rest of fastbp imports its codes
and record layouts from :mod:`.codes` (``tests/test_codes.py`` keeps it so).

* :mod:`.codes` — integer codes, constants and the shared structures (``LAYER``, ``STATE``,
  ``Network``, ``Workspace``, ``Config``, ``Hyper``); append-only
* :mod:`.common` — the ``jit`` decorator, borrowed / matrix views, the floating-point mode
* :mod:`.activations` — fused bias + activation, activation derivatives
* :mod:`.dropout` — inverted dropout from a counter-based generator (splitmix64)
* :mod:`.blas` — SciPy's OpenBLAS bound by name (``cblas_?gemm``, its thread count); the
  blocks per split product; ``one_blas_thread`` around calls that may split
* :mod:`.dense` — a dense layer's forward and backward pass; products whole or split over
  Numba's threads (``matmul``)
* :mod:`.batchnorm` — batch normalisation: training / inference forward, backward, running averages
* :mod:`.losses` — output activation fused with MSE / binary / categorical cross-entropy
* :mod:`.optim` — fused SGD / momentum / Nesterov / RMSprop / Adam / AdamW / AdaGrad updates, the
  check that an update stays finite, global-norm clipping
* :mod:`.data` — a call's data checked for NaN / inf and class labels one-hot encoded
* :mod:`.network` — the whole network over flat buffers: loss + gradients, a training step,
  compiled training epochs, chunked inference (the entry points the model calls)
"""

from .activations import activation_backward, bias_activation
from .batchnorm import (batchnorm_backward, batchnorm_forward_infer, batchnorm_forward_train, batchnorm_update_running,
                        running_nonfinite)
from .data import all_finite, one_hot
from .dense import column_sums, dense_backward, dense_forward
from .dropout import dropout_backward, dropout_forward
from .losses import output_loss
from .network import (add_l2_gradient, apply_gradients, batch_gradients, infer, l2_penalty, loss_and_grads,
                      train_epochs)
from .optim import (adagrad_update, adam_update, clip_global_norm, optimizer_step, rmsprop_update, sgd_update, sum_squares,
                    update_bounded, update_nonfinite)

__all__ = [
    "bias_activation", "activation_backward", "dropout_forward", "dropout_backward",
    "dense_forward", "dense_backward", "column_sums",
    "batchnorm_forward_train", "batchnorm_forward_infer", "batchnorm_backward", "batchnorm_update_running", "running_nonfinite",
    "output_loss", "sgd_update", "rmsprop_update", "adam_update", "adagrad_update", "optimizer_step", "update_bounded", "update_nonfinite",
    "clip_global_norm", "sum_squares", "l2_penalty", "add_l2_gradient",
    "loss_and_grads", "train_epochs", "batch_gradients", "apply_gradients", "infer", "all_finite", "one_hot",
]

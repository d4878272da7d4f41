"""Numba kernels: pure functions that write into arrays they are given and allocate nothing.

* :mod:`.activations` — fused bias + activation, activation derivatives
* :mod:`.dense` — a dense layer's forward and backward pass (GEMMs through BLAS)
* :mod:`.losses` — output activation fused with MSE / binary / categorical cross-entropy
* :mod:`.optim` — fused SGD / momentum / Nesterov / RMSprop / Adam / AdamW / AdaGrad updates,
  global-norm clipping
* :mod:`.network` — the whole network over flat buffers: loss + gradients, a training step,
  a compiled training epoch, chunked inference
"""

from .activations import activation_backward, bias_activation
from .dense import column_sums, dense_backward, dense_forward
from .losses import output_loss
from .network import evaluate, loss_and_grads, predict, train_batch, train_epoch, train_epochs, train_step
from .optim import (
    adagrad_update,
    adam_update,
    clip_global_norm,
    optimizer_update,
    update_range,
    rmsprop_update,
    sgd_update,
    sum_squares,
)

__all__ = [
    "bias_activation", "activation_backward", "dense_forward", "dense_backward", "column_sums",
    "output_loss", "sgd_update", "rmsprop_update", "adam_update", "adagrad_update", "optimizer_update", "update_range",
    "clip_global_norm", "sum_squares", "loss_and_grads", "train_batch", "train_epoch", "train_epochs", "train_step", "predict", "evaluate",
]

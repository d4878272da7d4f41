"""The one decorator every kernel uses, and the integer codes kernels dispatch on.

``cache=True``: compiled code is kept on disk, so only the first process pays for it.
``error_model="numpy"``: divisions do not check for zero, so division loops vectorise.
No ``fastmath``: it bought no speed here and moved float32 results away from the reference.
Activations, losses and optimizers are passed as integer codes (never as functions,
which would defeat the on-disk cache and multiply the compiled specialisations).
"""

import functools

from numba import njit

from .._base import (  # noqa: F401  (re-exported codes)
    BINARY_CROSS_ENTROPY,
    CROSS_ENTROPY,
    LEAKY_RELU,
    LINEAR,
    MSE,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
)
from ..optimizers import ADAGRAD_CODE, ADAM_CODE, ADAMW_CODE, RMSPROP_CODE, SGD_CODE  # noqa: F401

jit = functools.partial(njit, cache=True, error_model="numpy", nogil=True)

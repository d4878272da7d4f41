"""fastbp: the textbook NumPy MLP, trained by fused Numba kernels.

``import fastbp as fb`` and ``import fastbp.reference as fb`` expose the same API and give
the same numbers; ``fastbp`` is the fast one.
"""

from . import schedules
from .training import EarlyStopping, History, gradcheck
from .model import MLP, load
from .optimizers import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSprop
from .kernels import blas as _blas


def blas_backend():
    """Where fastbp's large matrix products go: ``"openblas"`` (SciPy's; the default) or
    ``"mkl"`` (``FASTBP_BLAS=mkl`` and the ``mkl`` extra installed); see ``fastbp.kernels.blas``."""
    return _blas.BACKEND


__version__ = "0.1.0"
__all__ = ["MLP", "History", "EarlyStopping", "gradcheck", "schedules", "load", "Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "AdaGrad", "blas_backend", "__version__"]

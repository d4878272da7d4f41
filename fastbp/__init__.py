"""fastbp: the textbook NumPy MLP, trained by fused Numba kernels.

``import fastbp as fb`` and ``import fastbp.reference as fb`` expose the same API and give
the same numbers; ``fastbp`` is the fast one.
"""

from . import schedules
from .gradcheck import gradcheck
from .training import EarlyStopping, History
from .model import MLP, load
from .optimizers import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"
__all__ = ["MLP", "History", "EarlyStopping", "gradcheck", "schedules", "load", "Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "AdaGrad", "__version__"]

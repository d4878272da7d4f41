"""fastbp: the textbook NumPy MLP, trained by fused Numba kernels.

``import fastbp as fb`` and ``import fastbp.reference as fb`` expose the same API and give
the same numbers; ``fastbp`` is the fast one.
"""

from __future__ import annotations

from typing import Any as _Any, TextIO as _TextIO

from . import schedules
from .gradcheck import gradcheck
from .training import EarlyStopping, History
from .model import MLP, load
from .optimizers import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"


def show_config(file: _TextIO | None = None) -> dict[str, _Any]:
    """Print what fastbp runs on: versions, Numba's threading layer and threads, where matrix
    products go, and from what size each phase runs on all threads.  Returns the same as a dict."""
    import sys

    import numba
    import numpy
    import scipy

    from .kernels import blas, codes

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet in this process
        layer = "not started"
    info = {
        "fastbp": __version__, "numpy": numpy.__version__, "numba": numba.__version__, "scipy": scipy.__version__,
        "threading layer": layer, "threads": numba.get_num_threads(),
        "matrix products": blas.describe(),
        "blocks per parallel product": blas.BLOCKS if blas.BLOCKED else 1,
        "parallel products above (multiply-adds)": blas.PRODUCT_SPLIT_ABOVE if blas.BLOCKED else None,
        "parallel elementwise passes from (entries)": codes.PAR_ELEMENTS,
    }
    out = file if file is not None else sys.stdout
    for key, value in info.items():
        print(f"{key + ':':44s} {value}", file=out)
    return info


__all__ = ["show_config", "MLP", "History", "EarlyStopping", "gradcheck", "schedules", "load", "Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "AdaGrad", "__version__"]

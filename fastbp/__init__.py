"""fastbp: the textbook NumPy MLP, trained by fused Numba kernels.

``import fastbp as fb`` and ``import fastbp.reference as fb`` expose the same API and give
the same numbers; ``fastbp`` is the fast one.
"""

from __future__ import annotations

import os as _os
from typing import Any as _Any, TextIO as _TextIO

# Numba's ``omp`` threading layer is GNU OpenMP, whose idle workers spin 300,000 iterations
# between parallel regions. Beside a process that holds a core (or OpenBLAS's own spinning
# worker) that spinning takes the time slice the other thread needs: with the default spin
# W3's epoch took 1.6x (machine idle) and 1.7x (a core busy) its time with a spin of 1,000,
# a small network whose products split 1.9x (loaded), W4 the same within noise (README,
# "Sharing the machine"; benchmarks/wait_policy.py).
# libgomp reads the setting once, when it loads (Numba's first parallel region); a user's
# own GOMP_SPINCOUNT or OMP_WAIT_POLICY is left alone.
OPENMP_SPIN = "1000"
if "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN

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
        "OpenMP spin (GOMP_SPINCOUNT / OMP_WAIT_POLICY)": (f"{_os.environ.get('GOMP_SPINCOUNT', 'default')} / "
                                                          f"{_os.environ.get('OMP_WAIT_POLICY', 'default')}"),
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

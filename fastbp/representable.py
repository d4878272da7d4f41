"""The one rule for a number that training's arithmetic takes in the model's dtype (the
optimizer's settings, ``l2``, ``leaky_slope``, ``clip_norm``, a schedule's learning rates),
for both implementations.

A value other than 0 must be a normal number of the dtype.  One that is subnormal there (or
rounds to 0) is flushed to 0 by the kernels (FTZ/DAZ) but not by NumPy, so the two
implementations would part: an ``eps`` of 1e-310 divides by zero in float64 in the kernels
only, a subnormal ``clip_norm`` switches clipping off in the kernels only, a subnormal
learning rate makes no update in the kernels only.  One that overflows to inf makes every
update inf.  (Its own module, below ``validation`` and ``schedules``, so both use it.)
"""

import math

import numpy as np


def problem_in_dtype(value, dtype):
    """What is wrong with the number ``value`` in ``dtype``, as the end of a sentence about
    it ("underflows in float32 (...)", "overflows to inf in float32 (...)"), or None."""
    if value == 0:
        return None
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        cast = abs(float(dtype.type(value)))
    if cast < info.tiny:
        return (f"underflows in {dtype.name} (it would be "
                f"{'0' if cast == 0 else 'subnormal, which the kernels flush to 0'}; the smallest normal "
                f"{dtype.name} is {float(info.tiny):.4g}); use a value >= {float(info.tiny):.4g}"
                f"{' or dtype=float64' if dtype == np.float32 else ''}")
    if not math.isfinite(cast):
        return f"overflows to inf in {dtype.name} (the largest is {float(info.max):.4g})"
    return None

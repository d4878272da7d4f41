"""A call's data, checked and encoded in compiled code: the fast model's versions of
``fastbp.validation``'s finiteness test of X and its one-hot targets from class labels.

``validation`` does both with NumPy temporaries (a boolean array of X's size, an index
array and a scatter), which is most of a small call's validation (README, "Small calls").
These do the same in one pass each and allocate nothing; where they find a problem the
model calls ``validation`` again, which raises its usual message.
"""

from .common import jit
from .optim import inf_bits, magnitude_bits


@jit
def all_finite(X):
    """Whether every entry of the C-contiguous float array ``X`` is finite (one integer max
    over the bit patterns: ``optim.magnitude_bits``)."""
    bits, _ = magnitude_bits(X.reshape(X.size))
    return bits < inf_bits(X)


@jit
def one_hot(T, labels):
    """Class ``labels`` (n,) as one-hot rows of ``T`` (n, k), every entry written.  Returns -1,
    or the first row whose label lies outside [0, k) (``T`` is then left part-written)."""
    k = T.shape[1]
    for i in range(T.shape[0]):
        c = labels[i]
        if c < 0 or c >= k:
            return i
        for j in range(k):
            T[i, j] = 0
        T[i, c] = 1
    return -1

# TEMPORARY placeholder while the kernel-backed model is written.
from .reference import MLP, load  # noqa: F401

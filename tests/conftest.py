"""Shared fixtures for the model-level tests (gradcheck, drop-in, learning, determinism,
validation, save / load).

``fb`` runs a test once per implementation: ``fastbp`` (the kernels) and
``fastbp.reference`` (plain NumPy).  Tests that compare the two import both directly.
"""

import zlib

import numba
import numpy as np
import pytest

import fastbp
import fastbp.reference

IMPLS = [fastbp, fastbp.reference]
IMPL_IDS = ["fastbp", "reference"]


@pytest.fixture(params=IMPLS, ids=IMPL_IDS)
def fb(request):
    """The implementation under test: ``fastbp`` or ``fastbp.reference``."""
    return request.param


@pytest.fixture(autouse=True)
def _restore_numba_threads():
    """No test may leave Numba's thread count changed for the tests after it."""
    threads = numba.get_num_threads()
    yield
    numba.set_num_threads(threads)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name (with its parameters): the same data on every
    run, different data for different parametrisations."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))

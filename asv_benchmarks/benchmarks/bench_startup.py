"""Start-up: import + first ``fit`` (W1) in a fresh interpreter, with an empty Numba cache
(cold: compiles) and with a populated one (warm)."""

import os
import subprocess
import sys
import tempfile

CHILD = """
import numpy as np
import fastbp as fb
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 4))
y = rng.integers(0, 3, 150)
fb.MLP([4, 16, 3], optimizer=fb.Adam(1e-3), dtype="float64", seed=0).fit(X, y, epochs=1, batch_size=16)
"""


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True)


class StartUp:
    number = 1
    repeat = (1, 3, 120.0)
    timeout = 600

    def setup(self):
        self.warm_dir = tempfile.TemporaryDirectory()
        _run(self.warm_dir.name)  # populate

    def teardown(self):
        self.warm_dir.cleanup()

    def time_cold_start(self):
        with tempfile.TemporaryDirectory() as empty:  # a fresh, empty cache every time
            _run(empty)

    def time_warm_start(self):
        _run(self.warm_dir.name)

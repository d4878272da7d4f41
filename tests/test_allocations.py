"""No allocation in the hot loop, proven with Numba's runtime allocation statistics.

Numba counts every NRT allocation when ``NUMBA_NRT_STATS=1`` is set before it is imported,
so the measurements run in a fresh interpreter.  The only NRT allocations a compiled call
from Python makes are the small descriptors wrapping each NumPy array argument (freed on
return); the script measures that boundary cost with a no-op kernel taking the same
arguments (the training kernel's, and the compiled data checks') and checks the real kernels
add nothing to it — per step or per epoch.

Run twice: with the model's default thresholds, and with every parallel path forced on
(``Config.par_product = par_elements = 0``, 3 blocks): the split products and passes
allocate nothing either.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

# allocation statistics measured in fresh processes: not in the quick run (README, Development)
pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import numpy as np
    import numba
    from numba.core.runtime import rtsys
    import fastbp as fb
    from fastbp.kernels.codes import Config

    FORCED_PARALLEL = sys.argv[1] == "1"

    @numba.njit
    def noop(*args):
        return 0

    def allocs(fn, *args):
        before = rtsys.get_allocation_stats()
        fn(*args)
        after = rtsys.get_allocation_stats()
        return after.alloc - before.alloc, after.free - before.free

    out = {}
    for dtype in ("float64", "float32"):
        for opt in (fb.Adam(1e-3), fb.SGD(0.1, momentum=0.9), fb.AdaGrad(0.1)):
            rng = np.random.default_rng(0)
            model = fb.MLP([6, 9, 7, 3], activation=["tanh", "relu"], optimizer=opt, dtype=dtype,
                           seed=0, l2=1e-3, clip_norm=1.0, dropout=0.2, batch_norm=[True, False])
            if FORCED_PARALLEL:
                model._cfg = tuple(Config(*model._cfg)._replace(par_product=0, par_elements=0, blocks=3))
            X = rng.standard_normal((1000, 6)).astype(dtype)
            y = rng.integers(0, 3, 1000)
            model.fit(X, y, epochs=1, batch_size=10)          # warm-up: compile, size workspace
            model.fit(X[:100], y[:100], epochs=1, batch_size=10)
            epoch_10 = allocs(model.fit, X[:100], y[:100], 1, 10)     # 10 batches
            epoch_100 = allocs(model.fit, X, y, 1, 10)                # 100 batches
            Xb, yb = X[:10], y[:10]
            model.train_step(Xb, yb)
            step = [allocs(model.train_step, Xb, yb) for _ in range(5)]
            # Boundary cost: the same array arguments, handed to a kernel that does nothing.
            Tb = model._check_y(yb, 10)
            # (``train_step`` is a one-step call of the epoch kernel: ``MLP._train_step``.)
            args = (model._step_loss, model._step_skipped, model._net, model._state, model._ws, Xb, Tb,
                    model._step_orders[10], model._no_rates, 10, False, True, model._call(10)[0], model._hyper)
            noop(*args)
            boundary = allocs(noop, *args)
            # ... and those of the compiled data checks (``kernels.data``: X; the targets and labels)
            noop(Xb), noop(Tb, yb)
            checks = allocs(noop, Xb)[0] + allocs(noop, Tb, yb)[0]
            out[f"{dtype}-{type(opt).__name__}"] = dict(epoch_10=epoch_10, epoch_100=epoch_100,
                                                      step=step, boundary=boundary, checks=checks)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module", params=[False, True], ids=["default", "forced-parallel"])
def stats(request):
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(int(request.param))], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_stats_are_recorded(stats):
    # The measurement itself must see allocations, or every assertion below is vacuous.
    for case in stats.values():
        assert case["boundary"][0] > 0


def test_epoch_allocations_do_not_grow_with_batches(stats):
    for name, case in stats.items():
        assert case["epoch_10"] == case["epoch_100"], name
        allocated, freed = case["epoch_100"]
        assert allocated == freed, f"{name}: leaked {allocated - freed}"


def test_train_step_allocates_nothing_beyond_argument_boundary(stats):
    for name, case in stats.items():
        for allocated, freed in case["step"]:
            assert allocated == case["boundary"][0] + case["checks"], name
            assert freed == allocated, name

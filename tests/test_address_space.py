"""Under a limit on the address space (``ulimit -v``, RLIMIT_AS), a compiled call finishes
or raises ``MemoryError`` naming the limit: it never hangs in OpenBLAS's buffer allocation
(which retries forever) nor ends the process from the thread pool (libgomp's "Thread
creation failed").  Each case runs in a fresh process whose limit is set to what it uses
after loading the kernels plus some room, and is killed if it hangs."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.slow,  # fresh processes (README, Development)
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc: Linux")]

CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import fastbp
    room_mib, call, sizes = int(sys.argv[1]), sys.argv[2], [int(s) for s in sys.argv[3].split(",")]

    def in_use():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2048, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], 2048)
    model = fastbp.MLP(sizes, seed=0)
    before = model.get_weights()
    if room_mib:  # (0: no limit)
        resource.setrlimit(resource.RLIMIT_AS, (in_use() + (room_mib << 20), resource.RLIM_INFINITY))
    try:
        if call == "fit":
            model.fit(X, y, epochs=1, batch_size=128)
        else:
            model.predict(X)
    except MemoryError as exc:
        unchanged = all(np.array_equal(a, b) for u, v in zip(before, model.get_weights()) for a, b in zip(u, v))
        print("MemoryError", "unchanged" if unchanged else "CHANGED", exc)
    else:
        print("done")
""")
W3, SMALL = "784,256,256,10", "4,8,3"  # W3's products are split over the threads (the parallel kernels)


def run(room_mib, call="fit", sizes=W3, threads=None):
    """The child's last line: ``call`` on a fresh model of ``sizes`` with ``room_mib`` MiB of
    address space left (the kernels load under the limit, as in a batch job)."""
    env = dict(os.environ)
    if threads:
        env["NUMBA_NUM_THREADS"] = str(threads)
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(room_mib), call, sizes], env=env,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: {call} of {sizes} with {room_mib} MiB of room")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module", autouse=True)
def kernels_cached():
    """Every variant the cases call compiled (or loaded) once without a limit: compiling
    under one is another matter (LLVM needs room of its own)."""
    for call in ("fit", "predict"):
        for sizes in (W3, SMALL):
            assert run(0, call, sizes) == "done"


@pytest.mark.parametrize("call, sizes, room_mib", [
    ("fit", W3, 40),  # without the check: "libgomp: Thread creation failed", exit status 1
    ("fit", W3, 80),  # hung in OpenBLAS's blas_memory_alloc (both threads)
    ("predict", W3, 80),
    ("fit", SMALL, 50),  # hung
    ("predict", SMALL, 50),  # a MemoryError without a message
])
def test_too_little_room_is_a_memory_error_naming_the_limit(call, sizes, room_mib):
    line = run(room_mib, call, sizes)
    assert line.startswith("MemoryError unchanged the address-space limit (RLIMIT_AS, `ulimit -v`)"), line
    assert "raise the limit, or use fewer threads" in line


def test_many_threads_under_a_limit_that_cannot_hold_them():
    """64 Numba threads with 1 GiB of room: their stacks and BLAS buffers need more."""
    line = run(1024, threads=64)
    assert line.startswith("MemoryError unchanged") and "64 threads" in line, line


@pytest.mark.parametrize("call, sizes", [("fit", W3), ("predict", W3), ("fit", SMALL), ("predict", SMALL)])
def test_enough_room_trains_as_without_a_limit(call, sizes):
    assert run(200, call, sizes) == "done"

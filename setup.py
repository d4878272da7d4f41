"""The build step that compiles the kernels into the wheel (everything else: pyproject.toml).

``pip install .`` builds a wheel on the machine it installs on; after the package is copied
into the build folder, ``python -m fastbp.compile`` runs there, so that Numba's on-disk cache
for this machine (``fastbp/kernels/__pycache__/*.nbi``, ``*.nbc``) is part of what gets
installed and a first ``fit`` loads instead of compiling.  Numba keys each cached kernel by
its own version, the source, the signature and the CPU, so a wheel taken to another machine
or installed beside another Numba recompiles at first use: never loads wrong code.

``FASTBP_NO_COMPILE=1`` skips the step (a wheel meant for many machines).  A failure of the
step never fails the install: the kernels then compile at first use, as they always could.
"""

import os
import subprocess
import sys
import time

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyCompiled(build_py):
    def run(self):
        super().run()
        if self.editable_mode or os.environ.get("FASTBP_NO_COMPILE", "") not in ("", "0"):
            return
        # the build folder first; then whatever made this build's own packages importable (pip's
        # isolated build environment hands them over on PYTHONPATH: numpy, numba, scipy)
        path = os.pathsep.join(p for p in (os.path.abspath(self.build_lib), os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
        env.pop("NUMBA_CACHE_DIR", None)  # the cache goes beside the kernels, into the wheel
        start = time.perf_counter()
        try:
            subprocess.run([sys.executable, "-m", "fastbp.compile", "--quiet"], env=env, check=True,
                           cwd=os.path.abspath(self.build_lib), timeout=1800)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"fastbp: the kernels were not compiled at install ({exc}); they compile at first use",
                  file=sys.stderr)
        else:
            print(f"fastbp: kernels compiled for this machine in {time.perf_counter() - start:.0f} s",
                  file=sys.stderr)


setup(cmdclass={"build_py": BuildPyCompiled})

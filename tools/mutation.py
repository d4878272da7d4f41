"""Mutation testing of the kernels, the reference and the guards.

    python tools/mutation.py --list                                  # the mutants, not run
    python tools/mutation.py --file fastbp/kernels/losses.py         # every mutant of one file
    python tools/mutation.py --file fastbp/kernels/network.py:guard --sample 20 --seed 1
    python tools/mutation.py --only 'fastbp/kernels/optim.py:312:15:Lt->LtE'   # one mutant again

Each mutant is ONE small change to one function body of a target file: an arithmetic
operator swapped (``+``/``-``, ``*``/``/``, ``&``/``|``, ...), a comparison swapped or
loosened (``<``/``<=``, ``==``/``!=``, ...), ``and``/``or`` swapped, a number tweaked
(``n`` -> ``n + 1`` / ``n - 1``; a float ``x`` -> ``2 x``, ``0.0`` -> ``1.0``), ``True``/``False``
swapped, a ``not`` removed, an ``if`` or ``while`` condition negated, a unary minus dropped, a
statement deleted (an assignment, an augmented assignment, a call, a ``return`` inside an
``if``: the early returns; not the only assignment of a local name, which would only make a
NameError / Numba typing error on every call).  For each, only the tests that cover that file run
(``TARGETS``: ``pytest -x -q`` per group, the fastest killers first), and the mutant is
*killed* (a test failed), *survived* (all passed), *timeout* (over ``--timeout`` seconds,
counted as killed: a mutant that hangs is noticed) or *equivalent* (listed in
``EQUIVALENT`` with the reason it cannot change behaviour; such mutants are not run).
The report (``--out``, default a fresh directory under /tmp): ``report.json`` and
``report.md``, a table per file and every survivor's unified diff.

Why our own mutator (Python's ``ast``), not mutmut or cosmic-ray: they rewrite and re-import
the package in ways that defeat Numba's on-disk cache or (mutmut's trampolines) wrap every
function, which Numba cannot compile at all; and each mutant of a kernel file costs a cold
compile of the kernels it touches (tens of seconds: the network kernels), so every mutant
must run few, chosen tests.  The change is made in the *source text* (the mutated node's
own characters, from the ``ast`` positions), so the rest of the file stays byte for byte
the same, comments included, and the survivors' diffs are one line.

Why under ``tools/`` (beside ``make_digits.py``), not ``benchmarks/``: it measures the tests,
not the speed, and is a maintainer's tool, not part of CI (too slow: about an hour for a
sample).

No stale code, however the caches are set up:

* The package is copied (``git ls-files`` of this checkout, so also the tests) to a
  temporary directory once; a mutant is written into the copy, its tests run there
  (``PYTHONPATH`` = the copy, working directory = the copy), then the pristine file is put
  back with its original modification time.
* ``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` in the copy: Python's ``.pyc`` check
  (modification time in seconds + size) would let a same-sized mutant written within the
  same second run the previous bytecode.
* Numba: ``NUMBA_CACHE_DIR`` points into the run's directory.  A mutant of a file under
  ``fastbp/kernels/`` gets a fresh, empty cache directory of its own (the kernels' cache key
  covers every kernel file, ``kernels/common.py``; a fresh directory does not even rely on
  that).  A mutant of any other file (``reference.py``, ``validation.py``) leaves every
  kernel file byte-identical to the baseline (the kernels import nothing from outside
  ``fastbp/kernels``: ``tests/test_codes.py``), so it shares one cache warmed by the
  baseline run, whose entries were compiled from exactly those sources.

Before the mutants of a target, its tests run once unmutated (the baseline; must pass);
``--timeout`` defaults to 3 x that time plus 240 s (a cold compile of what the tests call).
Only one pytest runs at a time (the machine is shared); Numba's own threads are as usual.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ------------------------------------------------------------------ what is mutated, what runs
# A target: a file, optionally a region (named functions only), and its test groups: each a
# list of pytest arguments, run in order with -x; the first failing group kills the mutant.
_GUARD_FUNCTIONS = ("count_nonfinite", "largest_magnitude", "_largest_magnitude_chunks", "_largest_magnitude_split",
                    "_largest_magnitude_whole", "running_nonfinite_layer", "nonfinite_update_layer", "_train_step")
_FAULT_TESTS = ["tests/test_faults.py", "-k", "divergence or nonfinite or overflow or update or refused"]
TARGETS = {
    "fastbp/kernels/optim.py": dict(tests=[
        ["tests/test_kernels.py", "-k", "optimizer or clip or nonfinite or bound or floating_point_mode"],
        ["tests/test_guards.py", "-k", "not split and not predict"],
        _FAULT_TESTS,
        ["tests/test_dropin.py", "-k", "50_train_steps or updates_follow or clip"],
    ]),
    "fastbp/kernels/losses.py": dict(tests=[
        ["tests/test_kernels.py", "-k", "output_loss or cross_entropy or correct_outputs"],
        ["tests/test_gradcheck.py", "-k", "fastbp"],
        ["tests/test_dropin.py", "-k", "variants"],
    ]),
    "fastbp/kernels/network.py:guard": dict(functions=_GUARD_FUNCTIONS, tests=[
        ["tests/test_guards.py", "-k", "chunked"],  # (one small kernel to compile: the chunks' mutants die here)
        ["tests/test_guards.py"],
        _FAULT_TESTS,
        ["tests/test_dropin.py", "-k", "50_train_steps"],
        ["tests/test_batchnorm.py", "-k", "running"],
    ]),
    "fastbp/kernels/network.py": dict(tests=[
        ["tests/test_guards.py", *_FAULT_TESTS],
        ["tests/test_dropin.py", "tests/test_model.py", "-k", "not save and not corrupt"],
        ["tests/test_batchnorm.py", "tests/test_dropout.py", "tests/test_kernels.py", "-k", "correct or l2"],
        ["tests/test_parallel.py"],
        ["tests/test_distributed.py"],  # (batch_gradients / apply_gradients, under mpiexec too)
    ]),
    "fastbp/kernels/activations.py": dict(tests=[
        ["tests/test_kernels.py", "-k", "activation or sigmoid or relu or dense or subnormal"],
        ["tests/test_gradcheck.py", "-k", "fastbp"],
    ]),
    "fastbp/kernels/batchnorm.py": dict(tests=[
        ["tests/test_batchnorm.py"], ["tests/test_kernels.py", "-k", "running"], ["tests/test_faults.py", "-k", "running"],
    ]),
    "fastbp/kernels/dropout.py": dict(tests=[["tests/test_dropout.py"], ["tests/test_dropin.py", "-k", "variants"]]),
    "fastbp/kernels/dense.py": dict(tests=[["tests/test_kernels.py", "-k", "dense"], ["tests/test_parallel.py"]]),
    "fastbp/kernels/data.py": dict(tests=[["tests/test_validation.py", "tests/test_rejected_calls.py"],
                                          ["tests/test_model.py", "-k", "bad_input or converted"]]),
    "fastbp/reference.py": dict(tests=[
        ["tests/test_guards.py", "-k", "reference"],
        ["tests/test_reference.py", "tests/test_gradcheck.py", "-k", "reference or counting or textbook"],
        ["tests/test_faults.py", "-k", "divergence or nonfinite or overflow or update or running"],
        ["tests/test_kernels.py"],
        ["tests/test_dropin.py", "tests/test_batchnorm.py", "tests/test_dropout.py"],
        ["tests/test_interrupt.py", "-k", "reference or last_batch"],
    ]),
    "fastbp/validation.py": dict(tests=[
        ["tests/test_validation.py", "tests/test_rejected_calls.py"],
        ["tests/test_state.py"],  # (set_state's checks: check_state)
        ["tests/test_model.py", "tests/test_usability.py", "-k", "bad or reject or refuse or must"],
        ["tests/test_faults.py", "-k", "refused or policy"],
        ["tests/test_fuzz.py"],
    ]),
}

# Mutants that cannot change behaviour: (file, the mutated line's text stripped, mutation)
# -> why.  Matched exactly; reported as "equivalent" and not run.
# The update checks' cheap bounds (``optim.update_bounded``, ``optim.bounds_after``) only
# decide whether the exact check (``update_nonfinite``) may be skipped: a mutant that makes
# them *stricter* (fewer "safe" answers) runs the exact check more often, which gives the same
# verdict: slower, not different.  (A mutant that makes them looser is a real bug, not listed.)
_STRICTER = "a stricter bound: the exact check runs instead and gives the same verdict (only slower)"
_OPTIM = "fastbp/kernels/optim.py"
_NETWORK = "fastbp/kernels/network.py"
_BOUNDED_RMS = "safe &= (zero <= si) & (si <= limit) & (abs(p[i]) + scale * abs(g[i]) <= limit)"
_BOUNDED_ADAM = "safe &= (zero <= vi) & (vi <= limit) & (abs(pi) + scale * abs(mi) <= limit)"
_GIVEN_UP = "after = (after[0], after[1], after[2], GIVEN_UP)"
_GIVEN_UP_WHY = ("bounds marked GIVEN_UP are never read again but for their mode (bounds_after returns them "
                 "unused): the first three fields do not matter")
EQUIVALENT: dict[tuple[str, str, str], str] = {
    **{(_OPTIM, line, "LtE->Lt"): _STRICTER for line in (
        _BOUNDED_RMS, _BOUNDED_ADAM, "safe = p <= limit and s0 <= limit", "safe = s0 <= limit and p <= limit",
        "safe = s1 <= limit and p <= limit")},
    (_OPTIM, "safe = True", "const True->False"): _STRICTER,
    (_OPTIM, "s0 = h.beta1 * s0b + (1.0 - h.beta1) * gmax", "Sub->Add"):
        "a larger bound on Adam's first moment (1 + beta1 > 1 - beta1): " + _STRICTER,
    (_OPTIM, "grow = 1.0 + 2.0 ** -20", "const 1.0->2.0"): _STRICTER,
    (_OPTIM, "grow = 1.0 + 2.0 ** -20", "drop-USub"): _STRICTER,
    (_OPTIM, "grow = 1.0 + 2.0 ** -20", "const 20->19"): _STRICTER,
    (_OPTIM, "return np.finfo(x.dtype).max / 2", "const 2->3"): _STRICTER,
    **{(_NETWORK, _GIVEN_UP, op): _GIVEN_UP_WHY for op in (
        "const 0->1", "const 1->2", "const 1->0", "const 2->3", "const 2->1")},
    (_NETWORK, "counts[c] = largest_magnitude(x[n * c // chunks:n * (c + 1) // chunks])", "Mult->Div"):
        "chunk c then starts at n / c // chunks <= n * c // chunks (c = 0: at inf, clamped to 0): the chunks overlap "
        "more, still cover every entry (tests/test_guards.py, chunked: every position, 1 to 7 chunks), and a max over "
        "overlapping chunks is the same",
    (_NETWORK, "for l in range(L - 1):  # batch norm's running averages move with applied steps only", "const 1->0"):
        "the output layer has no batch norm (its running < 0): the extra iteration does nothing",
    ("fastbp/kernels/losses.py", "p = one / (one + e) if v >= 0 else e / (one + e)", "GtE->Gt"):
        "at v == 0, e = exp(-0) = 1 and both branches are 1 / 2",
    ("fastbp/kernels/batchnorm.py", "mean, var, sd = stats[:n], stats[n:2 * n], stats[2 * n:3 * n]", "const 2->3@39"):
        "var = stats[n:3 * n] starts where stats[n:2 * n] does; only var[0 .. n-1] is ever read or written",
    ("fastbp/kernels/batchnorm.py", "scale, mean_d, mean_dx = stats[3 * n:4 * n], stats[4 * n:5 * n], stats[5 * n:BN_STATS * n]",
     "const 4->5@41"):
        "scale = stats[3 * n:5 * n] starts where stats[3 * n:4 * n] does; only scale[0 .. n-1] is ever read or written",
    ("fastbp/validation.py", "rows = max(1, block // max(1, a.shape[1]))", "const 1->0"):
        "max(0, columns) differs from max(1, columns) only for 0 columns, and an array with none has size 0 <= block: "
        "returned before this line",
    ("fastbp/validation.py", "if verbose not in (0, 1, False, True):", "const 1->0"):
        "True == 1: the tuple still accepts 1 (and 0, 0 and False are the same value)",
    ("fastbp/validation.py", "if verbose not in (0, 1, False, True):", "const False->True"):
        "0 == False: the tuple still accepts False",
}


def equivalent_reason(file, line_text, op, col):
    """``EQUIVALENT``'s reason for a mutant, or None.  A key's mutation may name its column,
    ``"const 2->3@39"``, where the same change elsewhere on the line is not equivalent."""
    return EQUIVALENT.get((file, line_text, f"{op}@{col}")) or EQUIVALENT.get((file, line_text, op))


# ------------------------------------------------------------------ mutants
@dataclasses.dataclass
class Mutant:
    file: str
    line: int
    col: int
    op: str            # e.g. "Lt->LtE", "delete", "negate-if", "const 3->4"
    start: tuple       # (line, col) of the replaced text (1-based line, 0-based col)
    end: tuple
    replacement: str
    function: str
    line_text: str

    @property
    def id(self):
        return f"{self.file}:{self.line}:{self.col}:{self.op}"


_BINOPS = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div], ast.Div: [ast.Mult],
           ast.FloorDiv: [ast.Mult], ast.Mod: [ast.FloorDiv], ast.Pow: [ast.Mult], ast.BitAnd: [ast.BitOr],
           ast.BitOr: [ast.BitAnd], ast.BitXor: [ast.BitOr], ast.LShift: [ast.RShift], ast.RShift: [ast.LShift]}
_CMPOPS = {ast.Lt: [ast.LtE, ast.GtE], ast.LtE: [ast.Lt, ast.Gt], ast.Gt: [ast.GtE, ast.LtE],
           ast.GtE: [ast.Gt, ast.Lt], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.Is: [ast.IsNot],
           ast.IsNot: [ast.Is], ast.In: [ast.NotIn], ast.NotIn: [ast.In]}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
           ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}


def _name(op):
    return type(op).__name__ if not isinstance(op, type) else op.__name__


def _segment(lines, node):
    """The source text of ``node`` (``lines``: the file's lines, with their endings)."""
    (l0, c0), (l1, c1) = (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)
    if l0 == l1:
        return lines[l0 - 1].encode()[c0:c1].decode()
    parts = [lines[l0 - 1].encode()[c0:].decode()] + lines[l0:l1 - 1] + [lines[l1 - 1].encode()[:c1].decode()]
    return "".join(parts)


def _is_docstring(node, parent):
    return (isinstance(parent, ast.Expr) and isinstance(node, ast.Constant) and isinstance(node.value, str))


class _Collector(ast.NodeVisitor):
    """Every mutation site inside the function bodies of one file (in ``functions``, if given)."""

    def __init__(self, path, source, functions):
        self.path, self.lines, self.functions = path, source.splitlines(keepends=True), functions
        self.mutants: list[Mutant] = []
        self.stack: list[str] = []
        self.stores: list[dict] = []  # per enclosing function: how often each local name is assigned

    def add(self, node, op, replacement, start=None, end=None):
        start = start or (node.lineno, node.col_offset)
        end = end or (node.end_lineno, node.end_col_offset)
        if replacement == "pass":  # a whole statement: with the closing brackets after its end, if any
            rest = self.lines[end[0] - 1].encode()[end[1]:].decode()
            code = rest.split("#")[0].strip()
            if code and set(code) <= set(")]}"):
                end = (end[0], end[1] + len(rest.rstrip("\n").encode()))
        self.mutants.append(Mutant(self.path, node.lineno, node.col_offset, op, start, end, replacement,
                                   ".".join(self.stack), self.lines[node.lineno - 1].strip()))

    def active(self):
        if not self.stack:
            return False
        return self.functions is None or any(f in self.functions for f in self.stack)

    def visit_FunctionDef(self, node):
        self.stack.append(node.name)
        self.stores.append({})
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                self.stores[-1][n.id] = self.stores[-1].get(n.id, 0) + 1
        for stmt in node.body:  # not the decorators, the defaults or the annotations
            self.visit(stmt)
        self.stack.pop()
        self.stores.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        for stmt in node.body:
            self.visit(stmt)

    def src(self, node):
        return _segment(self.lines, node)

    # ---- expressions
    def visit_BinOp(self, node):
        if self.active():
            for new in _BINOPS.get(type(node.op), []):
                text = f"({self.src(node.left)}) {_SYMBOL[new]} ({self.src(node.right)})"
                self.add(node, f"{_name(node.op)}->{new.__name__}", f"({text})")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        if self.active():
            for new in _BINOPS.get(type(node.op), []):
                self.add(node, f"{_name(node.op)}=->{new.__name__}=",
                         f"{self.src(node.target)} {_SYMBOL[new]}= {self.src(node.value)}")
            self.add(node, "delete", "pass")
        self.generic_visit(node)

    def visit_Compare(self, node):
        if self.active() and len(node.ops) == 1:
            for new in _CMPOPS.get(type(node.ops[0]), []):
                mutated = ast.Compare(left=node.left, ops=[new()], comparators=node.comparators)
                self.add(node, f"{_name(node.ops[0])}->{new.__name__}", f"({ast.unparse(mutated)})")
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        if self.active():
            new = "or" if isinstance(node.op, ast.And) else "and"
            text = f" {new} ".join(f"({self.src(v)})" for v in node.values)
            self.add(node, f"{_name(node.op)}->{new.capitalize()}", f"({text})")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if self.active() and isinstance(node.op, (ast.Not, ast.USub)):
            self.add(node, f"drop-{_name(node.op)}", f"({self.src(node.operand)})")
        self.generic_visit(node)

    def visit_Constant(self, node):
        if not self.active() or isinstance(node.value, str) or node.value is None:
            return
        v = node.value
        if isinstance(v, bool):
            self.add(node, f"const {v}->{not v}", repr(not v))
        elif isinstance(v, int):
            self.add(node, f"const {v}->{v + 1}", f"({v + 1})")
            if v != 0:
                self.add(node, f"const {v}->{v - 1}", f"({v - 1})")
        elif isinstance(v, float):
            new = 1.0 if v == 0.0 else v * 2
            self.add(node, f"const {v!r}->{new!r}", f"({new!r})")

    # ---- statements
    def visit_If(self, node):
        if self.active():
            self.add(node.test, "negate-if", f"not ({self.src(node.test)})")
        self.generic_visit(node)

    def visit_While(self, node):
        if self.active():
            self.add(node.test, "negate-while", f"not ({self.src(node.test)})")
        self.generic_visit(node)

    def visit_IfExp(self, node):
        if self.active():
            self.add(node.test, "negate-ifexp", f"(not ({self.src(node.test)}))")
        self.generic_visit(node)

    def visit_Assign(self, node):
        # Not generated: deleting the only assignment of a local name (a NameError or a Numba
        # typing error on every call: killed by any test, and nothing learnt).
        if self.active():
            names = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            only = names and all(self.stores[-1].get(n, 0) == 1 for n in names) and all(
                isinstance(t, (ast.Name, ast.Tuple)) for t in node.targets)
            if not only:
                self.add(node, "delete", "pass")
        self.generic_visit(node)

    def visit_Expr(self, node):
        if _is_docstring(node.value, node):
            return
        if self.active() and isinstance(node.value, ast.Call):
            self.add(node, "delete", "pass")
        self.generic_visit(node)

    def visit_Return(self, node):
        self.generic_visit(node)

    def generic_visit(self, node):
        # early returns: a ``return`` directly in the body of an ``if`` (not the function's last)
        if self.active() and isinstance(node, ast.If):
            for stmt in node.body + node.orelse:
                if isinstance(stmt, ast.Return):
                    self.add(stmt, "delete-return", "pass")
        super().generic_visit(node)


def mutants_of(path, functions=None):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        source = f.read()
    collector = _Collector(path, source, functions)
    collector.visit(ast.parse(source))
    seen, out = set(), []
    for m in collector.mutants:
        if m.id in seen:
            continue
        seen.add(m.id)
        out.append(m)
    return out


@functools.lru_cache(maxsize=None)
def _dump(source):
    return ast.dump(ast.parse(source))


def apply(source, m: Mutant):
    """``source`` with the mutant's characters replaced (checked to parse, and to differ)."""
    lines = source.splitlines(keepends=True)
    (l0, c0), (l1, c1) = m.start, m.end
    head = "".join(lines[:l0 - 1]) + lines[l0 - 1].encode()[:c0].decode()
    tail = lines[l1 - 1].encode()[c1:].decode() + "".join(lines[l1:])
    mutated = head + m.replacement + tail
    try:
        tree = ast.parse(mutated)
    except SyntaxError:
        return None  # (a statement whose text the positions do not delimit: not a mutant)
    if ast.dump(tree) == _dump(source):
        return None  # the same program (e.g. parentheses only)
    return mutated


# ------------------------------------------------------------------ running
def _copy_tree(dest):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, rel)) or dest, exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))
    # the files of this checkout that git does not know yet (new tests, this script)
    for rel in subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.split():
        os.makedirs(os.path.dirname(os.path.join(dest, rel)) or dest, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(dest, rel))


def _run_tests(work, groups, cache_dir, timeout, timings=None):
    """``("passed" | "failed" | "timeout", seconds, the failing group's tail)``."""
    env = dict(os.environ, PYTHONPATH=work, NUMBA_CACHE_DIR=cache_dir, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPYCACHEPREFIX", None)
    start = time.perf_counter()
    for group in groups:
        left = timeout - (time.perf_counter() - start)
        if left <= 0:
            return "timeout", time.perf_counter() - start, ""
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
               *group]
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # its own process group: a timeout ends all of it
        try:
            output, _ = proc.communicate(timeout=left)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                raise
            return "timeout", time.perf_counter() - start, " ".join(group)
        if timings is not None:
            timings.append([" ".join(group), round(time.perf_counter() - began, 1)])
        if proc.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-3:])
            return "failed", time.perf_counter() - start, f"{' '.join(group)}: {tail}"
    return "passed", time.perf_counter() - start, ""


def _target_of(spec):
    name = spec
    if name not in TARGETS:
        raise SystemExit(f"unknown target {spec!r}; one of {sorted(TARGETS)}")
    path = name.split(":")[0]
    return name, path, TARGETS[name]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--file", action="append", help="a target (TARGETS' key; repeatable); default: every target")
    ap.add_argument("--sample", type=int, help="a random N of each target's mutants (seeded by --seed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="run at most N mutants in all")
    ap.add_argument("--only", action="append", help="run this mutant id (repeatable; from --list or a report)")
    ap.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x the baseline + 240)")
    ap.add_argument("--out", help="report directory (default: a new /tmp/fastbp-mutation-*)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--skip-baseline", action="store_true",
                    help="do not run the unmutated tests first (they must pass; --timeout then defaults to 600 s)")
    ap.add_argument("--reclassify", metavar="DIR",
                    help="rewrite DIR's report with today's EQUIVALENT list (its survivors listed there become "
                         "equivalent) and exit; nothing runs")
    args = ap.parse_args(argv)
    if args.reclassify:
        with open(os.path.join(args.reclassify, "report.json")) as f:
            report = json.load(f)
        for entry in report["files"].values():
            for m in entry["mutants"]:
                reason = equivalent_reason(m["id"].split(":")[0], m["line_text"], m["op"], int(m["id"].split(":")[2]))
                if reason and m["status"] == "survived":
                    m.update(status="equivalent", reason=reason)
        _write(args.reclassify, report)
        print(f"report: {args.reclassify}/report.md")
        return 0

    names = args.file or list(TARGETS)
    if args.only and not args.file:  # the targets that hold these mutants (the first that does, for each)
        names = []
        for wanted in args.only:
            for name, target in TARGETS.items():
                if any(m.id == wanted for m in mutants_of(name.split(":")[0], target.get("functions"))):
                    names += [] if name in names else [name]
                    break
    plan = []
    rng = random.Random(args.seed)
    for spec in names:
        name, path, target = _target_of(spec)
        ms = mutants_of(path, target.get("functions"))
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            source = f.read()
        ms = [m for m in ms if apply(source, m) is not None]
        if args.only:
            ms = [m for m in ms if m.id in args.only]
        elif args.sample is not None and args.sample < len(ms):
            ms = sorted(rng.sample(ms, args.sample), key=lambda m: (m.line, m.col, m.op))
        plan.append((name, path, target, ms))
    if args.limit is not None:
        left, limited = args.limit, []
        for name, path, target, ms in plan:
            limited.append((name, path, target, ms[:max(left, 0)]))
            left -= len(ms)
        plan = limited
    if args.list:
        for name, path, target, ms in plan:
            print(f"# {name}: {len(ms)} mutants")
            for m in ms:
                eq = equivalent_reason(m.file, m.line_text, m.op, m.col)
                print(f"{m.id}\t{m.function}\t{m.line_text}" + (f"\t[equivalent: {eq}]" if eq else ""))
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # (so the copy is removed)
    out = args.out or tempfile.mkdtemp(prefix="fastbp-mutation-")
    os.makedirs(out, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="fastbp-mutants-")
    work = os.path.join(scratch, "work")
    _copy_tree(work)
    shared_cache = os.path.join(scratch, "numba-shared")
    command = " ".join(["python", "tools/mutation.py", *(argv if argv is not None else sys.argv[1:])])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                      text=True).stdout.strip():
        commit += " + uncommitted changes (the copy is of the working tree)"
    report = dict(command=command, started=time.strftime("%Y-%m-%d %H:%M:%S"), commit=commit, files={})
    print(f"report: {out}   copy: {work}", flush=True)
    fresh = 0
    try:
        for name, path, target, ms in plan:
            entry = report["files"].setdefault(name, dict(mutants=[], baseline=None))
            if not ms:
                continue
            in_kernels = path.startswith("fastbp/kernels/")
            base_cache = os.path.join(scratch, f"numba-baseline-{fresh}") if in_kernels else shared_cache
            fresh += 1
            groups = []
            if args.skip_baseline:
                status, seconds, detail = "passed", (args.timeout or 600) / 3, ""
            else:
                status, seconds, detail = _run_tests(work, target["tests"], base_cache, 3600, groups)
            entry["baseline"] = dict(status=status, seconds=round(seconds, 1), groups=groups)
            print(f"{name}: baseline {status} in {seconds:.0f} s ({len(ms)} mutants): {groups}", flush=True)
            if status != "passed":
                print(detail)
                continue
            timeout = args.timeout or 3 * seconds + 240
            pristine = os.path.join(ROOT, path)
            with open(pristine, encoding="utf-8") as f:
                source = f.read()
            for i, m in enumerate(ms, 1):
                reason = equivalent_reason(m.file, m.line_text, m.op, m.col)
                mutated = apply(source, m)
                diff = "".join(difflib.unified_diff(source.splitlines(keepends=True), mutated.splitlines(keepends=True),
                                                    "a/" + path, "b/" + path, n=2))
                record = dict(id=m.id, function=m.function, line=m.line, op=m.op, line_text=m.line_text, diff=diff)
                if reason:
                    record.update(status="equivalent", reason=reason, seconds=0.0)
                else:
                    target_file = os.path.join(work, path)
                    with open(target_file, "w", encoding="utf-8") as f:
                        f.write(mutated)
                    cache = os.path.join(scratch, f"numba-{fresh}") if in_kernels else shared_cache
                    fresh += 1
                    try:
                        status, seconds, detail = _run_tests(work, target["tests"], cache, timeout)
                    finally:
                        shutil.copy2(pristine, target_file)  # the original text and modification time
                        if in_kernels:
                            shutil.rmtree(cache, ignore_errors=True)
                    record.update(status={"failed": "killed", "passed": "survived"}.get(status, status),
                                  seconds=round(seconds, 1), detail=detail)
                entry["mutants"].append(record)
                print(f"[{i}/{len(ms)}] {record['status']:10s} {record['seconds']:6.0f} s  {m.id}  | {m.line_text[:70]}",
                      flush=True)
                _write(out, report)
    finally:
        _write(out, report)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"report: {out}/report.md")
    return 0


def _summary(mutants):
    count = {k: sum(m["status"] == k for m in mutants) for k in ("killed", "survived", "timeout", "equivalent")}
    decided = count["killed"] + count["timeout"] + count["survived"]
    score = (count["killed"] + count["timeout"]) / decided if decided else float("nan")
    return dict(mutants=len(mutants), **count, score=score)


def _write(out, report):
    for name, entry in report["files"].items():
        entry["summary"] = _summary(entry["mutants"])
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [f"# Mutation testing: `{report['command']}`", "",
             f"Commit {report['commit']}, started {report['started']}. Score: (killed + timeout) / (killed + timeout + "
             "survived); equivalent mutants are left out.", "",
             "| file | mutants | killed | survived | timeout | equivalent | score |", "|---|---|---|---|---|---|---|"]
    for name, entry in report["files"].items():
        s = entry["summary"]
        lines.append(f"| {name} | {s['mutants']} | {s['killed']} | {s['survived']} | {s['timeout']} | {s['equivalent']} "
                     f"| {s['score']:.1%} |")
    for name, entry in report["files"].items():
        survivors = [m for m in entry["mutants"] if m["status"] == "survived"]
        if survivors:
            lines += ["", f"## Survivors: {name}", ""]
            for m in survivors:
                lines += [f"`{m['id']}` (in `{m['function']}`)", "", "```diff", m["diff"].rstrip(), "```", ""]
        equivalent = [m for m in entry["mutants"] if m["status"] == "equivalent"]
        if equivalent:
            lines += ["", f"## Equivalent: {name}", ""]
            lines += [f"* `{m['id']}`: {m['reason']}" for m in equivalent]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())

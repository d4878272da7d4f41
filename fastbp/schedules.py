"""Learning-rate schedules: plain callables of the step or the epoch (optax style).

A schedule maps a count ``t`` (0-based) to a learning rate.  ``unit`` says what ``t``
counts: ``"epoch"`` (one rate for a whole epoch) or ``"step"`` (a rate per mini-batch).
``fit(..., lr_schedule=...)`` evaluates the schedule in Python for the coming epoch(s) and
hands the compiled epoch an array with one rate per mini-batch, so per-step schedules cost
nothing inside the training loop.  The counts continue across ``fit`` calls (and across
``save`` / ``load``): ``t`` is the number of epochs, or of mini-batches, trained before.

    fb.schedules.Cosine(max_lr=1e-2, min_lr=1e-4, period=50)
    fb.schedules.Warmup(fb.schedules.StepDecay(1e-2, rate=0.5, step_size=10), warmup=3)

Any callable ``f(t) -> float`` works too (``unit`` defaults to ``"epoch"``; set a
``unit`` attribute on it to change that).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike

from .representable import problem_in_dtype

__all__ = ["Schedule", "Constant", "StepDecay", "Exponential", "Cosine", "Warmup", "rates_for_epochs"]

UNITS = ("epoch", "step")


def _number(name, value, what):
    """``value`` as a float, or a ``TypeError`` saying ``name`` must be ``what``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, got {value!r}") from None


def _positive(name, value, allow_zero=False):
    value = _number(name, value, "a real number")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def _count(name, value):
    """A positive whole number (an int, or a float or NumPy scalar with an integer value)."""
    number = _number(name, value, "a positive integer")
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(number)


def _unit(unit):
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    return unit


class Schedule:
    """Base class: a learning rate for each count ``t`` (0-based) of ``unit``s (``"epoch"``
    or ``"step"``) trained before."""

    unit = "epoch"

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``lr`` for every ``t``."""

    def __init__(self, lr: float, unit: str = "epoch") -> None:
        self.lr = _positive("lr", lr)
        self.unit = _unit(unit)

    def __call__(self, t: int) -> float:
        return self.lr


class StepDecay(Schedule):
    """``initial * rate ** (t // step_size)``."""

    def __init__(self, initial: float, rate: float = 0.5, step_size: int = 10, unit: str = "epoch") -> None:
        self.initial = _positive("initial", initial)
        self.rate = _positive("rate", rate)
        self.step_size = _count("step_size", step_size)
        self.unit = _unit(unit)

    def __call__(self, t: int) -> float:
        return self.initial * self.rate ** (t // self.step_size)


class Exponential(Schedule):
    """``initial * exp(-rate * t)``."""

    def __init__(self, initial: float, rate: float = 0.1, unit: str = "epoch") -> None:
        self.initial = _positive("initial", initial)
        self.rate = _positive("rate", rate, allow_zero=True)
        self.unit = _unit(unit)

    def __call__(self, t: int) -> float:
        return self.initial * math.exp(-self.rate * t)


class Cosine(Schedule):
    """Cosine annealing: ``min + 0.5 * (max - min) * (1 + cos(pi * t / period))``, then ``min``."""

    def __init__(self, max_lr: float, min_lr: float = 0.0, period: int = 100, unit: str = "epoch") -> None:
        self.max_lr = _positive("max_lr", max_lr)
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True)
        if self.min_lr > self.max_lr:
            raise ValueError(f"min_lr ({min_lr}) must not exceed max_lr ({max_lr})")
        self.period = _count("period", period)
        self.unit = _unit(unit)

    def __call__(self, t: int) -> float:
        t = min(t, self.period)
        return self.min_lr + 0.5 * (self.max_lr - self.min_lr) * (1 + math.cos(math.pi * t / self.period))


class Warmup(Schedule):
    """Linear warm-up over the first ``warmup`` counts, composed with any schedule:
    ``schedule(t) * (t + 1) / warmup`` for ``t < warmup``, then ``schedule(t)``."""

    def __init__(self, schedule: Callable[[int], float], warmup: int = 5) -> None:
        if not callable(schedule):
            raise TypeError("Warmup wraps a schedule (a callable of t)")
        self.schedule = schedule
        self.warmup = _count("warmup", warmup)
        self.unit = getattr(schedule, "unit", "epoch")

    def __call__(self, t: int) -> float:
        lr = self.schedule(t)
        return lr * (t + 1) / self.warmup if t < self.warmup else lr


def rates_for_epochs(schedule: Callable[[int], float], first_epoch: int, first_step: int, n_epochs: int,
                     n_batches: int, dtype: DTypeLike | None = None) -> np.ndarray:
    """Per-batch learning rates, shape ``(n_epochs, n_batches)``, for epochs starting at
    ``first_epoch`` whose first mini-batch is number ``first_step``; checked finite and > 0,
    and, given the model's ``dtype``, normal numbers of it (as the optimizer's own ``lr`` is
    checked: a rate that overflows, or that underflows to 0 or a subnormal the kernels flush
    to 0, is refused naming the schedule's value, not met as a diverged or frozen epoch)."""
    unit = getattr(schedule, "unit", "epoch")
    _unit(unit)
    rates = np.empty((n_epochs, n_batches))
    for e in range(n_epochs):
        if unit == "epoch":
            rates[e, :] = float(schedule(first_epoch + e))
        else:
            base = first_step + e * n_batches
            rates[e, :] = [float(schedule(base + b)) for b in range(n_batches)]
    if not (np.isfinite(rates).all() and (rates > 0).all()):
        bad = rates[~(np.isfinite(rates) & (rates > 0))][0]
        raise ValueError(f"lr_schedule returned {bad!r}; learning rates must be finite and > 0")
    if dtype is not None and rates.size:
        for value in (rates.min(), rates.max()):  # the smallest may underflow, the largest overflow
            problem = problem_in_dtype(value, dtype)
            if problem:
                raise ValueError(f"lr_schedule returned {float(value)!r}, which {problem}")
    return rates

"""Optimizers: small configuration objects shared by ``fastbp`` and ``fastbp.reference``.

An optimizer here is only its hyper-parameters (optax-style: the state lives in
the model, next to the parameters, as one flat buffer of ``n_slots`` rows).
``fastbp`` hands ``hyper`` (a named ``codes.Hyper``: the code and every hyper-parameter)
to one fused Numba update kernel;
``fastbp.reference`` applies the same rule with plain NumPy.  The update rules
are those of PyTorch's ``torch.optim`` (see each class).
"""

from __future__ import annotations

import functools
import math

from .kernels import codes
from .kernels.codes import Hyper

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "AdaGrad", "get_optimizer"]

def _check(name, value, low, high=math.inf, low_open=False, high_open=True):
    """Validate one hyper-parameter and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    bad_low = value <= low if low_open else value < low
    bad_high = value >= high if high_open else value > high
    if not math.isfinite(value) or bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}")
    return value


class Optimizer:
    """Base class. Subclasses set ``code``, ``n_slots`` and their hyper-parameters as
    attributes named as in ``codes.Hyper`` (``lr``, ``momentum``, ``beta1``, ...).

    Once made, an optimizer's settings are fixed except ``lr``, which may be changed between
    calls (a user's own schedule in a ``train_step`` loop): the new rate is checked here, and
    by each model it was given to (against the model's dtype) before its next training call;
    it applies to every such model. The others are refused with an ``AttributeError``: the
    optimizer state's layout (``n_slots``) and saved configurations depend on them."""

    code = -1
    n_slots = 0
    # The slots that hold averages or sums of squared gradients (the update takes their
    # square root): never negative (``validation.check_optimizer_state``).
    squared_slots: tuple[int, ...] = ()
    lr: float
    _config: dict

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            init(self, *args, **kw)
            if type(self) is cls:  # the most derived constructor has finished
                object.__setattr__(self, "_made", True)

        cls.__init__ = __init__

    def __setattr__(self, name, value):
        if getattr(self, "_made", False):
            if name != "lr":
                raise AttributeError(
                    f"{type(self).__name__}.{name} is fixed once the optimizer is made (the optimizer state's "
                    f"layout and saved configurations depend on it); make a new optimizer. Only lr may be changed")
            value = _check("lr", value, 0.0, low_open=True)
            object.__setattr__(self, "_config", {**self._config, "lr": value})  # (a copy's own: copy.copy)
        object.__setattr__(self, name, value)

    @property
    def hyper(self) -> Hyper:
        """The optimizer as the kernels see it: a ``codes.Hyper``, 0 for what it does not use."""
        return Hyper(code=self.code, lr=self.lr, momentum=float(getattr(self, "momentum", 0.0)),
                     nesterov=bool(getattr(self, "nesterov", False)),
                     **{name: float(getattr(self, name, 0.0))
                        for name in ("rho", "beta1", "beta2", "eps", "weight_decay")})

    def get_config(self) -> dict[str, float | bool]:
        """The constructor arguments, as a JSON-serialisable dict."""
        return dict(self._config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._config == other._config

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self._config.items()))))


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum or Nesterov momentum.

    PyTorch's rule (dampening 0): ``v = momentum * v + g``; the step is ``g + momentum * v``
    with Nesterov, ``v`` with momentum, ``g`` without; ``p -= lr * step``.
    """

    code = codes.SGD

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.lr = _check("lr", lr, 0.0, low_open=True)
        self.momentum = _check("momentum", momentum, 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        self.nesterov = nesterov
        self.n_slots = 1 if self.momentum > 0.0 else 0
        self._config = {"lr": self.lr, "momentum": self.momentum, "nesterov": nesterov}



class RMSprop(Optimizer):
    """RMSprop: ``s = rho * s + (1 - rho) * g**2``; ``p -= lr * g / (sqrt(s) + eps)``."""

    code = codes.RMSPROP
    n_slots = 1
    squared_slots = (0,)  # s

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8) -> None:
        self.lr = _check("lr", lr, 0.0, low_open=True)
        self.rho = _check("rho", rho, 0.0, 1.0)
        self.eps = _check("eps", eps, 0.0, low_open=True)
        self._config = {"lr": self.lr, "rho": self.rho, "eps": self.eps}



class Adam(Optimizer):
    """Adam with bias correction, eps outside the square root (PyTorch's ``torch.optim.Adam``).

    ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g**2``;
    ``p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.
    """

    code = codes.ADAM
    n_slots = 2
    squared_slots = (1,)  # v

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr = _check("lr", lr, 0.0, low_open=True)
        self.beta1 = _check("beta1", beta1, 0.0, 1.0)
        self.beta2 = _check("beta2", beta2, 0.0, 1.0)
        self.eps = _check("eps", eps, 0.0, low_open=True)
        self._config = {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}



class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's ``torch.optim.AdamW``).

    Before the Adam step every parameter (weights and biases, as PyTorch does for the
    parameters it is given) is scaled by ``1 - lr * weight_decay``.
    """

    code = codes.ADAMW

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)
        self._config["weight_decay"] = self.weight_decay



class AdaGrad(Optimizer):
    """AdaGrad: ``s += g**2``; ``p -= lr * g / (sqrt(s) + eps)`` (PyTorch's defaults)."""

    code = codes.ADAGRAD
    n_slots = 1
    squared_slots = (0,)  # s

    def __init__(self, lr: float = 0.01, eps: float = 1e-10) -> None:
        self.lr = _check("lr", lr, 0.0, low_open=True)
        self.eps = _check("eps", eps, 0.0, low_open=True)
        self._config = {"lr": self.lr, "eps": self.eps}



_BY_NAME = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": AdaGrad,
}


def get_optimizer(spec: Optimizer | str) -> Optimizer:
    """An :class:`Optimizer` from an instance, or from a name with default settings."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str):
        try:
            return _BY_NAME[spec.lower()]()
        except KeyError:
            raise ValueError(
                f"unknown optimizer {spec!r}; choose one of {sorted(_BY_NAME)} "
                "or pass an instance such as fastbp.Adam(lr=1e-3)"
            ) from None
    raise TypeError(f"optimizer must be a name or an Optimizer instance, got {type(spec).__name__}")


def optimizer_from_config(name: str, config: dict) -> Optimizer:
    """Rebuild an optimizer saved by ``get_config`` (used by ``load``)."""
    cls = {c.__name__: c for c in (SGD, RMSprop, Adam, AdamW, AdaGrad)}.get(name)
    if cls is None:
        raise ValueError(f"unknown optimizer class {name!r} in saved model")
    return cls(**config)

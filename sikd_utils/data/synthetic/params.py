"""Random parameters of the phantoms: a source distribution plus a shift per unit of severity."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

_F = np.float32


@dataclass(frozen=True)
class _Param:
    """One random parameter: ``value`` ± ``jitter`` (uniform) in the source, plus ``shift`` × severity.

    With ``log=True`` jitter and shift are in natural-log units (a multiplicative spread and shift).
    Exactly one random number is drawn whatever the severity, so severity never reshuffles a case.
    """

    value: float
    jitter: float = 0.0
    shift: float = 0.0
    log: bool = False
    lo: float = -math.inf
    hi: float = math.inf

    def draw(self, rng: np.random.Generator, severity: float) -> float:
        u = rng.uniform(-1.0, 1.0)
        if self.log:
            v = self.value * math.exp(self.jitter * u + self.shift * severity)
        else:
            v = self.value + self.jitter * u + self.shift * severity
        return float(min(max(v, self.lo), self.hi))


def _draw(specs: dict[str, _Param], rng: np.random.Generator, severity) -> dict[str, float]:
    """Draw every parameter; ``severity`` is one number for all, or a mapping name -> severity (others 0).

    The mapping form is how the shift registry moves one family of parameters and leaves the rest at
    their source distribution, with the very same random numbers.
    """
    if isinstance(severity, Mapping):
        return {name: p.draw(rng, float(severity.get(name, 0.0))) for name, p in specs.items()}
    return {name: p.draw(rng, severity) for name, p in specs.items()}



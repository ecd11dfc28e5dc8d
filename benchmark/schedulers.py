"""Learning-rate schedules of the SUPERB recipes, as recipe data (``scheduler:`` section).

``scheduler: {name: ..., warmup_steps: N}``; the learning rate of the step that follows ``n``
finished optimiser steps is ``optimizer.lr * factor(n)``:

* ``constant``: 1 (with ``warmup_steps`` > 0: ``n / warmup`` during the warm-up, then 1 - the
  shape of transformers' ``get_constant_schedule_with_warmup``).
* ``linear_warmup_decay``: ``n / warmup`` during the warm-up, then linear decay to 0 at
  ``runner.total_steps`` - s3prl's ``linear_schedule_with_warmup`` (transformers'
  ``get_linear_schedule_with_warmup``), used by SUPERB-SG's VC recipe.
* ``sqrt_decay_warmup``: ``n / warmup`` during the warm-up, then ``sqrt(warmup / n)`` - s3prl's
  ``sqrt_decay_schedule_with_warmup``, used by SUPERB-SG's ST recipe (10k warm-up steps).

As in s3prl (``scheduler.step()`` after every ``optimizer.step()``), the first step of a
warm-up runs at factor 0. The factor is a pure function of the step count, so a resumed run
uses exactly the learning rates of an uninterrupted one without any saved scheduler state.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import torch


def _warmup(n: int, warmup: int) -> float:
    return n / max(1, warmup)


def constant(n: int, warmup: int, total: int) -> float:
    return _warmup(n, warmup) if n < warmup else 1.0


def linear_warmup_decay(n: int, warmup: int, total: int) -> float:
    if n < warmup:
        return _warmup(n, warmup)
    return max(0.0, (total - n) / max(1, total - warmup))


def sqrt_decay_warmup(n: int, warmup: int, total: int) -> float:
    if n < warmup:
        return _warmup(n, warmup)
    return math.sqrt(max(1, warmup) / max(1, n))


SCHEDULES: Dict[str, Callable[[int, int, int], float]] = {
    "constant": constant,
    "linear_warmup_decay": linear_warmup_decay,
    "sqrt_decay_warmup": sqrt_decay_warmup,
}


class Schedule:
    """Sets the optimiser's learning rate before each step from the recipe's schedule."""

    def __init__(self, name: str, warmup_steps: int, total_steps: int, base_lr: float):
        if name not in SCHEDULES:
            raise ValueError(f"scheduler.name {name!r}: expected one of {', '.join(SCHEDULES)}")
        self.name, self.warmup, self.total, self.base_lr = name, int(warmup_steps), int(total_steps), float(base_lr)
        self._factor = SCHEDULES[name]

    def lr(self, finished_steps: int) -> float:
        return self.base_lr * self._factor(int(finished_steps), self.warmup, self.total)

    def apply(self, optimizer: torch.optim.Optimizer, finished_steps: int) -> float:
        lr = self.lr(finished_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

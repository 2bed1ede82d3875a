"""How a run spends its steps and minutes: the learning-rate curve, the side each epoch trains
at, and how many epochs a time budget holds. Pure arithmetic, so it is tested without training."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class WarmupCosine:
    """LR multiplier per step: linear warm-up, then cosine decay to ``floor`` at ``total_steps``.

    ``total_steps`` may change once the first epochs show how many fit a time budget, so the
    decay still completes.
    """

    warmup_steps: int
    total_steps: int
    floor: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


STRIDE = 32  # every registered network's coarsest stride divides this


def epoch_size(epoch: int, epochs: int, start: int | None, final: int, ramp: float) -> int:
    """The side epoch ``epoch`` of ``epochs`` trains at: ``start`` growing linearly to ``final``
    over the first ``ramp`` of them (multiples of STRIDE), then ``final`` to the end, so the
    network finishes at the size it runs at. Small epochs are cheap: a convolution's cost goes
    with the pixels."""
    if start is None or start >= final:
        return final
    progress = min(1.0, epoch / max(1.0, ramp * (epochs - 1)))
    side = STRIDE * round((start + (final - start) * progress) / STRIDE)
    return min(final, max(STRIDE, side))


def epochs_that_fit(
    seconds_left: float,
    training_seconds: float,
    validation_seconds: float,
    side: Callable[[int, int], int],
    done: int,
    most: int,
) -> int:
    """How many epochs a time budget plans for, ``done`` of them run (epoch 0 among them).

    An epoch costs a validation plus epoch 0's training scaled by its pixels: ``side(epoch,
    planned)`` is an epoch's side when ``planned`` epochs are planned."""
    for planned in range(most, done, -1):
        first = side(0, planned)
        cost = sum(
            training_seconds * (side(epoch, planned) / first) ** 2 + validation_seconds
            for epoch in range(done, planned)
        )
        if cost <= seconds_left:
            return planned
    return done


REPLAN_EPOCHS = 3  # a time budget re-plans the decay after each of the first this many epochs


def typical_epoch(costs: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The (training, validation) seconds a time budget plans by, from the epochs run so far.

    The first epoch carries one-off costs (autotuning, caches), so it counts only while it is
    the only one; a median, so one epoch slowed by something else on the machine does not cut
    the whole schedule short."""
    steady = costs[1:] or costs
    return (
        statistics.median(training for training, _ in steady),
        statistics.median(validation for _, validation in steady),
    )

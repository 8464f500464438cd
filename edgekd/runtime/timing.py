"""Timing a bundle's graphs: medians taken in turns, and each segment's and prefix's batch-1 latency.
What `bench`, the demo and the latency benchmark share."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from edgekd.bundle import names
from edgekd.runtime.model import EarlyExitModel


def times_in_turns(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int = 3, block: int = 1) -> list[list[float]]:
    """Seconds of every timed call of each function over `repeats` rounds. Within a round each is called
    `block` times in a row (every call timed), in an order shuffled round by round (seeded), so a slow spell
    of the machine falls on all of them alike and none always runs just after the same other. `block=1`
    makes each call find the caches holding the other functions' data; a longer block measures the warm,
    steady state."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    rng = np.random.default_rng(0)  # the same shuffles every time
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i in rng.permutation(len(fns)):
            for _ in range(block):
                start = time.perf_counter()
                fns[i]()
                times[i].append(time.perf_counter() - start)
    return times


def medians_in_turns(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int = 3, block: int = 1) -> list[float]:
    """Median seconds of each function, timed in turns as `times_in_turns` does."""
    return [statistics.median(t) for t in times_in_turns(fns, repeats, warmup, block)]


class Spread(NamedTuple):
    """Median and 10th / 90th percentile seconds of repeated calls."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Spread":
        low, median, high = np.percentile(np.asarray(seconds), [10, 50, 90])
        return cls(float(median), float(low), float(high))


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    return medians_in_turns([fn], repeats, warmup)[0]


def segment_latencies(model: EarlyExitModel, image: np.ndarray, repeats: int, warmup: int = 3) -> list[float]:
    """Batch-1 median seconds of each segment, as the early-exit loop runs them: every segment of the
    model's chain in turn (feature maps handed on as the chain hands them, on the device where it has
    one), each run timed on its own."""
    chain = model.chain_for(len(image))

    def one_pass() -> list[float]:
        step = chain.start(image)
        seconds = [step.seconds]
        while step.segment < len(chain) - 1:
            step.advance()
            seconds.append(step.seconds)
        return seconds

    for _ in range(warmup):
        one_pass()
    return [float(s) for s in np.median([one_pass() for _ in range(repeats)], axis=0)]


def prefix_latencies(model: EarlyExitModel, image: np.ndarray, repeats: int) -> list[float]:
    """Batch-1 median seconds of each prefix graph (image -> logits of exit k)."""
    return [median_seconds(lambda k=k: model.session(names.prefix(k)).run(None, {names.IMAGE: image}), repeats)
            for k in range(1, model.num_exits + 1)]

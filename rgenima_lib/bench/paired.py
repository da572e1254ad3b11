"""Paired, interleaved timing: every measure runs beside its baseline in one process.

Separate processes, or a measure and its baseline run minutes apart, differ by the machine's load
more than by the code (a 4x spread between identical runs was seen on a loaded 2-core machine).
``paired_timings`` runs the candidates round-robin (A B C A B C ...) after one untimed warm-up each,
so drifting load hits them all alike, and reports per candidate the median, minimum, maximum and
relative spread of the repetitions, and per pair the median of the per-round ratios (a ratio of
runs back to back is steadier than a ratio of medians).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping


def summarise(seconds: list[float]) -> dict:
    """Median, minimum, maximum and spread ((max - min) / median) of repeated timings, in seconds."""
    median = statistics.median(seconds)
    return {"median_s": round(median, 5), "min_s": round(min(seconds), 5), "max_s": round(max(seconds), 5),
            "spread": round((max(seconds) - min(seconds)) / median, 3) if median > 0 else 0.0,
            "repeats": len(seconds)}


def paired_timings(candidates: Mapping[str, Callable[[], object]], repeats: int = 3, warmup: bool = True,
                   ratios: Mapping[str, tuple[str, str]] | None = None) -> dict:
    """Time callables interleaved, ``repeats`` rounds of one call each.

    Parameters
    ----------
    candidates : mapping of name -> zero-argument callable
        What to time; each call is one repetition. Return values are discarded.
    repeats : int
        Timed rounds (at least 3 for a median and a spread).
    warmup : bool
        Call each candidate once, untimed, first (allocators, caches, lazy imports).
    ratios : mapping of ratio name -> (numerator, denominator), optional
        Per-round ratios to report, e.g. ``{"naive_over_fast": ("naive", "fast")}``.

    Returns
    -------
    dict
        ``{name: summarise(...) for each candidate}`` plus, under ``"ratios"``, for each requested
        ratio the median, minimum and maximum of the per-round ratios.
    """
    if repeats < 3:
        raise ValueError(f"paired_timings: repeats={repeats}; at least 3 are needed for a median and a spread")
    if warmup:
        for fn in candidates.values():
            fn()
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - start)
    return paired_record(runs, ratios)


def paired_record(runs: Mapping[str, list[float]], ratios: Mapping[str, tuple[str, str]] | None = None) -> dict:
    """The record of ``paired_timings`` from repetitions timed elsewhere (e.g. inside a training loop).

    Parameters
    ----------
    runs : mapping of name -> list of seconds
        Repetition i of every candidate must come from the same round i (interleaved).
    ratios : mapping of ratio name -> (numerator, denominator), optional

    Returns
    -------
    dict
        As :func:`paired_timings`.
    """
    result: dict = {name: summarise(list(seconds)) for name, seconds in runs.items()}
    if ratios:
        result["ratios"] = {}
        for label, (num, den) in ratios.items():
            per_round = [a / b for a, b in zip(runs[num], runs[den])]
            result["ratios"][label] = {"median": round(statistics.median(per_round), 3),
                                       "min": round(min(per_round), 3), "max": round(max(per_round), 3)}
    return result

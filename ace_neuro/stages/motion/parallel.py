"""Splitting per-frame work over worker threads."""
from __future__ import annotations

import os
from concurrent.futures import Executor, Future
from typing import Callable


def default_workers(n_workers: int | None) -> int:
    """Number of worker threads: as given, else one per CPU core (at most 8)."""
    if n_workers is None:
        return max(1, min(os.cpu_count() or 1, 8))
    if int(n_workers) < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    return int(n_workers)


def submit_chunks(executor: Executor, n_items: int, n_workers: int,
                  work: Callable[[int, int, int], object]) -> list[Future]:
    """Split ``range(n_items)`` into ``n_workers`` contiguous chunks and submit
    ``work(start, stop, worker_index)`` for each non-empty chunk."""
    bounds = [round(i * n_items / n_workers) for i in range(n_workers + 1)]
    return [executor.submit(work, bounds[i], bounds[i + 1], i)
            for i in range(n_workers) if bounds[i + 1] > bounds[i]]


def run_chunks(executor: Executor, n_items: int, n_workers: int,
               work: Callable[[int, int, int], object]) -> list:
    """:func:`submit_chunks` and wait; re-raises a worker's exception."""
    return [f.result() for f in submit_chunks(executor, n_items, n_workers, work)]

"""Window scores -> segments (smoothing, window cells, runs, merging), and segments compared with a known truth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import DEFAULT_MULTI_LABEL_THRESHOLD, TimelineConfig


@dataclass(frozen=True)
class Segment:
    """A stretch of the video where ``label`` wins (single-label) or reaches the threshold (multi-label):
    ``[start, end)`` seconds, ``score`` the label's mean window score over it."""

    label: str
    start: float
    end: float
    score: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start": _seconds(self.start),
            "end": _seconds(self.end),
            "score": round(float(self.score), 6),
        }


def _seconds(value: float) -> float:
    return round(float(value), 6)


# ----------------------------------------------------------------------------------------------------------------
# Scores -> segments


def smooth_scores(scores: np.ndarray, size: int) -> np.ndarray:
    """Centred moving average over `size` windows (the average over the windows that exist at the ends)."""
    scores = np.asarray(scores, dtype=np.float32)
    if size <= 1 or len(scores) <= 1:
        return scores
    half = size // 2
    padded = np.concatenate([np.zeros((1, scores.shape[1]), np.float64), np.cumsum(scores, axis=0, dtype=np.float64)])
    low = np.clip(np.arange(len(scores)) - half, 0, len(scores))
    high = np.clip(np.arange(len(scores)) + (size - half), 0, len(scores))
    return ((padded[high] - padded[low]) / (high - low)[:, None]).astype(np.float32)


def window_cells(spans: np.ndarray) -> np.ndarray:
    """``(W, 2)`` the part of the time line each window stands for: from halfway between its centre and the
    previous window's centre to halfway to the next one's, within the window (the first starts at its window's
    start, the last ends at its end). Cells of overlapping windows tile the covered time."""
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    if len(spans) == 0:
        return spans.copy()
    centres = spans.mean(axis=1)
    middles = (centres[1:] + centres[:-1]) / 2
    starts = np.concatenate([[spans[0, 0]], np.maximum(middles, spans[1:, 0])])
    ends = np.concatenate([np.minimum(middles, spans[:-1, 1]), [spans[-1, 1]]])
    return np.stack([starts, np.maximum(ends, starts)], axis=1)


def find_segments(
    spans: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    *,
    multi_label: bool = False,
    threshold: float | None = None,
    smoothing: int = 1,
    min_gap: float = 0.0,
    min_duration: float = 0.0,
) -> list[Segment]:
    """Segments from window scores (see the module docs).

    Args:
        spans: ``(W, 2)`` window start / end seconds, starts non-decreasing.
        scores: ``(W, K)`` window scores.
        labels: the K labels.
        multi_label: every label reaching `threshold` (default 0.5) instead of the best label of each window.
        threshold: single-label: the score the best label needs (default: none); multi-label: the score a label
            needs.
        smoothing: centred moving average over this many windows before deciding.
        min_gap: a label's segments separated by at most this many seconds are merged.
        min_duration: segments shorter than this are dropped.

    Returns:
        Segments sorted by start (then label); ``score`` is the label's mean unsmoothed score over the windows
        whose cells the segment covers.
    """
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float32).reshape(len(spans), len(labels))
    if len(spans) == 0:
        return []
    cells = window_cells(spans)
    smoothed = smooth_scores(scores, smoothing)
    if multi_label:
        limit = DEFAULT_MULTI_LABEL_THRESHOLD if threshold is None else threshold
        runs = []
        for k in range(len(labels)):
            runs += _merge_same_label(_runs(smoothed[:, k] >= limit, k), cells, min_gap)
    else:
        best = smoothed.argmax(axis=1)
        if threshold is not None:
            best = np.where(smoothed[np.arange(len(best)), best] >= threshold, best, -1)
        runs = _merge_across_gaps(_label_runs(best), cells, min_gap)
    segments = []
    for k, first, last in runs:
        start, end = float(cells[first, 0]), float(cells[last, 1])
        if end - start + 1e-9 < min_duration or end <= start:
            continue
        segments.append(Segment(labels[k], start, end, float(scores[first : last + 1, k].mean())))
    return sorted(segments, key=lambda s: (s.start, s.label))


def _runs(mask: np.ndarray, label: int) -> list[tuple[int, int, int]]:
    """(label, first window, last window) of each run of True in `mask`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(label, int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _label_runs(best: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, first, last) of each run of equal values in `best` (-1: no label)."""
    change = np.flatnonzero(np.diff(best)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(best)]]) - 1
    return [(int(best[a]), int(a), int(b)) for a, b in zip(starts, ends)]


def _merge_same_label(runs: list[tuple[int, int, int]], cells: np.ndarray, min_gap: float):
    merged: list[tuple[int, int, int]] = []
    for run in runs:
        if merged and cells[run[1], 0] - cells[merged[-1][2], 1] <= min_gap + 1e-9:
            merged[-1] = (run[0], merged[-1][1], run[2])
        else:
            merged.append(run)
    return merged


def _merge_across_gaps(runs: list[tuple[int, int, int]], cells: np.ndarray, min_gap: float):
    """Single-label: a label's run, a stretch of other labels (or none) lasting at most `min_gap`, and the same
    label again become one run of that label. Runs without a label are dropped."""
    merged: list[tuple[int, int, int]] = []
    for run in runs:
        if run[0] < 0:
            continue
        if merged:
            back = len(merged) - 1
            while back >= 0 and merged[back][0] != run[0]:
                back -= 1
            if back >= 0 and cells[run[1], 0] - cells[merged[back][2], 1] <= min_gap + 1e-9:
                merged[back:] = [(run[0], merged[back][1], run[2])]
                continue
        merged.append(run)
    return merged


def _segment_options(config: TimelineConfig) -> dict[str, Any]:
    return dict(
        multi_label=config.multi_label,
        threshold=config.threshold,
        smoothing=config.smoothing,
        min_gap=config.effective_min_gap,
        min_duration=config.min_duration,
    )


# ----------------------------------------------------------------------------------------------------------------
# Evaluation against a known truth


def evaluate_segments(predicted: Iterable[Any], truth: Iterable[Any]) -> dict[str, Any]:
    """Single-label segments against the true ones (e.g. a generated video of known actions).

    Segments are [`Segment`] objects, ``{"label", "start", "end"}`` dicts or ``(label, start, end)`` tuples.

    Returns:
        ``segment_accuracy``: fraction of true segments whose most-covering predicted label (by overlapping time)
        is the true label; ``time_accuracy``: fraction of the true segments' time covered by a predicted segment of
        the right label; ``boundary_errors``: for each boundary between two true segments, the distance in seconds
        to the nearest predicted boundary (a start or end of a predicted segment strictly inside the truth's time
        range), with ``mean_boundary_error`` and ``max_boundary_error``; ``num_predicted`` / ``num_truth``.
    """
    pred = [_as_triple(s) for s in predicted]
    true = [_as_triple(s) for s in truth]
    if not true:
        raise ValueError("evaluate_segments needs at least one true segment.")

    def overlap(a, b) -> float:
        return max(0.0, min(a[2], b[2]) - max(a[1], b[1]))

    right_segments = 0
    right_time = 0.0
    for segment in true:
        covered: dict[str, float] = {}
        for guess in pred:
            covered[guess[0]] = covered.get(guess[0], 0.0) + overlap(segment, guess)
        right_time += covered.get(segment[0], 0.0)
        if covered and max(covered.values()) > 0 and max(covered, key=covered.get) == segment[0]:
            right_segments += 1
    low, high = min(s[1] for s in true), max(s[2] for s in true)
    true_bounds = sorted({s[2] for s in true if s[2] < high - 1e-9})
    guess_bounds = sorted({t for s in pred for t in (s[1], s[2]) if low + 1e-9 < t < high - 1e-9})
    errors = [min((abs(b - g) for g in guess_bounds), default=float("inf")) for b in true_bounds]
    total = sum(s[2] - s[1] for s in true)
    return {
        "segment_accuracy": right_segments / len(true),
        "time_accuracy": right_time / total if total > 0 else float("nan"),
        "boundary_errors": errors,
        "mean_boundary_error": float(np.mean(errors)) if errors else 0.0,
        "max_boundary_error": float(max(errors)) if errors else 0.0,
        "num_predicted": len(pred),
        "num_truth": len(true),
    }


def _as_triple(segment: Any) -> tuple[str, float, float]:
    if isinstance(segment, Segment):
        return segment.label, segment.start, segment.end
    if isinstance(segment, dict):
        return segment["label"], float(segment["start"]), float(segment["end"])
    label, start, end = segment[:3]
    return label, float(start), float(end)


__all__ = ["Segment", "evaluate_segments", "find_segments", "smooth_scores", "window_cells"]

"""When does each label happen in a long video: per-window zero-shot scores, segments, a plot and an HTML view.

`video_timeline(classifier, video, labels)` cuts the video into windows of ``window`` seconds every ``stride``
seconds and scores every window against the labels with the zero-shot pipeline's own scoring, so a window's scores
are what ``classifier`` gives for that clip (single-label softmax, or the pipeline's calibrated multi-label
probabilities, `hf_xclip.multilabel`):

1. the labels are encoded once ([`ZeroShotVideoClassificationPipeline.prepare_labels`], through the label core);
2. the video is decoded once, front to back ([`hf_xclip.video_io.iter_windows`]): the model's frame count is
   sampled by time inside each window, each frame that any window needs is decoded once, and frames are dropped
   after their last window, so memory does not grow with the video's length. Frames are downscaled while decoding
   to the short side the processor resizes to, so the processor only crops and normalises;
3. windows are preprocessed by the model's video processor and scored in batches
   ([`ZeroShotVideoClassificationPipeline.score_clips`]) while a background thread decodes the next batch.

Segments ([`find_segments`]) come from the scores: optionally smoothed over neighbouring windows; each window
stands for the time closer to its centre than to its neighbours' (its *cell*, so cells tile the covered time);
single-label: the best label of each window (when its score reaches ``threshold``, if one is given); multi-label:
every label whose score reaches ``threshold`` (0.5 by default). Runs of windows give segments; a label's segments
separated by at most ``min_gap`` seconds are merged (in single-label mode the short interruption disappears), and
segments shorter than ``min_duration`` are dropped.

The [`Timeline`] result writes JSON (``to_json``), CSV (one row per window), a heat-strip plot (``plot``, needs
matplotlib) and a self-contained HTML page with the video (``to_html``); [`evaluate_segments`] compares segments
with a known truth.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from .labels import DEFAULT_NEGATIVE_TEMPLATE
from .multilabel import MULTI_LABEL_METHODS
from .video_io import BROKEN_TAIL_MODES, TAIL_MODES, VideoDecodeError, iter_windows, video_name

logger = logging.get_logger(__name__)

DEFAULT_MULTI_LABEL_THRESHOLD = 0.5
# Videos up to this size are embedded in the HTML page (base64); larger ones are linked by a relative path.
HTML_EMBED_LIMIT = 64 * 2**20
_VIDEO_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg",
               ".mov": "video/quicktime", ".mkv": "video/x-matroska"}


# ----------------------------------------------------------------------------------------------------------------
# Options


@dataclass
class TimelineConfig:
    """How a video is cut into windows and how window scores become segments (every option of `video_timeline`)."""

    window: float = field(default=4.0, metadata={"help": "Window length in seconds (the model sees T frames of it)."})
    stride: float | None = field(
        default=None, metadata={"help": "Seconds between window starts; default window / 2 (half-overlapping)."}
    )
    multi_label: bool = field(
        default=False,
        metadata={"help": "Independent per-label probabilities (the pipeline's multi-label scores) instead of a "
                          "softmax over the labels."},
    )
    multi_label_method: str = field(
        default="auto",
        metadata={"help": "Multi-label scores (hf_xclip.multilabel): 'sigmoid' (the model's calibrated head), "
                          "'background' (each label against generic prompts), 'negative' (against 'not {label}'); "
                          "'auto': the head when the model has one, else 'background'."},
    )
    threshold: float | None = field(
        default=None,
        metadata={"help": "Score a label needs in a window: multi-label default 0.5; single-label default none (the "
                          "best label of every window counts)."},
    )
    smoothing: int = field(
        default=1, metadata={"help": "Centred moving average of the scores over this many windows (1 = none)."}
    )
    min_gap: float | None = field(
        default=None,
        metadata={"help": "Merge a label's segments separated by at most this many seconds; default: one stride."},
    )
    min_duration: float = field(default=0.0, metadata={"help": "Drop segments shorter than this (seconds)."})
    hypothesis_template: str | tuple[str, ...] | None = field(
        default=None, metadata={"help": "Text template(s) of the labels; default: the model's own."}
    )
    negative_template: str = field(
        default=DEFAULT_NEGATIVE_TEMPLATE, metadata={"help": "Negative prompt of multi_label_method='negative'."}
    )
    num_frames: int | None = field(default=None, metadata={"help": "Frames per window; default: the model's."})
    batch_size: int = field(default=8, metadata={"help": "Windows per forward pass."})
    start_time: float | None = field(default=None, metadata={"help": "Start of the part to cover (seconds)."})
    end_time: float | None = field(default=None, metadata={"help": "End of the part to cover (seconds)."})
    tail: str = field(
        default="shift", metadata={"help": "'shift': a last full window ending at the end; 'partial': a shorter one."}
    )
    decode_resize: bool = field(
        default=True,
        metadata={"help": "Downscale while decoding to the processor's resize size (fast). False: decode full frames "
                          "and let the processor resize them, exactly as a plain pipeline call does."},
    )
    broken_tail: str = field(
        default="keep",
        metadata={"help": "'keep': a file cut short or damaged near its end gives the windows before the break (see "
                          "Timeline.truncated); 'error': raise."},
    )
    prefetch: int = field(default=2, metadata={"help": "Batches decoded ahead in a background thread (0: no thread)."})

    def __post_init__(self) -> None:
        for name in ("window", "stride", "min_gap", "min_duration", "threshold", "start_time", "end_time"):
            value = getattr(self, name)
            positive = name in ("window", "stride")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                                      or not math.isfinite(value) or value < 0 or (positive and value == 0)):
                kind = "positive" if positive else "non-negative"
                unit = "" if name == "threshold" else " of seconds"
                raise ValueError(f"`{name}` must be a {kind} number{unit}, got {value!r}.")
        if self.threshold is not None and self.threshold > 1:
            raise ValueError(f"`threshold` must lie in [0, 1], got {self.threshold!r}.")
        for name, low in (("smoothing", 1), ("batch_size", 1), ("prefetch", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
        if self.num_frames is not None and (not isinstance(self.num_frames, int) or self.num_frames < 1):
            raise ValueError(f"`num_frames` must be a positive integer, got {self.num_frames!r}.")
        if self.tail not in TAIL_MODES:
            raise ValueError(f"`tail` must be one of {TAIL_MODES}, got {self.tail!r}.")
        if self.multi_label_method not in MULTI_LABEL_METHODS:
            raise ValueError(
                f"`multi_label_method` must be one of {MULTI_LABEL_METHODS}, got {self.multi_label_method!r}."
            )
        if self.broken_tail not in BROKEN_TAIL_MODES:
            raise ValueError(f"`broken_tail` must be one of {BROKEN_TAIL_MODES}, got {self.broken_tail!r}.")

    @property
    def effective_stride(self) -> float:
        return self.window / 2 if self.stride is None else float(self.stride)

    @property
    def effective_threshold(self) -> float | None:
        if self.threshold is None and self.multi_label:
            return DEFAULT_MULTI_LABEL_THRESHOLD
        return self.threshold

    @property
    def effective_min_gap(self) -> float:
        return self.effective_stride if self.min_gap is None else float(self.min_gap)


# ----------------------------------------------------------------------------------------------------------------
# Results


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
        return {"label": self.label, "start": _seconds(self.start), "end": _seconds(self.end),
                "score": round(float(self.score), 6)}


@dataclass
class Timeline:
    """Per-window scores of a video and the segments found in them (what `video_timeline` returns).

    Attributes:
        video: the video's path (or a description of the input).
        duration: seconds of the video (from its frames' timestamps); fps: its average frame rate.
        window / stride: the windowing, in seconds.
        labels: the candidate labels, score column order.
        spans: ``(W, 2)`` start and end of each window in seconds.
        scores: ``(W, K)`` float32 scores of each window (before any smoothing).
        segments: the segments, by start time.
        config: the options the timeline was made (and segmented) with.
        truncated: ``None``, or why the windows stop before the end of the video (a broken tail).
        warnings: anything a reader of the results should know (e.g. the header announces a longer video).
        stats: counters of the run: ``frames_decoded`` (by the decoder), ``frames_needed`` (distinct frames the
            windows sample; each was converted once), ``seconds`` (wall time), ``forward_seconds`` (model time),
            ``backend``, ``model``.
    """

    video: str
    duration: float
    fps: float | None
    window: float
    stride: float
    labels: list[str]
    spans: np.ndarray
    scores: np.ndarray
    segments: list[Segment]
    config: TimelineConfig = field(default_factory=TimelineConfig)
    truncated: str | None = None
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        return self.config.multi_label

    def resegment(self, **options: Any) -> Timeline:
        """A copy with segments found again with other segmentation options (``smoothing``, ``threshold``,
        ``min_gap``, ``min_duration``; the scores are not recomputed)."""
        allowed = {"smoothing", "threshold", "min_gap", "min_duration"}
        unknown = set(options) - allowed
        if unknown:
            raise TypeError(f"resegment() takes only {sorted(allowed)}, got {sorted(unknown)}")
        config = replace(self.config, **options)
        segments = find_segments(self.spans, self.scores, self.labels, **_segment_options(config))
        return replace(self, config=config, segments=segments)

    def top_labels(self, count: int) -> list[str]:
        """Up to `count` labels to show: those with the most segment time first, then the highest-scoring others;
        labels with segments in order of their first segment, the others after them by peak score."""
        first: dict[str, float] = {}
        total: dict[str, float] = {}
        for segment in self.segments:
            first.setdefault(segment.label, segment.start)
            total[segment.label] = total.get(segment.label, 0.0) + segment.duration
        peaks = self.scores.max(axis=0).tolist() if len(self.scores) else [0.0] * len(self.labels)
        peak = dict(zip(self.labels, peaks))
        chosen = sorted(total, key=lambda label: (-total[label], first[label]))[:count]
        chosen.sort(key=lambda label: first[label])
        rest = sorted((label for label in self.labels if label not in total), key=lambda label: -peak[label])
        return chosen + rest[: count - len(chosen)]

    # -- serialisation ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: ``video``, ``duration``, ``fps``, ``window``, ``stride``, ``windows`` (``start``,
        ``end``, ``scores`` per label), ``segments`` (``label``, ``start``, ``end``, ``score``), plus ``labels``,
        ``multi_label``, ``threshold``, ``options``, ``truncated``, ``warnings`` and ``stats``."""
        config = asdict(self.config)
        if isinstance(config.get("hypothesis_template"), tuple):
            config["hypothesis_template"] = list(config["hypothesis_template"])
        return {
            "video": self.video,
            "duration": _seconds(self.duration),
            "fps": self.fps,
            "window": float(self.window),
            "stride": float(self.stride),
            "labels": list(self.labels),
            "multi_label": self.multi_label,
            "multi_label_method": self.stats.get("multi_label_method"),
            "threshold": self.config.effective_threshold,
            "windows": [
                {"start": _seconds(a), "end": _seconds(b),
                 "scores": {label: round(float(s), 6) for label, s in zip(self.labels, row)}}
                for (a, b), row in zip(self.spans.tolist(), self.scores)
            ],
            "segments": [segment.to_dict() for segment in self.segments],
            "options": config,
            "truncated": self.truncated,
            "warnings": list(self.warnings),
            "stats": dict(self.stats),
        }

    def to_json(self, path: str | os.PathLike | None = None, indent: int | None = 1) -> str:
        """The JSON text of [`to_dict`]; written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"
        if path is not None:
            _write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """The timeline of a [`to_dict`] document (e.g. to plot or re-segment it without the model)."""
        try:
            labels = list(data.get("labels") or (data["windows"][0]["scores"] if data["windows"] else []))
            spans = np.array([[w["start"], w["end"]] for w in data["windows"]], dtype=np.float64).reshape(-1, 2)
            scores = np.array([[w["scores"][label] for label in labels] for w in data["windows"]], dtype=np.float32)
            known = {f.name for f in fields(TimelineConfig)}
            options = {k: v for k, v in (data.get("options") or {}).items() if k in known}
            if isinstance(options.get("hypothesis_template"), list):
                options["hypothesis_template"] = tuple(options["hypothesis_template"])
            config = TimelineConfig(**{"window": data["window"], "stride": data["stride"], **options})
            return cls(
                video=data["video"], duration=float(data["duration"]), fps=data.get("fps"),
                window=float(data["window"]), stride=float(data["stride"]), labels=labels,
                spans=spans, scores=scores.reshape(len(spans), len(labels)),
                segments=[Segment(s["label"], float(s["start"]), float(s["end"]), float(s["score"]))
                          for s in data["segments"]],
                config=config, truncated=data.get("truncated"), warnings=list(data.get("warnings") or []),
                stats=dict(data.get("stats") or {}),
            )
        except (KeyError, TypeError, IndexError) as err:
            raise ValueError(f"not a timeline document: missing or malformed {err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Timeline:
        """Read a timeline written by [`to_json`].

        Raises:
            ValueError: naming the file, when it is not a timeline document.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (ValueError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: {err}") from None

    def to_csv(self, path: str | os.PathLike | io.TextIOBase) -> None:
        """One row per window: ``start,end,top_label,top_score`` and one column per label."""
        rows: list[list[Any]] = [["start", "end", "top_label", "top_score", *self.labels]]
        for (start, end), row in zip(self.spans.tolist(), self.scores):
            best = int(np.argmax(row)) if len(row) else 0
            rows.append([f"{start:.6g}", f"{end:.6g}", self.labels[best], f"{row[best]:.6f}",
                         *(f"{s:.6f}" for s in row)])
        if isinstance(path, (str, os.PathLike)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows(rows)
        else:
            csv.writer(path).writerows(rows)

    def format_segments(self) -> str:
        """The segments as a text table (start - end, duration, score, label)."""
        if not self.segments:
            return "(no segments)"
        lines = []
        for segment in self.segments:
            span = f"{format_time(segment.start, 1)} - {format_time(segment.end, 1)}"
            lines.append(f"{span:>19}  {segment.duration:6.1f} s  {segment.score:6.1%}  {segment.label}")
        return "\n".join(lines)

    # -- views ------------------------------------------------------------------------------------------------

    def plot(self, path: str | os.PathLike, top_labels: int = 20, dpi: int = 100) -> Path:
        """Save the labels x time heat strip with the segments drawn on it (see [`plot_timeline`])."""
        return plot_timeline(self, path, top_labels=top_labels, dpi=dpi)

    def to_html(self, path: str | os.PathLike, top_labels: int = 30, embed_video: bool | None = None) -> Path:
        """Write a self-contained HTML page: the video, the heat strip, and the segments, which seek the video when
        clicked (see [`timeline_html`])."""
        return timeline_html(self, path, top_labels=top_labels, embed_video=embed_video)


def _seconds(value: float) -> float:
    return round(float(value), 6)


def _write_text(path: str | os.PathLike, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


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
    return dict(multi_label=config.multi_label, threshold=config.threshold, smoothing=config.smoothing,
                min_gap=config.effective_min_gap, min_duration=config.min_duration)


# ----------------------------------------------------------------------------------------------------------------
# Running the model


def video_timeline(
    classifier: Any,
    video: Any,
    candidate_labels: Any,
    config: TimelineConfig | None = None,
    *,
    label_descriptions: Any = None,
    label_bank: Any = None,
    progress: bool | Callable[[int], Any] = False,
    **options: Any,
) -> Timeline:
    """Scores of every window of a video against `candidate_labels`, and the segments where each label happens.

    Args:
        classifier: a `pipeline("zero-shot-video-classification")` (its model, processor, label cache, device and
            scoring are used), or a model directory / Hub id to build one from.
        video: a path, ``bytes`` or binary file object of a video file.
        candidate_labels: label texts (a list, or one comma-separated string); None with a `label_bank`: all of
            its labels.
        config: a [`TimelineConfig`]; keyword `options` override its fields (``window=``, ``stride=``,
            ``multi_label=``, ``threshold=``, ``smoothing=``, ``min_gap=``, ...).
        label_descriptions / label_bank: the pipeline's label-side options (sentences per label ensembled with the
            templates; label embeddings encoded once, `hf_xclip.labels.LabelBank` or its path), see
            [`ZeroShotVideoClassificationPipeline.prepare_labels`].
        progress: show a progress bar on stderr, or a callable given the number of windows done after each batch.

    Returns:
        A [`Timeline`].

    Raises:
        ValueError: bad labels, templates or options (before the video is read); `VideoDecodeError` (a
            `ValueError` naming the file) for a missing or unreadable video, or one that breaks before its first
            window could be scored; with ``broken_tail="error"`` also for a truncated file.

    Example:

    ```python
    >>> import numpy as np, hf_xclip
    >>> from transformers import pipeline
    >>> from hf_xclip.synthetic import SyntheticVideoSpec, render_sequence
    >>> from hf_xclip.timeline import video_timeline
    >>> from hf_xclip.video_io import write_video
    >>> specs = [SyntheticVideoSpec("circle", "red", "moving left"), SyntheticVideoSpec("square", "blue", "growing")]
    >>> frames, truth = render_sequence(specs, [3, 3], fps=8)
    >>> path = write_video("two_actions.mp4", frames, fps=8, crf=12)
    >>> classifier = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
    >>> timeline = video_timeline(classifier, path, [spec.caption for spec in specs], window=1.5, stride=0.5)
    >>> truth  # (label, start, end) seconds
    [('a red circle moving left', 0.0, 3.0), ('a blue square growing', 3.0, 6.0)]
    >>> [s.label for s in timeline.segments]
    ['a red circle moving left', 'a blue square growing']
    >>> abs(timeline.segments[1].start - 3.0) <= 0.5  # the boundary found within one stride
    True
    ```
    """
    config = replace(config or TimelineConfig(), **options) if options else (config or TimelineConfig())
    classifier = _as_pipeline(classifier)
    started = time.perf_counter()
    labels = classifier.prepare_labels(
        candidate_labels, config.hypothesis_template, config.multi_label, config.multi_label_method,
        config.negative_template, label_descriptions, label_bank,
    )
    processor = classifier.video_processor
    num_frames = config.num_frames or classifier.model.config.vision_config.num_frames
    short_side = processor.resize_short_side(num_crops=1) if config.decode_resize and processor.do_resize else None
    windows = iter_windows(
        video, window=config.window, stride=config.effective_stride, num_frames=num_frames,
        start_time=config.start_time, end_time=config.end_time, tail=config.tail, short_side=short_side,
        broken_tail=config.broken_tail, backend=processor.decode_backend, num_threads=processor.decode_threads,
    )
    info = windows.info
    scores = np.zeros((len(windows), len(labels.labels)), dtype=np.float32)
    done, forward_seconds, truncated = 0, 0.0, info.truncated
    bar = _progress_bar(progress, len(windows), video_name(video))
    try:
        with _WindowBatches(windows, processor, config.batch_size, config.prefetch) as batches:
            for first, pixel_values in batches:
                tick = time.perf_counter()
                scores[first : first + len(pixel_values)] = classifier.score_clips(pixel_values, labels).cpu().numpy()
                forward_seconds += time.perf_counter() - tick
                done = first + len(pixel_values)
                bar(len(pixel_values))
    except VideoDecodeError as err:
        if config.broken_tail != "keep" or done == 0:
            raise
        truncated = err.reason
        logger.warning(f"{err}; keeping the {done} windows before it.")
    finally:
        bar(None)
    spans = windows.spans[:done]
    warnings = _warnings(info, truncated)
    return Timeline(
        video=info.name,
        duration=float(info.duration),
        fps=info.fps,
        window=float(config.window),
        stride=config.effective_stride,
        labels=list(labels.labels),
        spans=spans.copy(),
        scores=scores[:done],
        segments=find_segments(spans, scores[:done], labels.labels, **_segment_options(config)),
        config=config,
        truncated=truncated,
        warnings=warnings,
        stats={
            "model": getattr(classifier.model, "name_or_path", None) or None,
            "multi_label_method": labels.method,
            "windows": done,
            "frames_per_window": num_frames,
            "frames_needed": int(len(np.unique(windows.indices[:done]))),
            "frames_converted": windows.frames_converted,
            "frames_decoded": windows.frames_decoded,
            "frames_in_video": info.num_frames,
            "decode_short_side": short_side,
            "backend": windows.backend,
            "seconds": round(time.perf_counter() - started, 4),
            "forward_seconds": round(forward_seconds, 4),
        },
    )


def _as_pipeline(classifier: Any):
    if isinstance(classifier, (str, os.PathLike)):
        from transformers import pipeline

        from .pipeline_zero_shot_video_classification import TASK

        return pipeline(TASK, model=os.fspath(classifier))
    if not (hasattr(classifier, "prepare_labels") and hasattr(classifier, "score_clips")):
        raise TypeError(
            "video_timeline needs a pipeline('zero-shot-video-classification') from hf_xclip or a model path, got "
            f"{type(classifier).__name__}."
        )
    return classifier


def _warnings(info, truncated: str | None) -> list[str]:
    warnings = []
    if truncated:
        warnings.append(f"{info.name}: broken tail ({truncated}); the windows stop there.")
    header = info.header_duration
    if not truncated and header and info.duration and header > info.duration + max(1.0, 0.05 * info.duration):
        warnings.append(
            f"{info.name}: the header announces {header:.2f} s but the frames end at {info.duration:.2f} s "
            "(a file cut short, or other streams running longer)."
        )
    for warning in warnings:
        logger.warning(warning)
    return warnings


def _progress_bar(progress: bool | Callable[[int], Any], total: int, name: str) -> Callable[[int | None], None]:
    """A callable taking windows done (None: close)."""
    if callable(progress):
        count = [0]

        def report(step: int | None) -> None:
            if step is not None:
                count[0] += step
                progress(count[0])

        return report
    if not progress:
        return lambda step: None
    import sys

    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="window", desc=Path(name).name[:30], file=sys.stderr, dynamic_ncols=True)
    return lambda step: bar.close() if step is None else bar.update(step)


_DONE = object()


class _WindowBatches:
    """``(index of the first window, pixel_values (B, T, 3, S, S))`` batches of a `VideoWindows`, preprocessed by
    the video processor, produced by a background thread up to `prefetch` batches ahead (in the calling thread
    when `prefetch` is 0). A decoding error is raised after the batches before it; leaving the ``with`` block
    stops the thread and closes the video."""

    def __init__(self, windows, processor, batch_size: int, prefetch: int) -> None:
        self.windows, self.processor, self.batch_size, self.prefetch = windows, processor, batch_size, prefetch
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        if self.prefetch == 0:
            return self._batches()
        self._thread = threading.Thread(target=self._produce, name="xclip-timeline-decode", daemon=True)
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._thread.join()
        self.windows.close()

    def _batches(self) -> Iterator[tuple[int, torch.Tensor]]:
        batch: list = []
        try:
            for window in self.windows:
                batch.append(window)
                if len(batch) == self.batch_size:
                    yield self._pixels(batch)
                    batch = []
        except VideoDecodeError:
            if batch:
                yield self._pixels(batch)
            raise
        if batch:
            yield self._pixels(batch)

    def _pixels(self, batch: list) -> tuple[int, torch.Tensor]:
        frames = [window.frames for window in batch]
        pixels = self.processor(frames, do_sample_frames=False, num_crops=1, return_tensors="pt")["pixel_values"]
        return batch[0].index, pixels

    def _produce(self) -> None:
        try:
            for item in self._batches():
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as err:  # handed to the consumer, raised there
            self._put(err)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _consume(self) -> Iterator[tuple[int, torch.Tensor]]:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._thread is not None and not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the decoding thread of the timeline stopped without a result") from None
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


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


# ----------------------------------------------------------------------------------------------------------------
# Plot and HTML


def format_time(seconds: float, decimals: int = 0) -> str:
    """``m:ss`` (``h:mm:ss`` from one hour), with `decimals` digits of the seconds."""
    seconds = max(0.0, float(seconds))
    scale = 10**decimals
    total = round(seconds * scale) / scale
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    width = 2 + (decimals + 1 if decimals else 0)
    text = f"{secs:0{width}.{decimals}f}"
    return f"{int(hours)}:{int(minutes):02d}:{text}" if hours else f"{int(minutes)}:{text}"


def _strip_columns(timeline: Timeline) -> tuple[np.ndarray, list[int | None]]:
    """Time edges of the strip's columns (window cells, with empty columns over gaps) and the window of each."""
    cells = window_cells(timeline.spans)
    edges: list[float] = []
    owners: list[int | None] = []
    for k, (start, end) in enumerate(cells.tolist()):
        if edges and start > edges[-1] + 1e-9:
            owners.append(None)  # a gap no window covers (stride > window)
            edges.append(start)
        elif not edges:
            edges.append(start)
        owners.append(k)
        edges.append(end)
    return np.asarray(edges), owners


def plot_timeline(timeline: Timeline, path: str | os.PathLike, *, top_labels: int = 20, dpi: int = 100) -> Path:
    """Save a labels x time heat strip of the window scores with the segments outlined on it; time in mm:ss.

    With more than `top_labels` labels only that many are drawn ([`Timeline.top_labels`]): the labels with the most
    segment time (rows in order of appearance), then the highest-scoring others; the title says how many were left
    out.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'hf_xclip[plot]'``).
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting a timeline needs matplotlib: pip install 'hf_xclip[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    shown = timeline.top_labels(max(1, top_labels))
    rows = {label: row for row, label in enumerate(shown)}
    columns = [timeline.labels.index(label) for label in shown]
    edges, owners = _strip_columns(timeline)
    grid = np.full((len(shown), len(owners)), np.nan, dtype=np.float32)
    for position, owner in enumerate(owners):
        if owner is not None:
            grid[:, position] = timeline.scores[owner, columns]
    height = 1.3 + 0.26 * len(shown)
    fig, ax = plt.subplots(figsize=(12, max(2.4, height)))
    vmax = 1.0 if timeline.multi_label else max(0.05, float(np.nanmax(grid)) if grid.size else 1.0)
    if grid.size:
        mesh = ax.pcolormesh(edges, np.arange(len(shown) + 1) - 0.5, np.ma.masked_invalid(grid), cmap="viridis",
                             vmin=0.0, vmax=vmax, shading="flat")
        fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.03).set_label("score", fontsize=8)
    for segment in timeline.segments:
        if segment.label in rows:
            ax.add_patch(Rectangle((segment.start, rows[segment.label] - 0.45), segment.duration, 0.9,
                                   fill=False, edgecolor="#ff3b30", linewidth=1.6))
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_xlim(edges[0] if len(edges) else 0.0, edges[-1] if len(edges) else timeline.duration)
    ax.set_yticks(range(len(shown)))
    size = 9 if len(shown) <= 25 else 7
    ax.set_yticklabels([label if len(label) <= 48 else label[:45] + "..." for label in shown], fontsize=size)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: format_time(t)))
    ax.set_xlabel("time (m:ss)", fontsize=9)
    hidden = len(timeline.labels) - len(shown)
    title = (f"{Path(timeline.video).name}: {format_time(timeline.duration)}, windows of {timeline.window:g} s every "
             f"{timeline.stride:g} s, {'multi-label' if timeline.multi_label else 'single-label'}")
    if hidden > 0:
        title += f"; top {len(shown)} of {len(timeline.labels)} labels"
    if timeline.truncated:
        title += " (broken tail: stops early)"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def timeline_html(
    timeline: Timeline, path: str | os.PathLike, *, top_labels: int = 30, embed_video: bool | None = None
) -> Path:
    """Write one HTML file: the video, the heat strip (drawn in the page from the scores; hover for values, click
    to seek) and the list of segments (click to play from there).

    Args:
        embed_video: put the video in the page (base64), so the file stands alone; ``None``: when the video is a
            file of at most 64 MiB, else the page links it by its path relative to the page. Browsers play H.264
            mp4 and WebM; other codecs may show no picture.
    """
    path = Path(path)
    video_file = Path(timeline.video)
    source = None
    if video_file.is_file():
        size = video_file.stat().st_size
        embed = size <= HTML_EMBED_LIMIT if embed_video is None else embed_video
        if embed:
            mime = _VIDEO_MIME.get(video_file.suffix.lower(), "video/mp4")
            source = f"data:{mime};base64," + base64.b64encode(video_file.read_bytes()).decode("ascii")
        else:
            source = Path(os.path.relpath(video_file.resolve(), path.resolve().parent)).as_posix()
    shown = timeline.top_labels(max(1, top_labels))
    columns = [timeline.labels.index(label) for label in shown]
    edges, owners = _strip_columns(timeline)
    data = {
        "labels": shown,
        "edges": [round(float(t), 4) for t in edges],
        "scores": [None if o is None else [round(float(s), 4) for s in timeline.scores[o, columns]] for o in owners],
        "segments": [s.to_dict() for s in timeline.segments],
        "duration": timeline.duration,
        "vmax": 1.0 if timeline.multi_label else max(0.05, float(timeline.scores.max()) if timeline.scores.size else 1),
    }
    hidden = len(timeline.labels) - len(shown)
    rows = "\n".join(
        f'<tr data-start="{s.start:.3f}"><td>{format_time(s.start, 1)}</td><td>{format_time(s.end, 1)}</td>'
        f"<td>{s.score:.0%}</td><td>{html.escape(s.label)}</td></tr>"
        for s in timeline.segments
    )
    name = html.escape(Path(timeline.video).name)
    note = f"top {len(shown)} of {len(timeline.labels)} labels; " if hidden > 0 else ""
    if timeline.truncated:
        note += f"broken tail: {html.escape(timeline.truncated)}; "
    if source is None:
        player = f"<p>(the video {name} was not found next to this page)</p>"
    else:
        player = f'<video id="video" controls preload="metadata" src="{html.escape(source, quote=True)}"></video>'
    page = _HTML_TEMPLATE.format(
        title=name,
        player=player,
        summary=html.escape(
            f"{format_time(timeline.duration, 1)}, windows of {timeline.window:g} s every {timeline.stride:g} s, "
            f"{'multi-label' if timeline.multi_label else 'single-label'}; "
        ) + note + f"{len(timeline.segments)} segments",
        rows=rows or '<tr><td colspan="4">(no segments)</td></tr>',
        data=json.dumps(data, ensure_ascii=False).replace("</", "<\\/"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Timeline: {title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
video {{ max-width: 100%; max-height: 50vh; background: #000; display: block; }}
#strip {{ width: 100%; cursor: crosshair; display: block; margin-top: 8px; }}
#tip {{ min-height: 1.4em; color: #555; }}
table {{ border-collapse: collapse; margin-top: 8px; }}
td {{ padding: 2px 10px; border-bottom: 1px solid #eee; }}
tr[data-start] {{ cursor: pointer; }} tr[data-start]:hover {{ background: #eef4ff; }}
</style></head><body>
<h3>{title}</h3><p>{summary}</p>
{player}
<canvas id="strip"></canvas><div id="tip"></div>
<table><tr><th>start</th><th>end</th><th>score</th><th>label</th></tr>
{rows}
</table>
<script type="application/json" id="timeline-data">{data}</script>
<script>
(function () {{
  "use strict";
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var video = document.getElementById("video");
  var canvas = document.getElementById("strip"), tip = document.getElementById("tip");
  var ctx = canvas.getContext("2d");
  var labelWidth = 220, rowHeight = 16, axis = 18;
  var stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var t0 = data.edges.length ? data.edges[0] : 0, t1 = data.edges.length ? data.edges[data.edges.length - 1] : 1;
  function colour(v) {{
    var x = Math.max(0, Math.min(1, v / data.vmax)) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x));
    var f = x - i, a = stops[i], b = stops[i + 1];
    return "rgb(" + [0, 1, 2].map(function (c) {{ return Math.round(a[c] + f * (b[c] - a[c])); }}).join(",") + ")";
  }}
  function fmt(t) {{
    var m = Math.floor(t / 60), s = (t - 60 * m).toFixed(1);
    return m + ":" + (s < 10 ? "0" : "") + s;
  }}
  function xOf(t) {{ return labelWidth + (t - t0) / Math.max(1e-9, t1 - t0) * (canvas.width - labelWidth - 4); }}
  function tOf(x) {{ return t0 + (x - labelWidth) / (canvas.width - labelWidth - 4) * (t1 - t0); }}
  function draw() {{
    canvas.width = canvas.clientWidth || 900;
    canvas.height = data.labels.length * rowHeight + axis;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    data.labels.forEach(function (label, r) {{
      ctx.fillStyle = "#222";
      ctx.fillText(label.length > 34 ? label.slice(0, 32) + "..." : label, 2, r * rowHeight + rowHeight / 2);
      data.scores.forEach(function (column, c) {{
        if (column === null) return;
        ctx.fillStyle = colour(column[r]);
        var x = xOf(data.edges[c]);
        ctx.fillRect(x, r * rowHeight, Math.max(1, xOf(data.edges[c + 1]) - x), rowHeight - 1);
      }});
    }});
    ctx.strokeStyle = "#ff3b30"; ctx.lineWidth = 2;
    data.segments.forEach(function (s) {{
      var r = data.labels.indexOf(s.label);
      if (r >= 0) ctx.strokeRect(xOf(s.start), r * rowHeight + 1, xOf(s.end) - xOf(s.start), rowHeight - 3);
    }});
    ctx.fillStyle = "#555";
    var step = Math.max(1, Math.pow(10, Math.floor(Math.log10((t1 - t0) / 8 || 1))));
    if ((t1 - t0) / step > 16) step *= 5; else if ((t1 - t0) / step > 8) step *= 2;
    for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {{
      ctx.fillText(fmt(t), xOf(t) - 12, canvas.height - axis / 2);
    }}
    if (video) {{
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
      var x = xOf(video.currentTime);
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height - axis); ctx.stroke();
    }}
  }}
  function seek(t) {{
    if (!video) return;
    video.currentTime = Math.max(0, t);
    video.play();
  }}
  canvas.addEventListener("click", function (e) {{
    var x = e.offsetX * canvas.width / canvas.clientWidth;
    if (x >= labelWidth) seek(tOf(x));
  }});
  canvas.addEventListener("mousemove", function (e) {{
    var x = e.offsetX * canvas.width / canvas.clientWidth, r = Math.floor(e.offsetY / rowHeight), t = tOf(x);
    var c = data.edges.findIndex(function (edge, i) {{ return i + 1 < data.edges.length && t < data.edges[i + 1]; }});
    if (x < labelWidth || r < 0 || r >= data.labels.length || c < 0 || data.scores[c] === null) {{
      tip.textContent = ""; return;
    }}
    tip.textContent = fmt(t) + "  " + data.labels[r] + ": " + (100 * data.scores[c][r]).toFixed(1) + " %";
  }});
  document.querySelectorAll("tr[data-start]").forEach(function (row) {{
    row.addEventListener("click", function () {{ seek(parseFloat(row.dataset.start)); }});
  }});
  if (video) video.addEventListener("timeupdate", draw);
  window.addEventListener("resize", draw);
  draw();
}})();
</script></body></html>
"""


__all__ = [
    "DEFAULT_MULTI_LABEL_THRESHOLD",
    "Segment",
    "Timeline",
    "TimelineConfig",
    "evaluate_segments",
    "find_segments",
    "format_time",
    "plot_timeline",
    "smooth_scores",
    "timeline_html",
    "video_timeline",
    "window_cells",
]

"""The options of a timeline: how a video is cut into windows and how window scores become segments."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..labels import DEFAULT_NEGATIVE_TEMPLATE
from ..multilabel import MULTI_LABEL_METHODS
from ..video_io import BROKEN_TAIL_MODES, TAIL_MODES

DEFAULT_MULTI_LABEL_THRESHOLD = 0.5


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
        metadata={
            "help": "Independent per-label probabilities (the pipeline's multi-label scores) instead of a "
            "softmax over the labels."
        },
    )
    multi_label_method: str = field(
        default="auto",
        metadata={
            "help": "Multi-label scores (hf_xclip.multilabel): 'sigmoid' (the model's calibrated head), "
            "'background' (each label against generic prompts), 'negative' (against 'not {label}'); "
            "'auto': the head when the model has one, else 'background'."
        },
    )
    threshold: float | None = field(
        default=None,
        metadata={
            "help": "Score a label needs in a window: multi-label default 0.5; single-label default none (the "
            "best label of every window counts)."
        },
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
        metadata={
            "help": "Downscale while decoding to the processor's resize size (fast). False: decode full frames "
            "and let the processor resize them, exactly as a plain pipeline call does."
        },
    )
    broken_tail: str = field(
        default="keep",
        metadata={
            "help": "'keep': a file cut short or damaged near its end gives the windows before the break (see "
            "Timeline.truncated); 'error': raise."
        },
    )
    prefetch: int = field(default=2, metadata={"help": "Batches decoded ahead in a background thread (0: no thread)."})

    def __post_init__(self) -> None:
        for name in ("window", "stride", "min_gap", "min_duration", "threshold", "start_time", "end_time"):
            value = getattr(self, name)
            positive = name in ("window", "stride")
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float, np.number))
                or not math.isfinite(value)
                or value < 0
                or (positive and value == 0)
            ):
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


__all__ = ["DEFAULT_MULTI_LABEL_THRESHOLD", "TimelineConfig"]

"""Timelines of long videos: windows scored with the pipeline's label side, segments, evaluation against a known
truth, JSON / CSV / plot / HTML reports. ``from hf_xclip.timeline import video_timeline`` is the public entry point.

`config` (`TimelineConfig`) <- `segments` (scores -> `Segment`s, evaluation) <- `result` (`Timeline`, its JSON, CSV,
plot and HTML) <- `runner` (`video_timeline`: windows decoded in a background thread, scored in batches)."""

from .config import DEFAULT_MULTI_LABEL_THRESHOLD, TimelineConfig
from .result import Timeline, format_time, plot_timeline, timeline_html
from .runner import video_timeline
from .segments import (
    Segment,
    evaluate_segments,
    find_segments,
    smooth_scores,
    window_cells,
)

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

"""Timelines of long videos: windows scored with the pipeline's label side, segments, evaluation against a known
truth, JSON / CSV / plot / HTML reports. ``from hf_xclip.timeline import video_timeline`` is the public entry point."""

from .runner import (
    DEFAULT_MULTI_LABEL_THRESHOLD,
    Segment,
    Timeline,
    TimelineConfig,
    evaluate_segments,
    find_segments,
    format_time,
    plot_timeline,
    smooth_scores,
    timeline_html,
    video_timeline,
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

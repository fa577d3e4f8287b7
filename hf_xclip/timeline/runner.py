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

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from ..utils import prefetch
from ..video_io import VideoDecodeError, VideoWindows, video_name
from .config import TimelineConfig
from .result import Timeline
from .segments import _segment_options, find_segments

logger = logging.get_logger(__name__)


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
    >>> from hf_xclip.data.synthetic import SyntheticVideoSpec, render_sequence
    >>> from hf_xclip.timeline import video_timeline
    >>> from hf_xclip.data import write_video
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
    labels = _prepare_labels(classifier, candidate_labels, config, label_descriptions, label_bank)
    num_frames = config.num_frames or classifier.model.config.vision_config.num_frames
    windows, short_side = _open_windows(video, config, classifier.video_processor, num_frames)
    bar = _progress_bar(progress, len(windows), video_name(video))
    scores, forward_seconds, truncated = _score_windows(classifier, windows, labels, config, bar)
    info, spans = windows.info, windows.spans[: len(scores)]
    warnings = _warnings(info, truncated)
    return Timeline(
        video=info.name,
        duration=float(info.duration),
        fps=info.fps,
        window=float(config.window),
        stride=config.effective_stride,
        labels=list(labels.labels),
        spans=spans.copy(),
        scores=scores,
        segments=find_segments(spans, scores, labels.labels, **_segment_options(config)),
        config=config,
        truncated=truncated,
        warnings=warnings,
        stats=_stats(classifier, labels, windows, len(scores), num_frames, short_side, started, forward_seconds),
    )


def _prepare_labels(classifier: Any, candidate_labels: Any, config: TimelineConfig, descriptions: Any, bank: Any):
    """The labels encoded once, with the config's templates and multi-label options."""
    return classifier.prepare_labels(
        candidate_labels,
        config.hypothesis_template,
        config.multi_label,
        config.multi_label_method,
        config.negative_template,
        descriptions,
        bank,
    )


def _open_windows(
    video: Any, config: TimelineConfig, processor: Any, num_frames: int
) -> tuple[VideoWindows, int | None]:
    """The `VideoWindows` of `config` over `video`, decoded as `processor` decodes (backend, threads), downscaled
    while decoding to the short side the processor resizes to (with ``decode_resize``), and that short side."""
    short_side = processor.resize_short_side(num_crops=1) if config.decode_resize and processor.do_resize else None
    windows = processor.iter_windows(
        video,
        window=config.window,
        stride=config.effective_stride,
        num_frames=num_frames,
        start_time=config.start_time,
        end_time=config.end_time,
        tail=config.tail,
        short_side=short_side,
        broken_tail=config.broken_tail,
    )
    return windows, short_side


def _score_windows(
    classifier: Any, windows: VideoWindows, labels: Any, config: TimelineConfig, bar: Callable[[int | None], None]
) -> tuple[np.ndarray, float, str | None]:
    """``(scores (windows done, labels), seconds in the model, truncated)``: every window scored in batches; a
    video that breaks after its first scored window keeps the windows before it with ``broken_tail="keep"``
    (`truncated` then says why), else the decoding error is raised."""
    scores = np.zeros((len(windows), len(labels.labels)), dtype=np.float32)
    done, forward_seconds, truncated = 0, 0.0, windows.info.truncated
    try:
        with _window_batches(windows, classifier.video_processor, config.batch_size, config.prefetch) as batches:
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
    return scores[:done], forward_seconds, truncated


def _stats(
    classifier: Any,
    labels: Any,
    windows: VideoWindows,
    done: int,
    num_frames: int,
    short_side: int | None,
    started: float,
    forward_seconds: float,
) -> dict[str, Any]:
    """`Timeline.stats`: the model, the windows scored, what decoding them took, the time spent."""
    return {
        "model": getattr(classifier.model, "name_or_path", None) or None,
        "multi_label_method": labels.method,
        "windows": done,
        "frames_per_window": num_frames,
        "frames_needed": int(len(np.unique(windows.indices[:done]))),
        "frames_converted": windows.frames_converted,
        "frames_decoded": windows.frames_decoded,
        "frames_in_video": windows.info.num_frames,
        "decode_short_side": short_side,
        "backend": windows.backend,
        "seconds": round(time.perf_counter() - started, 4),
        "forward_seconds": round(forward_seconds, 4),
    }


def _as_pipeline(classifier: Any):
    if isinstance(classifier, (str, os.PathLike)):
        from transformers import pipeline

        from ..pipeline_zero_shot_video_classification import TASK

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


@contextlib.contextmanager
def _window_batches(windows, processor, batch_size: int, depth: int) -> Iterator[Iterator[tuple[int, torch.Tensor]]]:
    """``(index of the first window, pixel_values (B, T, 3, S, S))`` batches of a `VideoWindows`, preprocessed by
    the video processor, produced by a background thread up to `depth` batches ahead (in the calling thread when
    `depth` is 0). A decoding error is raised after the batches before it; leaving the ``with`` block stops the
    thread and closes the video."""
    try:
        if depth == 0:
            yield _batches(windows, processor, batch_size)
            return
        produce = lambda source: _batches(source, processor, batch_size)  # noqa: E731
        with contextlib.closing(prefetch([windows], produce, depth=depth, name="xclip-timeline-decode")) as streams:
            yield next(streams)[1]
    finally:
        windows.close()


def _batches(windows, processor, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    batch: list = []
    try:
        for window in windows:
            batch.append(window)
            if len(batch) == batch_size:
                yield _pixels(batch, processor)
                batch = []
    except VideoDecodeError:
        if batch:
            yield _pixels(batch, processor)
        raise
    if batch:
        yield _pixels(batch, processor)


def _pixels(batch: list, processor) -> tuple[int, torch.Tensor]:
    frames = [window.frames for window in batch]
    pixels = processor(frames, do_sample_frames=False, num_crops=1, return_tensors="pt")["pixel_values"]
    return batch[0].index, pixels


__all__ = ["video_timeline"]

"""`hf_xclip.timeline` and `hf-xclip timeline`: window scores equal the pipeline's, streaming (each needed frame
decoded once, labels encoded once, windows batched), segments, awkward videos, outputs."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading

import numpy as np
import pytest
import torch
from testing_utils import coded_frames, write_vfr
from transformers import pipeline

import hf_xclip
from hf_xclip import video_decoding
from hf_xclip.cli import main
from hf_xclip.data import write_video
from hf_xclip.data.synthetic import SyntheticVideoSpec, render_sequence
from hf_xclip.pipeline_zero_shot_video_classification import TASK
from hf_xclip.timeline import (
    Segment,
    Timeline,
    TimelineConfig,
    evaluate_segments,
    find_segments,
    format_time,
    smooth_scores,
    video_timeline,
    window_cells,
)
from hf_xclip.video_io import VideoDecodeError, VideoNotFoundError, iter_windows

LABELS = ["playing guitar", "surfing", "eating spaghetti", "walking the dog"]
FPS = 25


@pytest.fixture(scope="module")
def clf(model_dir):
    return pipeline(TASK, model=str(model_dir))


@pytest.fixture(scope="module")
def videos(workdir):
    frames = coded_frames(100, height=60, width=80)  # 4 s at 25 fps
    paths = {"mp4": write_video(workdir / "cfr.mp4", frames, fps=FPS, gop_size=12)}
    paths["h264"] = write_video(workdir / "raw.h264", frames, fps=FPS, gop_size=12)  # no timestamps, no duration
    paths["vfr"] = write_vfr(workdir / "vfr.mp4", frames, [40] * 50 + [100] * 50)  # 2 s at 25 fps, 5 s at 10 fps
    paths["short"] = write_video(workdir / "short.mp4", frames[:10], fps=FPS)  # 0.4 s
    faststart = write_video(workdir / "faststart.mp4", frames, fps=FPS, gop_size=12, faststart=True)
    paths["faststart"] = faststart
    paths["truncated"] = workdir / "truncated.mp4"  # a download cut short: the index announces 100 frames
    paths["truncated"].write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.6)])
    paths["mkv"] = write_video(workdir / "cfr.mkv", frames, fps=FPS, gop_size=12)
    paths["cut_mkv"] = workdir / "cut.mkv"  # a recording cut short: the header still says 4 s
    paths["cut_mkv"].write_bytes(paths["mkv"].read_bytes()[: int(paths["mkv"].stat().st_size * 0.6)])
    return paths


def pipeline_scores(clf, video, start, end, short_side=None, **call) -> np.ndarray:
    """The pipeline's scores (label order) of the clip [start, end) of a video, frames sampled as a window's."""
    processor = clf.video_processor
    saved = processor.start_time, processor.end_time, processor.decode_short_side
    processor.start_time, processor.end_time, processor.decode_short_side = start, end, short_side
    try:
        result = clf(str(video), candidate_labels=LABELS, **call)
    finally:
        processor.start_time, processor.end_time, processor.decode_short_side = saved
    scores = {item["label"]: item["score"] for item in result}
    return np.array([scores[label] for label in LABELS])


# ------------------------------------------------------------------------------------------------------------------
# Scores: the pipeline's, window by window


@pytest.mark.parametrize(
    "call, method",
    [
        ({}, None),
        ({"multi_label": True}, "background"),
        ({"multi_label": True, "multi_label_method": "negative"}, "negative"),
    ],
)
def test_window_scores_equal_the_pipeline_scores_of_the_same_clip(clf, videos, call, method):
    timeline = video_timeline(clf, videos["mp4"], LABELS, window=1.2, stride=0.7, batch_size=3, **call)
    assert timeline.stats["multi_label_method"] == method  # "auto": background prompts for a model without a head
    short_side = clf.video_processor.resize_short_side(num_crops=1)
    assert timeline.stats["decode_short_side"] == short_side == 32  # the processor's resize (size: 32)
    assert len(timeline.spans) == 5
    for (start, end), scores in zip(timeline.spans, timeline.scores):
        expected = pipeline_scores(clf, videos["mp4"], start, end, short_side, **call)
        np.testing.assert_allclose(scores, expected, atol=1e-5)  # batched vs single: float rounding only


def test_multi_label_uses_the_models_calibrated_head(clf, videos, monkeypatch):
    monkeypatch.setattr(clf.model.config, "multi_label_scale", 8.0)
    timeline = video_timeline(clf, videos["mp4"], LABELS, window=2, stride=1, multi_label=True, threshold=0.64)
    assert timeline.stats["multi_label_method"] == "sigmoid" and timeline.to_dict()["multi_label_method"] == "sigmoid"
    short_side = clf.video_processor.resize_short_side(num_crops=1)
    for (start, end), scores in zip(timeline.spans, timeline.scores):
        expected = pipeline_scores(clf, videos["mp4"], start, end, short_side, multi_label=True)
        np.testing.assert_allclose(scores, expected, atol=1e-5)
    cells = window_cells(timeline.spans)
    for (start, end), scores in zip(cells, timeline.scores):  # a window reaching 0.64 lies in its label's segment
        for label, score in zip(LABELS, scores):
            inside = [s for s in timeline.segments if s.start <= start + 1e-9 and end <= s.end + 1e-9]
            assert score < 0.64 or label in [s.label for s in inside]
    assert timeline.segments and all(s.score >= 0.64 for s in timeline.segments)


def test_label_bank_and_descriptions_go_through_the_pipelines_label_side(clf, videos, workdir):
    plain = video_timeline(clf, videos["mp4"], LABELS, window=2, stride=1)
    bank = clf.label_encoder.bank(LABELS, clf.hypothesis_template)
    path = bank.save(workdir / "labels.bank")
    from_bank = video_timeline(clf, videos["mp4"], None, window=2, stride=1, label_bank=path)  # all its labels
    assert from_bank.labels == LABELS
    np.testing.assert_allclose(from_bank.scores, plain.scores, atol=1e-6)
    descriptions = {"surfing": ["riding a wave on a board", "standing on a surfboard"]}
    described = video_timeline(clf, videos["mp4"], LABELS, window=2, stride=1, label_descriptions=descriptions)
    short_side = clf.video_processor.resize_short_side(num_crops=1)
    for (start, end), scores in zip(described.spans, described.scores):
        expected = pipeline_scores(clf, videos["mp4"], start, end, short_side, label_descriptions=descriptions)
        np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert not np.allclose(described.scores, plain.scores, atol=1e-4)  # the descriptions changed "surfing"


def test_exact_resize_equals_a_plain_pipeline_call(clf, videos):
    timeline = video_timeline(clf, videos["mp4"], LABELS, window=2, stride=1, decode_resize=False)
    assert timeline.stats["decode_short_side"] is None
    for (start, end), scores in zip(timeline.spans, timeline.scores):
        np.testing.assert_allclose(scores, pipeline_scores(clf, videos["mp4"], start, end), atol=1e-5)


def test_frames_scaled_while_decoding_are_only_cropped_by_the_processor(clf, videos, monkeypatch):
    from hf_xclip import video_processing_transforms

    resized = []
    resize = video_processing_transforms._resize
    monkeypatch.setattr(
        video_processing_transforms, "_resize", lambda images, *a: resized.append(images.shape) or resize(images, *a)
    )
    video_timeline(clf, videos["mp4"], LABELS, window=2, stride=1)
    assert resized == []
    video_timeline(clf, videos["mp4"], LABELS, window=2, stride=1, decode_resize=False)
    assert resized and all(shape[-2:] == (60, 80) for shape in resized)


# ------------------------------------------------------------------------------------------------------------------
# Streaming: decoded once, encoded once, batched


def test_each_needed_frame_is_decoded_once_and_labels_encoded_once(clf, videos, monkeypatch):
    clf.clear_text_cache()
    text_calls, video_batches = [], []
    get_text, get_video = clf.model.get_text_features, clf.model.get_video_features
    monkeypatch.setattr(clf.model, "get_text_features", lambda *a, **k: text_calls.append(1) or get_text(*a, **k))
    monkeypatch.setattr(
        clf.model, "get_video_features", lambda pixels, **k: video_batches.append(len(pixels)) or get_video(pixels, **k)
    )
    timeline = video_timeline(clf, videos["mp4"], LABELS, window=0.8, stride=0.2, batch_size=4)
    plan = iter_windows(videos["mp4"], window=0.8, stride=0.2, num_frames=4)
    assert np.array_equal(timeline.spans, plan.spans) and len(plan) == 17
    needed = len(np.unique(plan.indices))
    stats = timeline.stats
    assert stats["frames_needed"] == stats["frames_converted"] == needed < plan.indices.size  # shared frames once
    assert stats["frames_decoded"] <= stats["frames_in_video"] == 100
    assert text_calls == [1]  # all labels in one text batch, once
    assert video_batches == [4, 4, 4, 4, 1]


def test_background_decoding_gives_the_same_timeline(clf, videos):
    threaded = video_timeline(clf, videos["mp4"], LABELS, window=1, stride=0.5, prefetch=2, batch_size=2)
    inline = video_timeline(clf, videos["mp4"], LABELS, window=1, stride=0.5, prefetch=0, batch_size=5)
    np.testing.assert_allclose(threaded.scores, inline.scores, atol=1e-5)
    assert triples(threaded.segments) == triples(inline.segments)


def test_a_failing_model_stops_the_decoding_thread(clf, videos, monkeypatch):
    calls = []

    def failing(pixel_values, labels):
        calls.append(1)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(clf, "score_clips", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        video_timeline(clf, videos["mp4"], LABELS, window=0.4, stride=0.1, batch_size=1, prefetch=1)
    assert calls == [1]
    assert not [t for t in threading.enumerate() if t.name == "xclip-timeline-decode"]


# ------------------------------------------------------------------------------------------------------------------
# Awkward videos: results, or errors naming the file; never a hang


def test_variable_frame_rate_windows_follow_the_timestamps(clf, videos):
    timeline = video_timeline(clf, videos["vfr"], LABELS, window=2, stride=2)
    assert timeline.duration == pytest.approx(7.0)  # 50 x 40 ms + 50 x 100 ms
    assert timeline.spans.tolist() == [[0, 2], [2, 4], [4, 6], [5, 7]]
    assert timeline.segments[0].start == 0 and timeline.segments[-1].end == pytest.approx(7.0)


def test_stream_without_timestamps_or_header_duration(clf, videos):
    timeline = video_timeline(clf, videos["h264"], LABELS, window=2, stride=1)
    assert timeline.duration == pytest.approx(4.0) and len(timeline.spans) == 3
    assert timeline.stats["frames_converted"] == timeline.stats["frames_needed"]


def test_video_shorter_than_one_window_gives_one_window(clf, videos):
    timeline = video_timeline(clf, videos["short"], LABELS, window=4, stride=2)
    assert timeline.spans.tolist() == [[0.0, 0.4]] and len(timeline.segments) == 1
    assert (timeline.segments[0].start, timeline.segments[0].end) == (0.0, 0.4)


def test_broken_tail_keeps_the_windows_before_the_break(clf, videos):
    timeline = video_timeline(clf, videos["truncated"], LABELS, window=1, stride=0.5)
    assert "header announces 100 frames" in timeline.truncated
    assert 0 < timeline.duration < 3.2 and timeline.spans[-1, 1] == pytest.approx(timeline.duration)
    assert any("broken tail" in warning for warning in timeline.warnings)
    intact = video_timeline(clf, videos["faststart"], LABELS, window=1, stride=0.5)  # the file before the cut
    kept = len(timeline.spans) - 1  # the last window is shifted to the new end
    np.testing.assert_array_equal(timeline.spans[:kept], intact.spans[:kept])
    np.testing.assert_allclose(timeline.scores[:kept], intact.scores[:kept], atol=1e-5)
    with pytest.raises(VideoDecodeError, match="truncated") as caught:
        video_timeline(clf, videos["truncated"], LABELS, window=1, broken_tail="error")
    assert str(videos["truncated"]) in str(caught.value)


def test_recording_cut_short_is_reported(clf, videos):
    timeline = video_timeline(clf, videos["cut_mkv"], LABELS, window=1)
    assert timeline.duration < 3.0 and timeline.truncated is None
    assert any("header announces 4.00 s" in warning for warning in timeline.warnings)


def test_decode_error_mid_video_keeps_earlier_windows(clf, videos, monkeypatch):
    av = pytest.importorskip("av")
    decode_forward = video_decoding._decode_forward

    def failing(*args):
        for frame in decode_forward(*args):
            if frame.pts >= 60 * 512:  # frame 60 (time base 1/12800)
                raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield frame

    monkeypatch.setattr(video_decoding, "_decode_forward", failing)
    timeline = video_timeline(clf, videos["mp4"], LABELS, window=0.8, stride=0.4, batch_size=2)
    assert timeline.spans[-1, 1] <= 2.4 + 1e-9 and len(timeline.spans) >= 4
    assert re.search(r"decoding failed after frame 5\d", timeline.truncated)
    with pytest.raises(VideoDecodeError, match="decoding failed") as caught:
        video_timeline(clf, videos["mp4"], LABELS, window=0.8, stride=0.4, broken_tail="error")
    assert str(videos["mp4"]) in str(caught.value)
    with pytest.raises(VideoDecodeError, match="decoding failed"):  # nothing before the break: no timeline
        video_timeline(clf, videos["mp4"], LABELS, window=3, stride=3)


def test_errors_name_the_problem(clf, videos, workdir):
    with pytest.raises(VideoNotFoundError, match="missing.mp4"):
        video_timeline(clf, workdir / "missing.mp4", LABELS)
    garbage = workdir / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        video_timeline(clf, garbage, LABELS)
    with pytest.raises(ValueError, match="duplicate candidate label 'surfing'"):
        video_timeline(clf, videos["mp4"], ["surfing", "surfing"])
    with pytest.raises(ValueError, match="`stride` must be a positive number"):
        video_timeline(clf, videos["mp4"], LABELS, stride=0)
    with pytest.raises(ValueError, match="`threshold` must lie in"):
        TimelineConfig(threshold=2)
    with pytest.raises(ValueError, match="`start_time` 9 s is at or past the end"):
        video_timeline(clf, videos["mp4"], LABELS, start_time=9)
    with pytest.raises(TypeError, match="needs a pipeline"):
        video_timeline(object(), videos["mp4"], LABELS)


# ------------------------------------------------------------------------------------------------------------------
# Segments


def spans_every(count: int, window: float = 2.0, stride: float = 1.0) -> np.ndarray:
    starts = np.arange(count) * stride
    return np.stack([starts, starts + window], axis=1)


def one_hot(winners: list[int], num_labels: int = 3, high: float = 0.9) -> np.ndarray:
    scores = np.full((len(winners), num_labels), (1 - high) / (num_labels - 1), np.float32)
    scores[np.arange(len(winners)), winners] = high
    return scores


def triples(segments) -> list[tuple[str, float, float]]:
    return [(s.label, s.start, s.end) for s in segments]


def test_window_cells_tile_overlapping_windows_and_leave_gaps():
    assert window_cells(spans_every(4)).tolist() == [[0, 1.5], [1.5, 2.5], [2.5, 3.5], [3.5, 5]]
    shifted = np.array([[0, 4], [3, 7], [6, 10], [7, 11]])  # a tail window shifted to the end
    assert window_cells(shifted).tolist() == [[0, 3.5], [3.5, 6.5], [6.5, 8.5], [8.5, 11]]
    gaps = np.array([[0, 1], [3, 4]])  # stride 3 > window 1
    assert window_cells(gaps).tolist() == [[0, 1], [3, 4]]


def test_single_label_segments_are_runs_of_the_best_label():
    labels = ["a", "b", "c"]
    segments = find_segments(spans_every(6), one_hot([0, 0, 1, 1, 1, 2]), labels, min_gap=0)
    assert triples(segments) == [("a", 0, 2.5), ("b", 2.5, 5.5), ("c", 5.5, 7)]
    assert segments[0].score == pytest.approx(0.9)


def test_short_interruptions_are_merged_and_short_segments_dropped():
    labels = ["a", "b", "c"]
    scores = one_hot([0, 0, 1, 0, 0, 2, 2, 2])
    assert triples(find_segments(spans_every(8), scores, labels, min_gap=0)) == [
        ("a", 0, 2.5),
        ("b", 2.5, 3.5),
        ("a", 3.5, 5.5),
        ("c", 5.5, 9),
    ]
    merged = find_segments(spans_every(8), scores, labels, min_gap=1.0)
    assert triples(merged) == [("a", 0, 5.5), ("c", 5.5, 9)]
    assert merged[0].score == pytest.approx((4 * 0.9 + 0.05) / 5)  # the label's mean over the merged windows
    assert triples(find_segments(spans_every(8), scores, labels, min_gap=0, min_duration=2.5)) == [
        ("a", 0, 2.5),
        ("c", 5.5, 9),
    ]


def test_single_label_threshold_and_smoothing():
    labels = ["a", "b"]
    scores = np.array([[0.9, 0.1], [0.55, 0.45], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], np.float32)
    assert triples(find_segments(spans_every(6), scores, labels, threshold=0.7, min_gap=0)) == [
        ("a", 0, 1.5),
        ("a", 2.5, 3.5),
        ("b", 3.5, 4.5),
        ("b", 5.5, 7),
    ]
    smoothed = smooth_scores(scores, 3)
    np.testing.assert_allclose(smoothed[0], scores[:2].mean(0))  # the windows that exist at the ends
    np.testing.assert_allclose(smoothed[4], scores[3:6].mean(0))
    # smoothed "a": 0.725, 0.783, 0.55, 0.567, 0.3, 0.35: the lone "b" of window 3 disappears
    assert triples(find_segments(spans_every(6), scores, labels, smoothing=3, min_gap=0)) == [
        ("a", 0, 4.5),
        ("b", 4.5, 7),
    ]


def test_multi_label_segments_per_label_with_gap_merging():
    labels = ["person", "dog"]
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.8], [0.7, 0.6], [0.9, 0.2]], np.float32)
    segments = find_segments(spans_every(5), scores, labels, multi_label=True, min_gap=0)
    assert triples(segments) == [("person", 0, 2.5), ("dog", 1.5, 4.5), ("person", 3.5, 6)]
    merged = find_segments(spans_every(5), scores, labels, multi_label=True, threshold=0.65, min_gap=1)
    assert triples(merged) == [("person", 0, 6), ("dog", 1.5, 3.5)]


def test_evaluate_segments():
    truth = [("a", 0, 10), ("b", 10, 20), ("c", 20, 30)]
    perfect = evaluate_segments(truth, truth)
    assert perfect["segment_accuracy"] == perfect["time_accuracy"] == 1 and perfect["boundary_errors"] == [0, 0]
    guess = [Segment("a", 0, 11, 0.9), {"label": "c", "start": 11, "end": 13}, ("b", 13, 19.5), ("c", 19.5, 30)]
    result = evaluate_segments(guess, truth)
    assert result["segment_accuracy"] == 1.0  # b is still b's largest share of 10-20
    assert result["time_accuracy"] == pytest.approx((10 + 6.5 + 10) / 30)
    assert result["boundary_errors"] == [1.0, 0.5] and result["max_boundary_error"] == 1.0
    assert evaluate_segments([("b", 0, 30)], truth)["segment_accuracy"] == pytest.approx(1 / 3)


def test_format_time():
    assert [format_time(t) for t in (0, 59.4, 61, 3599.6, 3725)] == ["0:00", "0:59", "1:01", "1:00:00", "1:02:05"]
    assert format_time(83.25, 1) == "1:23.2" and format_time(9.96, 1) == "0:10.0"


# ------------------------------------------------------------------------------------------------------------------
# Outputs


@pytest.fixture(scope="module")
def timeline(clf, videos):
    return video_timeline(clf, videos["mp4"], LABELS, window=1, stride=0.5)


def test_json_document_and_round_trip(timeline, workdir):
    path = workdir / "out" / "timeline.json"
    timeline.to_json(path)
    data = json.loads(path.read_text())
    assert {"video", "duration", "fps", "window", "stride", "windows", "segments"} <= set(data)
    assert (data["video"], data["duration"], data["fps"], data["window"], data["stride"]) == (
        str(timeline.video),
        4.0,
        25.0,
        1.0,
        0.5,
    )
    assert len(data["windows"]) == len(timeline.spans) == 7
    assert set(data["windows"][0]) == {"start", "end", "scores"} and list(data["windows"][0]["scores"]) == LABELS
    assert all(set(s) == {"label", "start", "end", "score"} for s in data["segments"])
    assert all(isinstance(s["start"], float) for s in data["segments"])
    loaded = Timeline.load(path)
    np.testing.assert_allclose(loaded.scores, timeline.scores, atol=1e-6)
    assert loaded.segments == [Segment(s.label, s.start, s.end, round(s.score, 6)) for s in timeline.segments]
    assert triples(loaded.resegment(smoothing=3).segments) == triples(timeline.resegment(smoothing=3).segments)
    (workdir / "broken.json").write_text('{"video": "x"}')
    with pytest.raises(ValueError, match="broken.json: not a timeline document"):
        Timeline.load(workdir / "broken.json")


def test_csv_has_one_row_per_window(timeline, workdir):
    import csv

    path = workdir / "out" / "timeline.csv"
    timeline.to_csv(path)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["start", "end", "top_label", "top_score", *LABELS]
    assert len(rows) == 1 + len(timeline.spans)
    best = int(np.argmax(timeline.scores[2]))
    assert rows[3][:3] == ["1", "2", LABELS[best]] and float(rows[3][4 + best]) == pytest.approx(
        timeline.scores[2, best], abs=1e-6
    )


@pytest.mark.parametrize("num_labels", [5, 200])
def test_plot_is_readable_for_few_and_many_labels(workdir, num_labels):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    labels = [f"label {k}" for k in range(num_labels)]
    spans = spans_every(120, window=4, stride=2)
    scores = rng.dirichlet(np.full(num_labels, 0.1), size=120).astype(np.float32)
    timeline = Timeline(
        "long.mp4", 242.0, 25.0, 4.0, 2.0, labels, spans, scores, find_segments(spans, scores, labels, min_gap=2)
    )
    shown = timeline.top_labels(20)
    assert len(shown) == min(20, num_labels) and len(set(shown)) == len(shown)
    path = timeline.plot(workdir / f"plot_{num_labels}.png")
    from PIL import Image

    width, height = Image.open(path).size
    assert width == 1200 and height < 800


def test_top_labels_prefer_labels_with_segments():
    labels = ["a", "b", "c", "d"]
    scores = np.array([[0.5, 0.1, 0.0, 0.4], [0.1, 0.5, 0.0, 0.4], [0.1, 0.5, 0.0, 0.4]], np.float32)
    timeline = Timeline(
        "v.mp4",
        4.0,
        25.0,
        2.0,
        1.0,
        labels,
        spans_every(3),
        scores,
        find_segments(spans_every(3), scores, labels, min_gap=0),
    )
    assert triples(timeline.segments) == [("a", 0, 1.5), ("b", 1.5, 4)]
    assert timeline.top_labels(3) == ["a", "b", "d"]  # segments by first appearance, then the best of the others
    assert timeline.top_labels(1) == ["b"]  # the most segment time


def test_html_page_holds_the_video_strip_and_seeking_segments(timeline, videos, workdir):
    path = timeline.to_html(workdir / "out" / "timeline.html")
    page = path.read_text()
    source = re.search(r'<video id="video"[^>]* src="data:video/mp4;base64,([^"]+)"', page)
    assert source and base64.b64decode(source.group(1)) == videos["mp4"].read_bytes()
    data = json.loads(
        re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page, re.S).group(1)
    )
    assert data["labels"] == timeline.top_labels(30) and len(data["scores"]) == len(timeline.spans)
    assert len(re.findall(r'<tr data-start="', page)) == len(timeline.segments)
    linked = timeline.to_html(workdir / "out" / "linked.html", embed_video=False).read_text()
    assert 'src="../cfr.mp4"' in linked and "base64" not in linked
    node = shutil.which("node")
    if node:  # the page's script parses
        script = re.findall(r"<script>(.*?)</script>", page, re.S)[0]
        (workdir / "page.js").write_text(script)
        subprocess.run([node, "--check", str(workdir / "page.js")], check=True)


# ------------------------------------------------------------------------------------------------------------------
# The embedded model on a generated sequence of known actions


def test_default_model_finds_known_actions(tmp_path):
    specs = [
        SyntheticVideoSpec("circle", "red", "moving left"),
        SyntheticVideoSpec("square", "blue", "growing"),
        SyntheticVideoSpec("star", "yellow", "moving up"),
    ]
    frames, truth = render_sequence(specs, [3, 4, 3], fps=8, size=64, seed=1)
    assert [t[1:] for t in truth] == [(0, 3), (3, 7), (7, 10)]
    video = write_video(tmp_path / "three.mp4", frames, fps=8, crf=12)
    clf = pipeline(TASK, model=hf_xclip.default_model_path())
    timeline = video_timeline(clf, video, [spec.caption for spec in specs], window=2, stride=0.5)
    result = evaluate_segments(timeline.segments, truth)
    assert result["segment_accuracy"] == 1.0 and result["max_boundary_error"] <= 1.0


def test_render_sequence_rejects_mismatched_durations():
    with pytest.raises(ValueError, match="one duration per spec"):
        render_sequence([SyntheticVideoSpec("circle", "red", "growing")], [1, 2])


# ------------------------------------------------------------------------------------------------------------------
# Command line


def test_cli_writes_every_output(model_dir, videos, workdir, capsys):
    pytest.importorskip("matplotlib")
    out = workdir / "cli"
    code = main(
        [
            "timeline",
            str(videos["mp4"]),
            "--model",
            str(model_dir),
            "--labels",
            ",".join(LABELS),
            "--window",
            "1",
            "--stride",
            "0.5",
            "--json",
            str(out / "t.json"),
            "--csv",
            str(out / "t.csv"),
            "--plot",
            str(out / "t.png"),
            "--html",
            str(out / "t.html"),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "t.json").read_text())
    assert "7 windows of 1 s every 0.5 s" in printed
    assert all(s["label"] in printed for s in data["segments"])
    assert all((out / name).stat().st_size > 0 for name in ("t.csv", "t.png", "t.html"))
    clf = pipeline(TASK, model=str(model_dir))
    expected = video_timeline(clf, videos["mp4"], LABELS, window=1, stride=0.5)
    np.testing.assert_allclose(Timeline.load(out / "t.json").scores, expected.scores, atol=1e-6)


def test_cli_json_to_stdout_and_multi_label(model_dir, videos, capsys):
    code = main(
        [
            "timeline",
            str(videos["mp4"]),
            "--model",
            str(model_dir),
            "--labels",
            "surfing,juggling",
            "--multi-label",
            "--threshold",
            "0.4",
            "--json",
            "-",
            "--no-progress",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["multi_label"] is True and data["threshold"] == 0.4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--labels", "a,a"], "duplicate candidate label"),
        (["--labels", "a", "--window", "0"], "window must be a positive number"),
        (["--labels", "a", "--smoothing", "0"], "smoothing must be an integer >= 1"),
        (["--labels", "a", "--template", "no placeholder"], "template"),
        (["--labels", "a", "--multi-label", "--multi-label-method", "sigmoid"], "needs a model with a sigmoid head"),
    ],
)
def test_cli_usage_errors(model_dir, videos, capsys, extra, message):
    assert main(["timeline", str(videos["mp4"]), "--model", str(model_dir), *extra, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_cli_label_bank(model_dir, videos, workdir, capsys):
    clf = pipeline(TASK, model=str(model_dir))
    path = clf.label_encoder.bank(LABELS, clf.hypothesis_template).save(workdir / "cli.bank")
    out = workdir / "cli" / "bank.json"
    code = main(
        [
            "timeline",
            str(videos["mp4"]),
            "--model",
            str(model_dir),
            "--label-bank",
            str(path),
            "--window",
            "1",
            "--stride",
            "0.5",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    assert json.loads(out.read_text())["labels"] == LABELS
    assert main(["timeline", str(videos["mp4"]), "--model", str(model_dir), "--no-progress"]) == 2
    assert "give the labels" in capsys.readouterr().err


def test_cli_unreadable_and_broken_videos(model_dir, videos, workdir, capsys):
    assert main(["timeline", str(workdir / "nope.mp4"), "--model", str(model_dir), "--labels", "a"]) == 1
    assert "nope.mp4: not found" in capsys.readouterr().err
    out = workdir / "cli" / "broken.json"
    code = main(
        [
            "timeline",
            str(videos["truncated"]),
            "--model",
            str(model_dir),
            "--labels",
            "a,b",
            "--window",
            "1",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 1  # the windows before the break are written
    assert "broken tail" in capsys.readouterr().err
    assert json.loads(out.read_text())["truncated"]


def test_score_clips_is_the_pipelines_scoring(clf, videos):
    """The pipeline's own call goes through prepare_labels / score_clips: one scoring implementation."""
    labels = clf.prepare_labels(LABELS)
    pixel_values = clf.video_processor(str(videos["mp4"]), num_frames=4, return_tensors="pt")["pixel_values"]
    scores = clf.score_clips(pixel_values, labels)[0]
    result = {item["label"]: item["score"] for item in clf(str(videos["mp4"]), candidate_labels=LABELS)}
    np.testing.assert_allclose(scores.numpy(), [result[label] for label in LABELS], atol=1e-6)
    assert torch.allclose(scores.sum(), torch.tensor(1.0), atol=1e-5)

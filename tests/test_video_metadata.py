"""Video metadata as transformers has it: `VideoMetadata` in and out, `load_video`'s output as input, and the
sampling options `do_sample_frames` / `num_frames` / `fps` with transformers' meaning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from testing_utils import coded_frames, numbers, save_tiny_xclip
from transformers.video_utils import VideoMetadata, load_video

from hf_xclip import XClipVideoProcessor
from hf_xclip.data import write_video
from hf_xclip.video_io import probe_video

FPS, NUM = 25, 50


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("metadata") / "coded.mp4", coded_frames(NUM), fps=FPS, crf=0)


@pytest.fixture()
def processor():
    return XClipVideoProcessor(
        crop_size=32, num_frames=4, do_normalize=False, do_rescale=False, do_resize=False, do_center_crop=False
    )


def test_probe_returns_transformers_video_metadata(video):
    ours = probe_video(video).metadata()
    _, theirs = load_video(str(video), backend="pyav")
    assert isinstance(ours, VideoMetadata)
    for field in ("total_num_frames", "fps", "width", "height", "duration"):
        assert getattr(ours, field) == pytest.approx(getattr(theirs, field)), field
    assert ours["fps"] == FPS  # a mapping too, as transformers' is


def test_load_video_output_is_one_video_with_its_times(video, processor):
    frames, metadata = load_video(str(video), backend="pyav", num_frames=10)  # frames 0, 5, ..., 45
    assert metadata.frames_indices.tolist() == list(range(0, NUM, 5))
    out = processor((frames, metadata), return_metadata=True)
    meta = out["video_metadata"][0]
    assert out["pixel_values"].shape == (1, 4, 3, 48, 64)
    assert meta.frames_indices == [1, 3, 6, 8]  # positions among the given frames (middle of 4 segments of 10)
    assert meta.timestamps == pytest.approx([i * 5 / FPS for i in (1, 3, 6, 8)])  # seconds of the original video
    decoded = out["pixel_values"][0].permute(0, 2, 3, 1).to(torch.uint8).numpy()
    assert numbers(decoded) == [5, 15, 30, 40]
    by_time = processor((frames, metadata), fps=2.0, return_metadata=True)["video_metadata"][0]
    assert by_time.timestamps == pytest.approx([0.2, 0.6, 1.2, 1.6])  # the given frames on screen at 0.25 + k / 2 s
    everything = processor((frames, metadata), do_sample_frames=False)["pixel_values"]
    assert everything.shape[1] == 10
    batch = processor([(frames, metadata), (frames, metadata)])["pixel_values"]
    assert batch.shape[0] == 2 and torch.equal(batch[0], batch[1])


def test_load_video_output_in_the_pipeline(video, tmp_path):
    from transformers import pipeline

    import hf_xclip  # noqa: F401  (registers the task)

    classifier = pipeline("zero-shot-video-classification", model=str(save_tiny_xclip(tmp_path / "model")))
    frames, metadata = load_video(str(video), backend="pyav")
    labels = ["a", "b", "c"]
    from_pair = classifier((frames, metadata), candidate_labels=labels)
    from_file = classifier(str(video), candidate_labels=labels)
    assert from_pair == from_file  # every frame given: the same frames sampled, the same scores
    assert len(classifier([(frames, metadata), str(video)], candidate_labels=labels)) == 2


def test_video_metadata_object_gives_array_frames_a_rate(processor):
    frames = coded_frames(NUM)
    with pytest.raises(ValueError, match="frame rate"):
        processor(frames, fps=2.0)
    metadata = VideoMetadata(total_num_frames=NUM, fps=FPS, width=64, height=48)
    out = processor(frames, fps=2.0, video_metadata=metadata, return_metadata=True)["video_metadata"][0]
    assert out.frames_indices == [6, 18, 31, 43] and out.timestamps == pytest.approx([0.24, 0.72, 1.24, 1.72])


@pytest.mark.parametrize("rate", [1.0, 2.0, 5.0])
def test_sampling_options_mean_what_they_mean_in_transformers(video, processor, rate):
    """``num_frames``: that many frames; ``fps``: frames at that rate, as many as transformers' formula
    ``int(total_num_frames / video_fps * fps)`` gives; ``do_sample_frames=False``: every frame."""
    assert processor(str(video), num_frames=6)["pixel_values"].shape[1] == 6
    count = processor(str(video), fps=rate)["pixel_values"].shape[1]
    assert count == int(NUM / FPS * rate)
    assert processor(str(video), do_sample_frames=False)["pixel_values"].shape[1] == NUM
    frames = np.asarray(coded_frames(NUM))
    assert processor(frames, do_sample_frames=False)["pixel_values"].shape[1] == NUM

"""`XClipVideoProcessor`: the original's test protocol, views / crops layout, inputs, save / load, foreign configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hf_xclip import VideoDecodeError, XClipVideoProcessor
from hf_xclip.data import write_video
from hf_xclip.video_io import decord_available, read_frames, sample_frame_indices

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])


def _normalised(rgb) -> torch.Tensor:
    return (torch.tensor(rgb, dtype=torch.float32) / 255 - MEAN) / STD


def _ramp_video(num: int = 10, height: int = 240, width: int = 320) -> np.ndarray:
    """Float frames whose red channel is 0.5 * x, green 0.5 * y, blue the frame index: geometry is readable."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.zeros((num, height, width, 3), np.float32)
    frames[..., 0], frames[..., 1] = 0.5 * xs, 0.5 * ys
    frames[..., 2] = np.arange(num, dtype=np.float32)[:, None, None]
    return frames


RAW = dict(do_rescale=False, do_normalize=False)  # pixel values in input units, to read geometry back


@pytest.fixture(scope="module")
def color_video(tmp_path_factory):
    frames = np.full((12, 96, 128, 3), (200, 60, 120), np.uint8)
    return write_video(tmp_path_factory.mktemp("processor") / "color.mp4", frames, crf=0, pix_fmt="yuv444p")


def test_defaults_are_the_original_protocol():
    processor = XClipVideoProcessor()
    assert processor.num_frames == 8 and processor.frame_sampling == "middle"
    assert processor.crop_size == {"height": 224, "width": 224}
    assert processor.resize_short_side() == 256 and processor.resize_short_side(num_crops=3) == 224
    assert XClipVideoProcessor(crop_size=336).resize_short_side() == 384  # int(256 / 224 * 336)
    assert processor.image_mean == [0.485, 0.456, 0.406] and processor.image_std == [0.229, 0.224, 0.225]
    assert processor.resample == 2 and processor.antialias is False


def test_constant_colour_video_normalises_exactly():
    video = np.full((20, 120, 160, 3), (255, 128, 0), np.uint8)
    pixel_values = XClipVideoProcessor(crop_size=64)(video)["pixel_values"]
    assert pixel_values.shape == (1, 8, 3, 64, 64) and pixel_values.dtype == torch.float32
    expected = _normalised([255, 128, 0]).view(1, 1, 3, 1, 1).expand_as(pixel_values)
    torch.testing.assert_close(pixel_values, expected, atol=1e-5, rtol=0)


def test_constant_colour_file_normalises_within_codec_error(color_video):
    pixel_values = XClipVideoProcessor(crop_size=64)(color_video)["pixel_values"]
    expected = _normalised([200, 60, 120]).view(1, 1, 3, 1, 1).expand_as(pixel_values)
    torch.testing.assert_close(pixel_values, expected, atol=2.5 / 255 / 0.224, rtol=0)


def test_resize_and_centre_crop_geometry():
    # 240x320 -> short side 256 -> 256x341 (mmcv rounding) -> crop 224 at top 16, left 58
    processor = XClipVideoProcessor(num_frames=2, **RAW)
    pixels = processor(_ramp_video())["pixel_values"][0, 0]
    scale = 320 / 341
    columns = 0.5 * ((np.arange(58, 58 + 224) + 0.5) * scale - 0.5)
    rows = 0.5 * ((np.arange(16, 16 + 224) + 0.5) * (240 / 256) - 0.5)
    torch.testing.assert_close(pixels[0, 100], torch.tensor(columns, dtype=torch.float32), atol=1e-3, rtol=0)
    torch.testing.assert_close(pixels[1, :, 100], torch.tensor(rows, dtype=torch.float32), atol=1e-3, rtol=0)


def test_resize_rounds_like_opencv_fixed_point():
    # 4x4 -> 2x2 averages 2x2 blocks; OpenCV's 11-bit fixed point rounds a mean of .5 up ((sum + 2) >> 2),
    # where float bilinear with round-half-to-even would give 0
    blocks = np.array([[1, 1, 1, 1], [0, 0, 1, 0], [3, 2, 0, 0], [2, 2, 0, 0]], np.uint8)
    video = np.repeat(np.repeat(blocks[None, :, :, None], 3, -1), 2, 0)
    processor = XClipVideoProcessor(num_frames=1, size=(2, 2), do_center_crop=False, **RAW)
    pixels = processor(video)["pixel_values"][0, 0, 0]
    assert pixels.tolist() == [[1.0, 1.0], [2.0, 0.0]]  # means 0.5, 0.75, 2.25, 0


@pytest.mark.parametrize("shape", [(720, 1280), (1080, 1920), (240, 320), (1280, 720), (100, 130), (257, 301)])
@pytest.mark.parametrize("num_crops", [1, 3])
def test_resize_and_crops_are_bit_exact_with_opencv(shape, num_crops):
    cv2 = pytest.importorskip("cv2")  # what the original's mmcv.imresize runs
    frames = np.random.default_rng(0).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    short, side = (224 if num_crops == 3 else 256), 224
    scale = short / min(shape)
    height, width = int(shape[0] * scale + 0.5), int(shape[1] * scale + 0.5)
    expected = []
    for frame in frames:
        resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        if num_crops == 3:
            step = (max(height, width) - side) // 2
            offsets = (0, 2 * step, step)
            crops = [resized[:, x : x + side] if width >= height else resized[x : x + side] for x in offsets]
        else:
            top, left = (height - side) // 2, (width - side) // 2
            crops = [resized[top : top + side, left : left + side]]
        expected.append(crops)
    expected = torch.from_numpy(np.array(expected)).permute(1, 0, 4, 2, 3).float()  # (crops, T, 3, S, S)
    processor = XClipVideoProcessor(num_frames=2, num_crops=num_crops, **RAW)
    assert torch.equal(processor(frames)["pixel_values"], expected)


def test_centre_crop_offsets_without_resize():
    pixels = XClipVideoProcessor(num_frames=1, do_resize=False, crop_size=(100, 120), **RAW)(_ramp_video())
    pixels = pixels["pixel_values"][0, 0]
    assert pixels.shape == (3, 100, 120)
    assert pixels[0, 0, 0] == 0.5 * ((320 - 120) // 2) and pixels[1, 0, 0] == 0.5 * ((240 - 100) // 2)


def test_odd_crop_offsets_round_down():
    # (341 - 224) / 2 = 58.5: the original (mmaction) floors, torchvision would round to 59
    video = _ramp_video(2, height=10, width=341)
    pixels = XClipVideoProcessor(num_frames=1, do_resize=False, crop_size=(10, 224), **RAW)(video)["pixel_values"]
    assert pixels[0, 0, 0, 0, 0] == 0.5 * 58


def test_three_crops_along_the_long_side():
    processor = XClipVideoProcessor(num_frames=2, num_crops=3, crop_size=224, **RAW)
    out = processor(_ramp_video())
    pixels = out["pixel_values"]
    assert pixels.shape == (3, 2, 3, 224, 224) and out["num_views"] == 3
    # short side to 224: 240x320 -> 224x299, crops at x = 0 (left), 74 (right), 37 (middle): the original's order
    scale = 320 / 299
    for view, left in enumerate((0, 74, 37)):
        expected = 0.5 * ((left + 10 + 0.5) * scale - 0.5)
        assert abs(float(pixels[view, 0, 0, 50, 10]) - expected) < 1e-3
    portrait = processor(_ramp_video(height=320, width=240).transpose(0, 2, 1, 3).copy())["pixel_values"]
    assert portrait.shape == (3, 2, 3, 224, 224)


def test_views_layout_video_major_crop_major_clip_minor():
    video = _ramp_video(40)
    processor = XClipVideoProcessor(num_frames=4, num_clips=2, num_crops=3, crop_size=224, **RAW)
    out = processor([video, video[::-1].copy()])
    pixels = out["pixel_values"]
    assert pixels.shape == (2 * 6, 4, 3, 224, 224) and out["num_views"] == 6
    clips = sample_frame_indices(40, 4, num_clips=2)
    for video_index in range(2):
        for crop in range(3):
            for clip in range(2):
                row = pixels[video_index * 6 + crop * 2 + clip]
                frame_ids = row[:, 2, 0, 0].round().long().tolist()  # blue channel = frame index
                expected = clips[clip] if video_index == 0 else 39 - clips[clip]
                assert frame_ids == expected.tolist()
    per_view = pixels.view(2, 6, -1).mean(-1)
    assert per_view.shape == (2, 6)  # how a pipeline averages: groups of num_views consecutive rows


@pytest.mark.parametrize("num_frames", [1, 4, 8, 16, 32])
def test_any_number_of_frames(num_frames):
    video = np.zeros((5, 40, 40, 3), np.uint8)
    assert XClipVideoProcessor(crop_size=32)(video, num_frames=num_frames)["pixel_values"].shape == (
        1,
        num_frames,
        3,
        32,
        32,
    )


def test_input_kinds_give_the_same_pixels(color_video):
    frames = np.random.default_rng(0).integers(0, 256, (9, 50, 70, 3), dtype=np.uint8)
    processor = XClipVideoProcessor(crop_size=32, num_frames=4)
    reference = processor(frames)["pixel_values"]
    variants = [
        torch.from_numpy(frames),
        torch.from_numpy(frames).permute(0, 3, 1, 2),  # (T, 3, H, W)
        list(frames),
        [Image.fromarray(frame) for frame in frames],
        frames.astype(np.float32),
        frames[None],  # 5-D batch of one
    ]
    for variant in variants:
        torch.testing.assert_close(processor(variant)["pixel_values"], reference, atol=1 / 255 / 0.2, rtol=0)


def test_grayscale_and_rgba_inputs():
    gray = np.random.default_rng(0).integers(0, 256, (6, 40, 40), dtype=np.uint8)
    processor = XClipVideoProcessor(crop_size=32, num_frames=3, **RAW)
    pixels = processor(gray)["pixel_values"]
    assert pixels.shape == (1, 3, 3, 32, 32)
    assert torch.equal(pixels[:, :, 0], pixels[:, :, 1]) and torch.equal(pixels[:, :, 1], pixels[:, :, 2])
    assert torch.equal(processor(gray[..., None])["pixel_values"], pixels)
    rgba = np.concatenate([np.repeat(gray[..., None], 3, -1), np.zeros_like(gray)[..., None]], -1)
    assert torch.equal(processor(rgba)["pixel_values"], pixels)


def test_mixed_batch_of_files_bytes_arrays_and_frames(color_video):
    frames = np.full((5, 96, 128, 3), (200, 60, 120), np.uint8)
    batch = [color_video, str(color_video), color_video.read_bytes(), frames, [Image.fromarray(f) for f in frames]]
    out = XClipVideoProcessor(crop_size=48, num_frames=4)(batch, return_metadata=True)
    pixels = out["pixel_values"]
    assert pixels.shape == (5, 4, 3, 48, 48) and "num_views" not in out
    torch.testing.assert_close(pixels, pixels[3:4].expand_as(pixels), atol=2.5 / 255 / 0.224, rtol=0)
    meta = out["video_metadata"]
    assert meta[0]["source"] == str(color_video) and meta[0]["total_num_frames"] == 12
    assert meta[0]["frame_indices"] == sample_frame_indices(12, 4).tolist()
    assert meta[3]["source"] == "<array 3>"


def test_decord_and_pyav_give_the_same_pixel_values(tmp_path):
    if not decord_available():
        pytest.skip("decord is not installed")
    frames = np.random.default_rng(0).integers(0, 256, (30, 72, 96, 3), dtype=np.uint8)
    path = write_video(tmp_path / "noise.mp4", frames, gop_size=6)
    processor = XClipVideoProcessor(crop_size=64)
    a = processor(path, decode_backend="decord")["pixel_values"]
    b = processor(path, decode_backend="pyav")["pixel_values"]
    assert torch.equal(a, b)


def test_decode_time_downscaling_close_to_full_decode(tmp_path):
    ys, xs = np.mgrid[0:180, 0:320]
    frame = np.stack([xs * 255 // 320, ys * 255 // 180, np.full_like(xs, 90)], -1).astype(np.uint8)
    path = write_video(tmp_path / "ramp.mp4", np.repeat(frame[None], 10, 0), crf=0, pix_fmt="yuv444p")
    processor = XClipVideoProcessor(crop_size=64, num_frames=2)
    full = processor(path)["pixel_values"]
    fast = processor(path, decode_short_side=processor.resize_short_side())["pixel_values"]
    assert fast.shape == full.shape
    assert (fast - full).abs().mean() < 0.05


def test_sampling_modes_and_seeds():
    video = _ramp_video(50, 40, 40)
    processor = XClipVideoProcessor(crop_size=32, num_frames=4, frame_sampling="random", **RAW)

    def frame_ids(out):
        return out["pixel_values"][0, :, 2, 0, 0].round().long().tolist()

    assert frame_ids(processor(video, seed=3)) == frame_ids(processor(video, seed=3))
    torch.manual_seed(0)
    first = frame_ids(processor(video))
    torch.manual_seed(0)
    assert frame_ids(processor(video)) == first
    draws = {tuple(frame_ids(processor(video, seed=s))) for s in range(10)}
    assert len(draws) > 1 and all(ids[k] // 12 == k for ids in draws for k in range(4))
    uniform = frame_ids(processor(video, frame_sampling="uniform"))
    assert uniform == [0, 16, 33, 49]


def test_do_sample_frames_false_keeps_every_frame():
    video = _ramp_video(7, 40, 40)
    out = XClipVideoProcessor(crop_size=32, do_sample_frames=False, **RAW)(video)
    assert out["pixel_values"][0, :, 2, 0, 0].round().long().tolist() == list(range(7))


def test_return_numpy():
    out = XClipVideoProcessor(crop_size=32)(np.zeros((4, 40, 40, 3), np.uint8), return_tensors="np")
    assert isinstance(out["pixel_values"], np.ndarray) and out["pixel_values"].shape == (1, 8, 3, 32, 32)


def test_save_and_load_round_trip(tmp_path):
    processor = XClipVideoProcessor(num_frames=16, crop_size=32, num_clips=2, frame_sampling="random", antialias=True)
    processor.save_pretrained(tmp_path)
    loaded = XClipVideoProcessor.from_pretrained(tmp_path)
    settings = {k: v for k, v in loaded.to_dict().items() if k != "auto_map"}  # auto_map: code shipped on save
    assert settings == {k: v for k, v in processor.to_dict().items() if k != "auto_map"}
    json.loads(loaded.to_json_string())
    video = _ramp_video(40, 50, 60)
    torch.testing.assert_close(loaded(video, seed=0)["pixel_values"], processor(video, seed=0)["pixel_values"])
    assert XClipVideoProcessor.from_pretrained(tmp_path, num_frames=4).num_frames == 4


LEGACY_2022 = {
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "VideoMAEFeatureExtractor",
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "processor_class": "XCLIPProcessor",
    "resample": 2,
    "size": 224,
}


@pytest.mark.parametrize(
    ("config", "crop"),
    [
        (LEGACY_2022, 224),
        ({**LEGACY_2022, "size": 336}, 336),
        ({**LEGACY_2022, "crop_size": 224, "size": 256}, 224),
        (
            {
                "image_processor_type": "VideoMAEImageProcessor",
                "size": {"shortest_edge": 224},
                "crop_size": {"height": 224, "width": 224},
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "resample": 2,
                "rescale_factor": 1 / 255,
            },
            224,
        ),
    ],
)
def test_foreign_preprocessor_configs_read_as_the_original_protocol(tmp_path, config, crop):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xclip", "vision_config": {"num_frames": 16}}))
    processor = XClipVideoProcessor.from_pretrained(tmp_path)
    assert processor.crop_size == {"height": crop, "width": crop}
    assert processor.resize_short_side() == int(256 / 224 * crop)
    assert processor.num_frames == 16  # from config.json
    assert processor(np.zeros((3, 40, 50, 3), np.uint8))["pixel_values"].shape == (1, 16, 3, crop, crop)


def test_nested_image_processor_in_processor_config(tmp_path):
    nested = {"image_processor": {**LEGACY_2022, "size": 32}, "processor_class": "XCLIPProcessor"}
    (tmp_path / "processor_config.json").write_text(json.dumps(nested))
    processor = XClipVideoProcessor.from_pretrained(tmp_path)
    assert processor.crop_size == {"height": 32, "width": 32} and processor.num_frames == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_crops=2), "num_crops"),
        (dict(num_frames=0), "num_frames"),
        (dict(num_clips=-1), "num_clips"),
        (dict(frame_sampling="dense"), "frame_sampling"),
        (dict(frame_sampling="uniform", num_clips=2), "uniform"),
        (dict(decode_backend="opencv"), "decode_backend"),
        (dict(num_crops=3, crop_size=(32, 48)), "square"),
        (dict(resample=1), "resample"),
    ],
)
def test_bad_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        XClipVideoProcessor(**kwargs)
    with pytest.raises(ValueError, match=message):
        XClipVideoProcessor()(np.zeros((4, 40, 40, 3), np.uint8), **kwargs)


@pytest.mark.parametrize(
    ("video", "error", "message"),
    [
        (np.zeros((4, 40, 40, 5), np.uint8), ValueError, "expected"),
        (np.zeros((0, 40, 40, 3), np.uint8), ValueError, "empty"),
        (np.zeros((40, 40), np.uint8), ValueError, "3 to 5 dimensions"),
        ([], ValueError, "No video"),
        ([np.zeros((40, 40, 3), np.uint8), np.zeros((30, 40, 3), np.uint8)], ValueError, "differ in shape"),
        (42, TypeError, "int"),
        ("/does/not/exist.mp4", VideoDecodeError, "file not found"),
    ],
)
def test_bad_inputs_raise_clear_errors(video, error, message):
    with pytest.raises(error, match=message):
        XClipVideoProcessor(crop_size=32)(video)


def test_crop_larger_than_frames_without_resize():
    with pytest.raises(ValueError, match="Cannot crop"):
        XClipVideoProcessor(do_resize=False)(np.zeros((2, 40, 40, 3), np.uint8))


def test_unknown_call_option():
    with pytest.raises(TypeError, match="colour"):
        XClipVideoProcessor()(np.zeros((2, 40, 40, 3), np.uint8), colour=True)


# ------------------------------------------------------------------------------------------------------------------
# Sampling by time


@pytest.fixture(scope="module")
def timed_video(tmp_path_factory):
    """60 frames at 25 fps (2.4 s)."""
    frames = np.random.default_rng(3).integers(0, 256, (60, 48, 64, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("timed") / "timed.mp4", frames, fps=25, gop_size=12)


def _same_frames_processed(processor, path, indices, **kwargs) -> torch.Tensor:
    """What the processor gives for exactly these decoded frames."""
    frames, _ = read_frames(path, indices)
    return processor(frames, do_sample_frames=False, **kwargs)["pixel_values"]


def test_fps_samples_frames_at_a_rate(timed_video):
    processor = XClipVideoProcessor(crop_size=32)
    out = processor(timed_video, fps=5, return_metadata=True)
    (meta,) = out["video_metadata"]
    assert out["pixel_values"].shape == (1, 12, 3, 32, 32)  # 2.4 s at 5 frames per second
    assert meta.frames_indices == [2, 7, 12, 17, 22, 27, 32, 37, 42, 47, 52, 57]
    np.testing.assert_allclose(meta.timestamps, np.array(meta.frames_indices) / 25)
    assert torch.equal(out["pixel_values"], _same_frames_processed(processor, timed_video, meta.frames_indices))


def test_fps_configured_saved_and_overridden(timed_video, tmp_path):
    processor = XClipVideoProcessor(crop_size=32, fps=2.5)
    assert processor(timed_video)["pixel_values"].shape[1] == 6
    assert processor(timed_video, num_frames=4)["pixel_values"].shape[1] == 4  # a call-time count wins
    with pytest.raises(ValueError, match="either `num_frames` or `fps`"):
        processor(timed_video, num_frames=4, fps=2)
    processor.save_pretrained(tmp_path)
    assert XClipVideoProcessor.from_pretrained(tmp_path).fps == 2.5


def test_time_range(timed_video):
    processor = XClipVideoProcessor(crop_size=32, num_frames=4)
    out = processor(timed_video, start_time=1.0, end_time=1.8, return_metadata=True)
    (meta,) = out["video_metadata"]
    assert meta.frames_indices == [27, 32, 37, 42]  # at 1.1, 1.3, 1.5, 1.7 s: middles of four 0.2 s segments
    assert all(1.0 <= t < 1.8 for t in meta.timestamps)
    assert torch.equal(out["pixel_values"], _same_frames_processed(processor, timed_video, meta.frames_indices))
    every = processor(timed_video, start_time=2.0, do_sample_frames=False, return_metadata=True)
    assert every["video_metadata"][0].frames_indices == list(range(50, 60))
    with open(timed_video, "rb") as handle:  # a file object is read once
        assert torch.equal(processor(handle, start_time=1.0, end_time=1.8)["pixel_values"], out["pixel_values"])


def test_arrays_sample_by_time_with_a_given_frame_rate(timed_video):
    frames, _ = read_frames(timed_video, np.arange(60))
    processor = XClipVideoProcessor(crop_size=32)
    from_file = processor(timed_video, fps=5, return_metadata=True)
    from_array = processor(frames, fps=5, video_metadata={"fps": 25}, return_metadata=True)
    assert torch.equal(from_array["pixel_values"], from_file["pixel_values"])
    assert from_array["video_metadata"][0].timestamps == from_file["video_metadata"][0].timestamps
    assert from_array["video_metadata"][0].duration == pytest.approx(2.4)
    with pytest.raises(ValueError, match="array without a frame rate"):
        processor(frames, fps=5)
    with pytest.raises(ValueError, match="2 entries for 1 videos"):
        processor(frames, fps=5, video_metadata=[{"fps": 25}, {"fps": 25}])


def test_metadata_is_transformers_video_metadata(timed_video):
    from transformers.video_utils import VideoMetadata

    (meta,) = XClipVideoProcessor(crop_size=32, num_frames=4, num_clips=2)(timed_video, return_metadata=True)[
        "video_metadata"
    ]
    assert isinstance(meta, VideoMetadata)
    assert meta.total_num_frames == 60 and meta.fps == 25.0 and meta.duration == pytest.approx(2.4)
    assert meta["frame_indices"] == sample_frame_indices(60, 4, num_clips=2).tolist()
    assert meta.frames_indices == sample_frame_indices(60, 4, num_clips=2).reshape(-1).tolist()
    assert meta.video_backend == meta["backend"] == "pyav"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(fps=0), "`fps` must be a positive"),
        (dict(fps=2, num_clips=2), "one clip"),
        (dict(fps=2, frame_sampling="uniform"), "one clip"),
        (dict(start_time=-1), "`start_time` must be a non-negative"),
        (dict(start_time=2, end_time=1), "`end_time` .* after"),
        (dict(start_time=5), r"past the end of .*timed\.mp4. \(2\.400 s\)"),
    ],
)
def test_time_options_are_checked(timed_video, kwargs, message):
    with pytest.raises(ValueError, match=message):
        XClipVideoProcessor(crop_size=32)(timed_video, **kwargs)


def test_windows_decode_as_the_processor_decodes(color_video, monkeypatch):
    """`XClipVideoProcessor.iter_windows` is `iter_windows` with the processor's backend and threads (the timeline
    and the index read long videos through it)."""
    from hf_xclip import video_windows

    seen = {}
    real = video_windows.iter_windows

    def spy(video, **kwargs):
        seen.update(kwargs)
        return real(video, **kwargs)

    monkeypatch.setattr("hf_xclip.video_processing_xclip.iter_windows", spy)
    processor = XClipVideoProcessor(decode_backend="pyav", decode_threads=1)
    with processor.iter_windows(str(color_video), window=0.2, stride=0.2, num_frames=2) as windows:
        got = [window.frames for window in windows]
    assert seen["backend"] == "pyav" and seen["num_threads"] == 1
    with real(str(color_video), window=0.2, stride=0.2, num_frames=2, backend="pyav", num_threads=1) as windows:
        expected = [window.frames for window in windows]
    assert len(got) == len(expected) > 0
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))

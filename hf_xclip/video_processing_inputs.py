"""The inputs of `XClipVideoProcessor` (`hf_xclip.video_processing_xclip`): a video or a batch of videos in any
accepted form (path, bytes, file object, array / tensor, list of frames, `load_video` pairs) -> one (N, H, W, 3)
frames tensor per video, decoded (files, through `hf_xclip.video_io`) or sampled (arrays), with its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .video_io import VideoInfo, XClipVideoMetadata, is_loaded_video, is_video_source, read_video


def split_videos(videos: Any, given_metadata: Any = None) -> tuple[list[Any], list[Any]]:
    """One entry per video of `videos` (a video or a batch), and each video's metadata (or ``None``): from
    transformers' ``video_metadata`` option, or from the (frames, metadata) pairs of `transformers.video_utils.
    load_video`."""
    items = _split_batch(videos)
    loaded = [is_loaded_video(item) for item in items]
    if any(loaded):  # `transformers.video_utils.load_video` output: (frames, VideoMetadata)
        if given_metadata is not None:
            raise ValueError("Give `video_metadata` or (frames, metadata) pairs from `load_video`, not both.")
        given_metadata = [item[1] if pair else None for item, pair in zip(items, loaded)]
        items = [item[0] if pair else item for item, pair in zip(items, loaded)]
    return items, _per_video(given_metadata, len(items))


def load_frames(
    item: Any, position: int, options: dict[str, Any], rng, given: Any = None
) -> tuple[torch.Tensor, XClipVideoMetadata]:
    """Frames (V_clips * T, H, W, C) of one video, and its metadata."""
    sample = options["do_sample_frames"]
    how = dict(
        num_frames=options["num_frames"] if sample else None,
        mode=options["frame_sampling"],
        num_clips=options["num_clips"] if sample else 1,
        rng=rng,
        fps=options["fps"] if sample else None,
        start_time=options["start_time"],
        end_time=options["end_time"],
    )
    if is_video_source(item):
        video = read_video(
            item,
            sampling=how.pop("mode"),
            **how,
            backend=options["decode_backend"],
            short_side=options["decode_short_side"],
            num_threads=options["decode_threads"],
        )
        return torch.from_numpy(video.frames.reshape(-1, *video.frames.shape[2:])), video.metadata
    frames = _frames_tensor(item, position, options["do_convert_rgb"])
    info = VideoInfo(
        f"<array {position}>",
        frames.shape[0],
        frames.shape[1],
        frames.shape[2],
        fps=_given_fps(given, position),
        codec="",
        container="",
    )
    _given_frame_times(info, given, position)
    if info.fps is None and any(how[key] is not None for key in ("fps", "start_time", "end_time")):
        raise ValueError(
            f"Video {position} is an array without a frame rate: sampling by time (fps / start_time / end_time) "
            "needs a file, or `video_metadata={'fps': ...}` for the frames."
        )
    indices = info.sample_indices(**how)
    flat = indices.reshape(-1)
    if not np.array_equal(flat, np.arange(info.num_frames)):  # an array of exactly T frames needs no copy
        frames = frames.index_select(0, torch.from_numpy(flat))
    return frames, info.metadata(indices)


def _is_frame(obj: Any) -> bool:
    if _is_pil(obj):
        return True
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.ndim == 2 or (obj.ndim == 3 and obj.shape[-1] in (1, 3, 4))
    return False


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "convert")


def _split_batch(videos: Any) -> list[Any]:
    """One list entry per video."""
    if is_video_source(videos) or is_loaded_video(videos):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim in (3, 4):
            return [videos]
        raise ValueError(f"A video array must have 3 to 5 dimensions, got shape {tuple(videos.shape)}.")
    if isinstance(videos, Sequence) and not isinstance(videos, (str, bytes)):
        if len(videos) == 0:
            raise ValueError("No video given (empty list).")
        if all(_is_frame(frame) for frame in videos):
            return [list(videos)]
        return list(videos)
    raise TypeError(f"Unsupported video input of type {type(videos).__name__}.")


def _frames_tensor(video: Any, position: int, convert_rgb: bool) -> torch.Tensor:
    """(N, H, W, C) tensor (uint8 or float) from an array / tensor video or a list of frames."""
    if isinstance(video, Sequence) and not isinstance(video, (str, bytes)):
        if len(video) == 0:
            raise ValueError(f"Video {position} has no frames.")
        frames = [_frame_array(frame, position) for frame in video]
        if len({f.shape for f in frames}) > 1:
            raise ValueError(f"Frames of video {position} differ in shape: {sorted({f.shape for f in frames})}.")
        array = torch.from_numpy(np.stack(frames))
    elif isinstance(video, (np.ndarray, torch.Tensor)):
        array = torch.as_tensor(video)
    else:
        raise TypeError(f"Video {position}: unsupported input of type {type(video).__name__}.")
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = array.permute(0, 2, 3, 1)  # (T, C, H, W)
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"Video {position}: expected (T, H, W, 3), (T, H, W, 1), (T, 3, H, W) or (T, H, W) frames, "
            f"got shape {tuple(array.shape)}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"Video {position} is empty (shape {tuple(array.shape)}).")
    if array.dtype == torch.bool or array.is_complex():
        raise ValueError(f"Video {position}: unsupported dtype {array.dtype}.")
    if array.dtype != torch.uint8 and not array.is_floating_point():
        array = array.float()
    if array.shape[-1] == 1:
        array = array.expand(-1, -1, -1, 3) if convert_rgb else array
    elif array.shape[-1] == 4:
        array = array[..., :3]
    if array.shape[-1] != 3:
        raise ValueError(f"Video {position}: grayscale input needs `do_convert_rgb=True`.")
    return array


def _frame_array(frame: Any, position: int) -> np.ndarray:
    if _is_pil(frame):
        return np.asarray(frame.convert("RGB"))
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"Video {position}: a frame must be (H, W, 3) or (H, W), got shape {array.shape}.")
    return array


def _per_video(metadata: Any, count: int) -> list[Any]:
    """transformers' ``video_metadata`` option as one entry (or ``None``) per video."""
    if metadata is None:
        return [None] * count
    if isinstance(metadata, (list, tuple)):
        if len(metadata) != count:
            raise ValueError(f"`video_metadata` has {len(metadata)} entries for {count} videos.")
        return list(metadata)
    if count != 1:
        raise ValueError(f"Give `video_metadata` as a list (one entry per video) for {count} videos.")
    return [metadata]


def _given_frame_times(info: VideoInfo, metadata: Any, position: int) -> None:
    """Frames already sampled from a video (`load_video`'s ``frames_indices``, one per given frame): their times are
    ``index / fps``, so sampling by time and the returned timestamps refer to the original video."""
    indices = (
        None
        if metadata is None
        else (metadata.get("frames_indices") if hasattr(metadata, "get") else getattr(metadata, "frames_indices", None))
    )
    if indices is None or info.fps is None:
        return
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size != info.num_frames:
        raise ValueError(
            f"`video_metadata` of video {position}: {indices.size} frames_indices for {info.num_frames} frames."
        )
    if np.any(np.diff(indices) <= 0):
        raise ValueError(f"`video_metadata` of video {position}: frames_indices must increase.")
    info.frame_pts = indices
    info.time_base = Fraction(1) / Fraction(info.fps).limit_denominator(1_000_000)


def _given_fps(metadata: Any, position: int) -> float | None:
    if metadata is None:
        return None
    fps = metadata.get("fps") if hasattr(metadata, "get") else getattr(metadata, "fps", None)
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < float("inf")):
        raise ValueError(f"`video_metadata` of video {position}: `fps` must be a positive number, got {fps!r}.")
    return None if fps is None else float(fps)


__all__ = ["load_frames", "split_videos"]

"""Decoded, augmented training / evaluation clips of labelled videos (a torch `Dataset` and its collate).

[`VideoClassificationDataset`] decodes with [`XClipVideoProcessor`] (TSN `"random"` sampling and random resized
crop / horizontal flip when training, the original's test protocol otherwise), within an item's `start` / `end`
when it has them; a video that cannot be read is replaced by another video of its class and reported, never fatal.
Multi-label items carry a multi-hot `target`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..video_io import clip_frame_range, probe_video, read_frames, sample_frame_indices
from .folders import DECODE_ERRORS, VideoFolder, VideoItem


def random_resized_crop(
    clip: torch.Tensor,
    size: int,
    *,
    scale: tuple[float, float] = (0.4, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip_prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The same random resized crop (area `scale`, aspect `ratio`) and horizontal flip for every frame.

    Args:
        clip: `(T, C, H, W)` frames.
        size: output side S.

    Returns:
        `(T, C, S, S)`.
    """
    height, width = clip.shape[-2:]
    area = height * width
    crop_h, crop_w, top, left = height, width, 0, 0
    for _ in range(10):
        target = area * _uniform(*scale, generator)
        aspect = math.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), generator))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            crop_h, crop_w = h, w
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            break
    else:  # fall back to the largest centred crop of a valid aspect ratio
        side = min(height, width)
        crop_h = crop_w = side
        top, left = (height - side) // 2, (width - side) // 2
    crop = clip[..., top : top + crop_h, left : left + crop_w]
    crop = F.interpolate(crop.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if hflip_prob > 0 and _uniform(0.0, 1.0, generator) < hflip_prob:
        crop = crop.flip(-1)
    return crop


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


class VideoClassificationDataset(torch.utils.data.Dataset):
    """Decoded, preprocessed videos of a [`VideoFolder`] (whole files, or the `start` / `end` clip of an item).

    Items are `{"pixel_values": (T, 3, S, S), "label": int, "target": (K,) float multi-hot (multi-label folders
    only), "failed": [str]}`. `failed` lists videos that could not be decoded: with `substitute_failed` (training)
    another readable video of the same class (multi-label: any other video, with its own target) takes their place;
    otherwise the item has `pixel_values=None` and [`collate_videos`] drops it.

    Args:
        folder: the videos.
        video_processor: an `XClipVideoProcessor` (or an `XClipProcessor`).
        num_frames: frames per clip (default: the processor's).
        training: TSN random frame sampling plus random resized crop and flip; otherwise the test protocol
            (middle frames, resize, centre crop).
        augment: with `training`, random resized crop / flip (off: centre crop).
        crop_scale: area range of the random resized crop.
        hflip_prob: probability of a horizontal flip (0 for classes that depend on left / right).
        substitute_failed: replace an unreadable video by another of its class.
    """

    def __init__(
        self,
        folder: VideoFolder,
        video_processor: Any,
        *,
        num_frames: int | None = None,
        training: bool = False,
        augment: bool = True,
        crop_scale: tuple[float, float] = (0.4, 1.0),
        hflip_prob: float = 0.5,
        substitute_failed: bool | None = None,
    ) -> None:
        self.folder = folder
        self.video_processor = getattr(video_processor, "video_processor", video_processor)
        self.num_frames = num_frames or self.video_processor.num_frames
        self.training = training
        self.augment = augment and training
        self.crop_scale = crop_scale
        self.hflip_prob = hflip_prob
        self.substitute_failed = training if substitute_failed is None else substitute_failed
        self.crop_size = int(self.video_processor.crop_size["height"])
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.folder)

    def load(self, index: int) -> torch.Tensor:
        """`(T, 3, S, S)` pixel values of video `index` (raises on unreadable videos)."""
        item = self.folder.items[index]
        source: Any = str(item.path)
        options: dict[str, Any] = {"num_frames": self.num_frames}
        if item.is_clip:
            source, options = self._clip_frames(item), {"do_sample_frames": False}
        elif self.training:
            options["frame_sampling"] = "random"
        if not self.training:
            return self.video_processor(source, **options)["pixel_values"][0]
        pixels = self.video_processor(source, do_center_crop=not self.augment, **options)["pixel_values"][0]
        if not self.augment:
            return pixels
        return random_resized_crop(pixels, self.crop_size, scale=self.crop_scale, hflip_prob=self.hflip_prob)

    def _clip_frames(self, item: VideoItem) -> np.ndarray:
        """The `num_frames` frames sampled (TSN: middle, or random when training) between the item's start and end."""
        info = probe_video(item.path)
        try:
            first, stop = clip_frame_range(info.num_frames, info.fps, item.start, item.end)
        except ValueError as err:
            raise ValueError(f"{item.path}: {err}") from None
        rng = None
        if self.training:  # follow torch's generator, as the processor's random sampling does
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        mode = "random" if self.training else "middle"
        indices = sample_frame_indices(stop - first, self.num_frames, mode, 1, rng)[0] + first
        return read_frames(item.path, indices, info=info)[0]

    def _target(self, index: int) -> torch.Tensor:
        target = torch.zeros(len(self.folder.class_names))
        target[list(self.folder.items[index].labels)] = 1.0
        return target

    def _result(self, index: int, pixel_values: torch.Tensor | None, failed: list[str]) -> dict[str, Any]:
        result = {"pixel_values": pixel_values, "label": self.folder.items[index].label, "failed": failed}
        if self.folder.multi_label:
            result["target"] = self._target(index)
        return result

    def _substitutes(self, index: int) -> list[int]:
        """Readable-so-far videos that may stand in for `index`: its class's (multi-label: any other video)."""
        items = self.folder.items
        if self.folder.multi_label:
            others = (i for i in range(len(items)) if i != index)
        else:
            others = (i for i, other in enumerate(items) if other.label == items[index].label and i != index)
        return [i for i in others if i not in self._bad]

    def _try_load(self, index: int, failed: list[str]) -> torch.Tensor | None:
        try:
            return self.load(index)
        except DECODE_ERRORS as err:
            self._bad.add(index)
            failed.append(f"{self.folder.items[index].path}: {err}")
            return None

    def __getitem__(self, index: int) -> dict[str, Any]:
        failed: list[str] = []
        pixels = self._try_load(index, failed)
        if pixels is not None:
            return self._result(index, pixels, failed)
        if self.substitute_failed:  # the other candidates are listed only after a failure
            for candidate in self._substitutes(index):
                if candidate in self._bad:
                    continue
                pixels = self._try_load(candidate, failed)
                if pixels is not None:
                    # a substitute of a multi-label item brings its own labels; of a single-label item, its class
                    return self._result(candidate if self.folder.multi_label else index, pixels, failed)
        return self._result(index, None, failed)


def collate_videos(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack readable items: `pixel_values` (B, T, 3, S, S) or None, `labels` (B,), `targets` (B, K) for
    multi-label items, `failed` (all failures)."""
    good = [item for item in items if item["pixel_values"] is not None]
    failed = [message for item in items for message in item["failed"]]
    multi = bool(items) and "target" in items[0]
    if not good:
        batch = {"pixel_values": None, "labels": torch.zeros(0, dtype=torch.long), "failed": failed}
        if multi:
            batch["targets"] = torch.zeros(0, items[0]["target"].shape[0])
        return batch
    batch = {
        "pixel_values": torch.stack([item["pixel_values"] for item in good]),
        "labels": torch.tensor([item["label"] for item in good], dtype=torch.long),
        "failed": failed,
    }
    if multi:
        batch["targets"] = torch.stack([item["target"] for item in good])
    return batch


__all__ = ["VideoClassificationDataset", "collate_videos", "random_resized_crop"]

"""Synthetic clips as torch datasets, and written as video files (folder per class, or scenes with a JSONL
annotation file)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..video_writer import write_video
from .rendering import (
    Background,
    Split,
    SyntheticScene,
    SyntheticVideoSpec,
    all_specs,
    render_scene,
    render_video,
    specs_for_split,
)


def _video_seed(seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(1, index))


def _balanced_labels(num_videos: int, num_classes: int, seed: int) -> np.ndarray:
    """Labels with every class appearing ``num_videos // num_classes`` or one more times, in a seeded order."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    rounds = -(-num_videos // num_classes)
    return np.concatenate([rng.permutation(num_classes) for _ in range(rounds)])[:num_videos]


class SyntheticVideoDataset(torch.utils.data.Dataset):
    """Synthetic clips of a split, generated on the fly (deterministic by ``seed`` and index).

    Each item is a dict ``{"frames": uint8 (T, H, W, 3) numpy array (or whatever ``transform`` returns),
    "caption": str, "label": int}`` where ``label`` indexes :attr:`specs` / :attr:`captions`. Classes are
    balanced (each appears ``num_videos // num_classes`` or one more times) in a seeded order.

    Args:
        split: ``"train"``, ``"heldout"`` (zero-shot combinations) or ``"all"``; ignored when ``specs`` is given.
        num_videos: number of clips; defaults to one per class.
        seed: seeds the class order and every clip.
        num_frames: frames per clip.
        size: frame size (``S`` or ``(H, W)``).
        specs: explicit list of classes instead of a split.
        background: ``"noise"`` or ``"plain"``.
        transform: optional callable applied to the ``(T, H, W, 3)`` uint8 frames.
    """

    def __init__(
        self,
        split: Split = "train",
        num_videos: int | None = None,
        seed: int = 0,
        *,
        num_frames: int = 8,
        size: int | tuple[int, int] = 64,
        specs: Sequence[SyntheticVideoSpec] | None = None,
        background: Background = "noise",
        transform: Callable[[np.ndarray], object] | None = None,
    ) -> None:
        self.specs = list(specs) if specs is not None else specs_for_split(split)
        if not self.specs:
            raise ValueError("SyntheticVideoDataset needs at least one class")
        num_videos = len(self.specs) if num_videos is None else num_videos
        if num_videos < 0:
            raise ValueError(f"num_videos must be non-negative, got {num_videos}")
        self.seed = seed
        self.num_frames = num_frames
        self.size = size
        self.background = background
        self.transform = transform
        self.labels = _balanced_labels(num_videos, len(self.specs), seed)

    @property
    def captions(self) -> list[str]:
        """Class texts, indexed by label."""
        return [spec.caption for spec in self.specs]

    def __len__(self) -> int:
        return len(self.labels)

    def frames(self, index: int) -> np.ndarray:
        """The raw ``(T, H, W, 3)`` uint8 clip of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} clips")
        spec = self.specs[int(self.labels[index])]
        return render_video(
            spec,
            num_frames=self.num_frames,
            size=self.size,
            seed=_video_seed(self.seed, index),
            background=self.background,
        )

    def __getitem__(self, index: int) -> dict[str, object]:
        frames = self.frames(index)
        label = int(self.labels[index])
        return {
            "frames": self.transform(frames) if self.transform is not None else frames,
            "caption": self.specs[label].caption,
            "label": label,
        }

    def render_all(self) -> tuple[np.ndarray, np.ndarray]:
        """All clips at once: ``(N, T, H, W, 3)`` uint8 frames and ``(N,)`` int64 labels."""
        if len(self) == 0:
            height, width = (self.size, self.size) if isinstance(self.size, int) else self.size
            return np.zeros((0, self.num_frames, height, width, 3), np.uint8), self.labels.astype(np.int64)
        return np.stack([self.frames(i) for i in range(len(self))]), self.labels.astype(np.int64)


def write_video_folder(
    root: str | Path,
    videos_per_class: int,
    *,
    split: Split = "train",
    specs: Iterable[SyntheticVideoSpec] | None = None,
    seed: int = 0,
    num_frames: int = 16,
    size: int | tuple[int, int] = 64,
    fps: int = 8,
    background: Background = "noise",
) -> dict[str, list[Path]]:
    """Write synthetic clips as mp4 files in a folder-per-class layout: ``root/<caption>/<index>.mp4``.

    Args:
        root: output folder (created; existing files with the same names are overwritten).
        videos_per_class: clips per class.
        split: which combinations (ignored when ``specs`` is given).
        specs: explicit classes.
        seed: seeds every clip (clip ``i`` of class ``c`` gets its own seed derived from ``seed``, ``c`` and ``i``).
        num_frames: frames per clip.
        size: frame size ``S`` or ``(H, W)`` (odd sizes are written with 4:4:4 chroma).
        fps: frame rate written into the file.
        background: ``"noise"`` or ``"plain"``.

    Returns:
        ``{caption: [paths]}``.
    """
    specs = list(specs) if specs is not None else specs_for_split(split)
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be at least 1, got {videos_per_class}")
    root = Path(root)
    written: dict[str, list[Path]] = {}
    for class_index, spec in enumerate(specs):
        class_dir = root / spec.caption
        class_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(videos_per_class):
            frames = render_video(
                spec,
                num_frames=num_frames,
                size=size,
                seed=np.random.SeedSequence(seed, spawn_key=(2, class_index, i)),
                background=background,
            )
            paths.append(write_video(class_dir / f"{i:04d}.mp4", frames, fps, crf=10))
        written[spec.caption] = paths
    return written


class SyntheticSceneDataset(torch.utils.data.Dataset):
    """Multi-label clips of :func:`sample_scenes`, generated on the fly (deterministic by ``seed`` and index).

    Each item is ``{"frames": uint8 (T, H, W, 3) (or what ``transform`` returns), "captions": [str], "target":
    float32 (K,) multi-hot over :attr:`labels`}``.

    Args:
        scenes: the scenes (e.g. ``sample_scenes(100, seed=1, specs=train_specs())``).
        labels: the label vocabulary of ``target`` (default: every caption, :func:`all_specs` order).
        seed: seeds every clip's rendering.
        num_frames / size / background / transform: as for :class:`SyntheticVideoDataset`.
    """

    def __init__(
        self,
        scenes: Sequence[SyntheticScene],
        labels: Sequence[str] | None = None,
        seed: int = 0,
        *,
        num_frames: int = 8,
        size: int | tuple[int, int] = 64,
        background: Background = "noise",
        transform: Callable[[np.ndarray], object] | None = None,
    ) -> None:
        self.scenes = list(scenes)
        self.labels = list(labels) if labels is not None else [spec.caption for spec in all_specs()]
        index = {label: i for i, label in enumerate(self.labels)}
        unknown = sorted({c for scene in self.scenes for c in scene.captions} - set(index))
        if unknown:
            raise ValueError(f"scene captions missing from `labels`: {unknown[:5]}")
        self._index = index
        self.seed, self.num_frames, self.size = seed, num_frames, size
        self.background, self.transform = background, transform

    def __len__(self) -> int:
        return len(self.scenes)

    def targets(self) -> torch.Tensor:
        """(N, K) multi-hot targets of every clip."""
        out = torch.zeros(len(self), len(self.labels))
        for row, scene in enumerate(self.scenes):
            out[row, [self._index[c] for c in scene.captions]] = 1.0
        return out

    def frames(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} clips")
        return render_scene(
            self.scenes[index],
            num_frames=self.num_frames,
            size=self.size,
            seed=np.random.SeedSequence(self.seed, spawn_key=(4, index)),
            background=self.background,
        )

    def __getitem__(self, index: int) -> dict[str, object]:
        frames = self.frames(index)
        target = torch.zeros(len(self.labels))
        target[[self._index[c] for c in self.scenes[index].captions]] = 1.0
        return {
            "frames": self.transform(frames) if self.transform is not None else frames,
            "captions": self.scenes[index].captions,
            "target": target,
        }


def write_scene_videos(
    root: str | Path,
    scenes: Sequence[SyntheticScene],
    *,
    seed: int = 0,
    num_frames: int = 16,
    size: int | tuple[int, int] = 64,
    fps: int = 8,
    background: Background = "noise",
    annotation_file: str = "annotations.jsonl",
) -> Path:
    """Write scenes as ``root/videos/NNNN.mp4`` and a multi-label annotation file ``root/annotations.jsonl`` (one
    ``{"video": "videos/NNNN.mp4", "labels": [captions]}`` line per clip, paths relative to the file), the format
    `hf-xclip finetune --train-annotations` and `hf-xclip evaluate --annotations` read.

    Returns:
        The annotation file's path.
    """
    import json

    root = Path(root)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, scene in enumerate(scenes):
        frames = render_scene(
            scene,
            num_frames=num_frames,
            size=size,
            seed=np.random.SeedSequence(seed, spawn_key=(5, i)),
            background=background,
        )
        name = f"videos/{i:04d}.mp4"
        write_video(root / name, frames, fps, crf=10)
        lines.append(json.dumps({"video": name, "labels": scene.captions}))
    path = root / annotation_file
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer.


__all__ = [
    "SyntheticVideoDataset",
    "write_video_folder",
    "SyntheticSceneDataset",
    "write_scene_videos",
]

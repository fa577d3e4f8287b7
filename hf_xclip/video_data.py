"""Where videos come from: discovery of video files (one extension list) and labelled-video readers.

* [`find_videos`] walks files and folders for video files (what `classify` reads), keeping URLs.
* [`scan_video_folder`] reads `root/<class text>/<video>` (the folder name is the class text),
  [`select_shots`] draws K videos per class with a seed, [`split_heldout`] holds out a fraction,
  [`drop_unreadable`] probes every file and sets the unreadable ones aside.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers.utils import logging

from .video_io import URL_PREFIXES, VideoDecodeError, probe_video

logger = logging.get_logger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".ts", ".gif",
)
# What decoding can raise for a broken file; anything else is a bug and propagates.
DECODE_ERRORS = (VideoDecodeError, OSError, RuntimeError, ValueError, EOFError)


def is_video_file(path: str | os.PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> bool:
    """Whether `path` names a video file by its suffix (case-insensitive); hidden files are not."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in {s.lower() for s in extensions}


def walk_videos(folder: str | os.PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> Iterator[Path]:
    """Video files under `folder`, recursively, in sorted order; hidden files and folders are skipped."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if is_video_file(name, extensions):
                yield Path(root) / name


def find_videos(paths: Sequence[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """`(videos, missing)`: the video files of `paths` (folders walked recursively, files named explicitly always
    kept whatever their suffix, http(s) URLs kept as they are), without repeats, and `(path, reason)` for paths that
    do not exist."""
    videos: list[str] = []
    missing: list[tuple[str, str]] = []
    for raw in paths:
        raw = os.fspath(raw)
        if raw.startswith(URL_PREFIXES):
            videos.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            videos.extend(str(p) for p in walk_videos(path))
        elif path.exists():
            videos.append(str(path))
        else:
            missing.append((raw, "no such file or folder"))
    return list(dict.fromkeys(videos)), missing


@dataclass(frozen=True)
class VideoItem:
    """One labelled video file."""

    path: Path
    label: int


@dataclass
class VideoFolder:
    """Videos of a folder-per-class dataset: `class_names[label]` is the class text of each item."""

    root: Path
    class_names: list[str]
    items: list[VideoItem]

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """Videos per class (every class, zero included)."""
        counts = dict.fromkeys(self.class_names, 0)
        for item in self.items:
            counts[self.class_names[item.label]] += 1
        return counts

    def subset(self, items: Sequence[VideoItem]) -> VideoFolder:
        return VideoFolder(self.root, list(self.class_names), list(items))

    def by_class(self) -> list[list[VideoItem]]:
        groups: list[list[VideoItem]] = [[] for _ in self.class_names]
        for item in self.items:
            groups[item.label].append(item)
        return groups


def scan_video_folder(
    root: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    allow_empty_classes: bool = False,
) -> VideoFolder:
    """List `root/<class>/**/<video>` files.

    Args:
        root: folder with one sub-folder per class; the sub-folder name is the class text.
        class_names: fix the classes and their order (e.g. those an adapter was trained with). Folders must be
            among them; classes without a folder are kept as candidate labels with no videos.
        extensions: file suffixes counted as videos (case-insensitive).
        allow_empty_classes: keep class folders without videos (a warning) instead of raising.

    Raises:
        FileNotFoundError / NotADirectoryError: `root` is missing or not a folder.
        ValueError: no class folders, a folder without videos, or a folder outside `class_names`.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"Video folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder (expected one sub-folder per class).")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{str(root)!r} holds no class folders (expected {root}/<class name>/<video files>).")
    if class_names is None:
        class_names = [p.name for p in folders]
    else:
        class_names = list(class_names)
        unknown = [p.name for p in folders if p.name not in class_names]
        if unknown:
            raise ValueError(f"Class folders {unknown} in {str(root)!r} are not among the classes {class_names}.")
    index = {name: i for i, name in enumerate(class_names)}
    items, empty = [], []
    for folder in folders:
        files = list(walk_videos(folder, extensions))
        if not files:
            empty.append(folder.name)
        items.extend(VideoItem(path, index[folder.name]) for path in files)
    if empty:
        message = (
            f"Class folder(s) {empty} in {str(root)!r} contain no videos (looked for {', '.join(sorted(extensions))})."
        )
        if not allow_empty_classes:
            raise ValueError(message)
        logger.warning(message)
    if not items:
        raise ValueError(f"No videos found under {str(root)!r}.")
    return VideoFolder(root, class_names, items)


def select_shots(folder: VideoFolder, shots: int, seed: int = 0) -> tuple[VideoFolder, VideoFolder]:
    """Draw `shots` videos of every class (seeded); return `(selected, rest)`.

    Raises:
        ValueError: a class has fewer than `shots` videos (all such classes are named).
    """
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}.")
    groups = folder.by_class()
    short = {folder.class_names[c]: len(g) for c, g in enumerate(groups) if len(g) < shots}
    if short:
        raise ValueError(
            f"{shots}-shot training needs {shots} videos per class, but these classes have fewer: {short}. "
            "Lower --shots or add videos."
        )
    rng = random.Random(seed)
    selected, rest = [], []
    for group in groups:
        chosen = set(rng.sample(range(len(group)), shots))
        selected.extend(item for i, item in enumerate(group) if i in chosen)
        rest.extend(item for i, item in enumerate(group) if i not in chosen)
    return folder.subset(selected), folder.subset(rest)


def split_heldout(folder: VideoFolder, fraction: float, seed: int = 0) -> tuple[VideoFolder, VideoFolder]:
    """Hold out `fraction` of every class's videos (at least one video stays for training); `(train, heldout)`."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"The held-out fraction must be in [0, 1), got {fraction}.")
    rng = random.Random(seed)
    train, heldout = [], []
    for group in folder.by_class():
        order = list(range(len(group)))
        rng.shuffle(order)
        count = min(int(round(len(group) * fraction)), max(len(group) - 1, 0))
        held = set(order[:count])
        heldout.extend(item for i, item in enumerate(group) if i in held)
        train.extend(item for i, item in enumerate(group) if i not in held)
    return folder.subset(train), folder.subset(heldout)


def drop_unreadable(folder: VideoFolder) -> tuple[VideoFolder, list[str]]:
    """Probe every video (container, stream, packets); return the readable ones and `"path: reason"` for the rest."""
    kept, failed = [], []
    for item in folder.items:
        try:
            info = probe_video(item.path)
            if not info.num_frames:
                raise VideoDecodeError(str(item.path), "no frames")
            kept.append(item)
        except DECODE_ERRORS as err:
            failed.append(f"{item.path}: {err}")
    if failed:
        logger.warning(f"Skipping {len(failed)} unreadable video(s): " + "; ".join(failed[:5]))
    return folder.subset(kept), failed


__all__ = [
    "DECODE_ERRORS",
    "VIDEO_EXTENSIONS",
    "VideoFolder",
    "VideoItem",
    "drop_unreadable",
    "find_videos",
    "is_video_file",
    "scan_video_folder",
    "select_shots",
    "split_heldout",
    "walk_videos",
]

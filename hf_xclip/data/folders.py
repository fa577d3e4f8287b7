"""Where videos come from: discovery of video files (one extension list) and labelled-video readers.

* [`find_videos`] walks files and folders for video files (what `classify` reads), keeping URLs.
* [`scan_video_folder`] reads `root/<class text>/<video>` (the folder name is the class text).
* [`read_annotations`] reads an annotation file: JSONL lines ``{"video": PATH, "labels": [...]}`` or a CSV with
  columns ``video,labels`` (labels separated by ``;``), multi-label; ``"label"`` / a ``label`` column instead gives
  single-label items; optional ``start`` / ``end`` seconds make an item a clip of a longer video.
* Both give a [`VideoFolder`] of [`VideoItem`]s (label indices into its `class_names`, optional clip bounds);
  [`select_shots`] draws K videos per class with a seed (multi-label: until every label has K videos),
  [`split_heldout`] holds out a fraction, [`drop_unreadable`] probes every file and sets the unreadable ones aside.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers.utils import logging

from ..labels import normalize_labels
from ..video_io import URL_PREFIXES, VideoDecodeError, probe_video

logger = logging.get_logger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".mkv",
    ".mov",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".3gp",
    ".ogv",
    ".ts",
    ".gif",
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
    """One labelled video file, or a clip of one.

    Attributes:
        path: the video file.
        label: its class index (single-label); for a multi-label item the first of `labels`.
        labels: every label index of the item (``(label,)`` for a single-label item).
        start / end: bounds of the clip in seconds (None: from the beginning / to the end of the file).
    """

    path: Path
    label: int
    labels: tuple[int, ...] = ()
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels) or (self.label,))

    @property
    def is_clip(self) -> bool:
        """Whether the item is a part of its file (`start` or `end` set)."""
        return self.start is not None or self.end is not None


@dataclass
class VideoFolder:
    """Labelled videos: `class_names[i]` is the text of label index i of the items.

    Made by [`scan_video_folder`] (folder-per-class, `root` the folder) or [`read_annotations`] (`root` the
    annotation file). `multi_label` items may hold several labels each; single-label items hold one.
    """

    root: Path
    class_names: list[str]
    items: list[VideoItem]
    multi_label: bool = field(default=False)

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """Videos per class (every class, zero included); a multi-label video counts for each of its labels."""
        counts = dict.fromkeys(self.class_names, 0)
        for item in self.items:
            for label in item.labels:
                counts[self.class_names[label]] += 1
        return counts

    def subset(self, items: Sequence[VideoItem]) -> VideoFolder:
        return VideoFolder(self.root, list(self.class_names), list(items), self.multi_label)

    def by_class(self) -> list[list[VideoItem]]:
        """Items of each class, in order (a multi-label item is in the list of each of its labels)."""
        groups: list[list[VideoItem]] = [[] for _ in self.class_names]
        for item in self.items:
            for label in item.labels:
                groups[label].append(item)
        return groups

    def targets(self):
        """(N, K) float multi-hot tensor of the items' labels."""
        import torch

        out = torch.zeros(len(self.items), len(self.class_names))
        for row, item in enumerate(self.items):
            out[row, list(item.labels)] = 1.0
        return out


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


ANNOTATION_KEYS: tuple[str, ...] = ("video", "labels", "label", "start", "end")
ANNOTATION_LABEL_SEPARATOR = ";"
_MAX_REPORTED_PROBLEMS = 20


class AnnotationError(ValueError):
    """An annotation file that cannot be read; the message names the file and the line of every problem found."""


@dataclass
class _Entry:
    line: int
    video: Any
    labels: Any
    multi: bool
    start: Any = None
    end: Any = None


def read_annotations(
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    check_files: bool = True,
) -> VideoFolder:
    """Read a labelled-video annotation file into a [`VideoFolder`].

    Formats (by suffix):

    * ``.jsonl`` / ``.json``: one JSON object per line, ``{"video": PATH, "labels": ["a", "b"]}``; blank lines are
      skipped.
    * ``.csv``: a header row with the columns ``video,labels`` (labels separated by ``;``, e.g. ``a;b``).

    ``"labels"`` (a list) makes the file multi-label; ``"label"`` (one string, or a ``label`` column) single-label;
    one file uses one of the two. Optional ``start`` / ``end`` (seconds) make an item the clip between them. Video
    paths are relative to the annotation file's folder (absolute paths are kept). Class names are the labels that
    occur, sorted, unless `class_names` fixes them (and their order).

    Args:
        path: the annotation file.
        class_names: the allowed labels in index order (e.g. an adapter's classes); other labels are errors.
        check_files: report videos that do not exist.

    Raises:
        FileNotFoundError: `path` does not exist.
        AnnotationError: naming the file and line of every problem: missing videos, empty label lists, unknown keys
            or columns, bad ``start`` / ``end``, duplicate labels on a line, labels outside `class_names`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} not found")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix in (".jsonl", ".json"):
        entries, problems = _jsonl_entries(text)
    elif suffix == ".csv":
        entries, problems = _csv_entries(text)
    else:
        raise AnnotationError(f"{path}: unknown annotation format {suffix or '(no suffix)'!r}; use .jsonl or .csv")
    if problems:
        _raise_problems(path, problems)
    if not entries:
        raise AnnotationError(f"{path}: no annotations found")
    items, names, multi, problems = _entries_to_items(entries, path.parent, class_names, check_files)
    if problems:
        _raise_problems(path, problems)
    return VideoFolder(path, names, items, multi)


def _raise_problems(path: Path, problems: list[tuple[int, str]]) -> None:
    shown = [f"{path}, line {line}: {message}" for line, message in problems[:_MAX_REPORTED_PROBLEMS]]
    more = len(problems) - len(shown)
    raise AnnotationError("\n".join(shown) + (f"\n... and {more} more problem(s)" if more > 0 else ""))


def _jsonl_entries(text: str) -> tuple[list[_Entry], list[tuple[int, str]]]:
    entries, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append((number, f"not valid JSON ({err.msg})"))
            continue
        if not isinstance(record, dict):
            problems.append((number, f"expected a JSON object with 'video' and 'labels', got {type(record).__name__}"))
            continue
        unknown = sorted(set(record) - set(ANNOTATION_KEYS))
        if unknown:
            problems.append((number, f"unknown key(s) {unknown}; expected {', '.join(ANNOTATION_KEYS)}"))
            continue
        if ("labels" in record) == ("label" in record):
            problems.append((number, "give exactly one of 'labels' (a list, multi-label) and 'label' (one string)"))
            continue
        multi = "labels" in record
        entries.append(
            _Entry(
                number,
                record.get("video"),
                record["labels" if multi else "label"],
                multi,
                record.get("start"),
                record.get("end"),
            )
        )
    return entries, problems


def _csv_entries(text: str) -> tuple[list[_Entry], list[tuple[int, str]]]:
    lines = text.splitlines()
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header:
        return [], [(1, "empty CSV file: expected a header row with the columns video,labels")]
    columns = [cell.strip().lower() for cell in header]
    unknown = sorted(set(columns) - set(ANNOTATION_KEYS))
    if unknown:
        return [], [(1, f"unknown column(s) {unknown}; expected video, labels (or label), start, end")]
    if len(set(columns)) != len(columns):
        return [], [(1, f"duplicate columns in the header {header}")]
    if "video" not in columns or ("labels" in columns) == ("label" in columns):
        return [], [(1, f"the header needs a 'video' column and one of 'labels' / 'label', got {header}")]
    multi = "labels" in columns
    entries, problems = [], []
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            problems.append((number, f"{len(row)} fields for {len(columns)} columns ({', '.join(columns)})"))
            continue
        record = {name: cell.strip() for name, cell in zip(columns, row)}
        labels = record["labels" if multi else "label"]
        if multi:
            labels = [] if not labels else [piece.strip() for piece in labels.split(ANNOTATION_LABEL_SEPARATOR)]
        entries.append(
            _Entry(number, record["video"], labels, multi, record.get("start") or None, record.get("end") or None)
        )
    return entries, problems


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"'{name}' must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"'{name}' must be a non-negative number of seconds, got {value!r}")
    return seconds


def _entry_labels(entry: _Entry) -> list[str]:
    if entry.multi:
        if not isinstance(entry.labels, list):
            raise ValueError(f"'labels' must be a list of strings, got {entry.labels!r}")
        labels = entry.labels
        if not labels:
            raise ValueError("empty label list")
    else:
        labels = [entry.labels]
    for label in labels:
        if not isinstance(label, str):
            raise ValueError(f"labels must be strings, got {label!r}")
    return normalize_labels([label.strip() for label in labels], "labels")


def _entries_to_items(
    entries: list[_Entry], base: Path, class_names: Sequence[str] | None, check_files: bool
) -> tuple[list[VideoItem], list[str], bool, list[tuple[int, str]]]:
    problems: list[tuple[int, str]] = []
    multi = entries[0].multi
    parsed = []
    for entry in entries:
        try:
            if entry.multi != multi:
                raise ValueError(
                    "mixes 'label' and 'labels': the file's first entry uses "
                    f"{'labels' if multi else 'label'!r}, use it on every line"
                )
            if not isinstance(entry.video, str) or not entry.video.strip():
                raise ValueError(f"'video' must be a non-empty path, got {entry.video!r}")
            labels = _entry_labels(entry)
            start, end = _seconds(entry.start, "start"), _seconds(entry.end, "end")
            if start is not None and end is not None and end <= start:
                raise ValueError(f"'end' ({end:g} s) must be after 'start' ({start:g} s)")
            video = Path(entry.video.strip())
            video = video if video.is_absolute() else base / video
            if check_files and not video.is_file():
                raise ValueError(f"video {video} not found")
            parsed.append((entry.line, video, labels, start, end))
        except ValueError as err:
            problems.append((entry.line, str(err)))
    names = (
        list(class_names)
        if class_names is not None
        else sorted({label for _, _, labels, _, _ in parsed for label in labels})
    )
    index = {name: i for i, name in enumerate(names)}
    items = []
    for line, video, labels, start, end in parsed:
        unknown = [label for label in labels if label not in index]
        if unknown:
            problems.append((line, f"label(s) {unknown} not among the {len(names)} classes (e.g. {names[:3]})"))
            continue
        indices = tuple(index[label] for label in labels)
        items.append(VideoItem(video, indices[0], indices, start, end))
    return items, names, multi, problems


def select_shots(folder: VideoFolder, shots: int, seed: int = 0) -> tuple[VideoFolder, VideoFolder]:
    """Draw `shots` videos of every class (seeded); return `(selected, rest)`.

    Multi-label: labels are visited from the rarest up and videos holding a label are drawn (seeded order) until
    the label has `shots` selected videos; a video counts for all its labels, so frequent labels may get more.

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
    if folder.multi_label:
        return _select_multi_label_shots(folder, shots, rng)
    selected, rest = [], []
    for group in groups:
        chosen = set(rng.sample(range(len(group)), shots))
        selected.extend(item for i, item in enumerate(group) if i in chosen)
        rest.extend(item for i, item in enumerate(group) if i not in chosen)
    return folder.subset(selected), folder.subset(rest)


def _select_multi_label_shots(folder: VideoFolder, shots: int, rng: random.Random) -> tuple[VideoFolder, VideoFolder]:
    order = list(range(len(folder.items)))
    rng.shuffle(order)
    counts = [0] * len(folder.class_names)
    frequency = [len(group) for group in folder.by_class()]
    chosen: set[int] = set()
    for label in sorted(range(len(counts)), key=lambda c: (frequency[c], c)):
        for index in order:
            if counts[label] >= shots:
                break
            item = folder.items[index]
            if index not in chosen and label in item.labels:
                chosen.add(index)
                for other in item.labels:
                    counts[other] += 1
    selected = [item for i, item in enumerate(folder.items) if i in chosen]
    rest = [item for i, item in enumerate(folder.items) if i not in chosen]
    return folder.subset(selected), folder.subset(rest)


def split_heldout(folder: VideoFolder, fraction: float, seed: int = 0) -> tuple[VideoFolder, VideoFolder]:
    """Hold out `fraction` of every class's videos (at least one video stays for training); `(train, heldout)`.
    Multi-label videos are held out as a whole: `fraction` of all videos, drawn at random."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"The held-out fraction must be in [0, 1), got {fraction}.")
    rng = random.Random(seed)
    if folder.multi_label:
        order = list(range(len(folder.items)))
        rng.shuffle(order)
        held = set(order[: min(int(round(len(order) * fraction)), max(len(order) - 1, 0))])
        train = [item for i, item in enumerate(folder.items) if i not in held]
        return folder.subset(train), folder.subset([item for i, item in enumerate(folder.items) if i in held])
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
    "ANNOTATION_KEYS",
    "AnnotationError",
    "DECODE_ERRORS",
    "VIDEO_EXTENSIONS",
    "VideoFolder",
    "VideoItem",
    "drop_unreadable",
    "find_videos",
    "is_video_file",
    "read_annotations",
    "scan_video_folder",
    "select_shots",
    "split_heldout",
    "walk_videos",
]

"""The on-disk format of a video index: `index.json` (what made the rows: model, adapter, fingerprints, row
settings), the Arrow schema of the rows (int8 prompt features with per-patch scales), shards written atomically with
their own manifests, and the manifest of a folder. The folder layout is described in `hf_xclip.search.build`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers.utils import logging

from ..utils import atomic_path, atomic_write_text, is_positive_number

logger = logging.get_logger(__name__)

INDEX_FORMAT = "hf_xclip-video-index"
INDEX_VERSION = 1
INDEX_FILE = "index.json"
SHARDS_DIR = "shards"
SHARD_SUFFIX = ".arrow"
LOCK_FILE = ".lock"
SHARD_METADATA_KEY = b"hf_xclip_index"
# Test hook: seconds to sleep after a shard's temporary file is written, before it is committed.
TEST_PAUSE_ENV = "HF_XCLIP_INDEX_TEST_PAUSE"
DEFAULT_MODEL_NAME = "hf_xclip:default"  # index.json's name for the embedded default model (found wherever installed)
Precision = Literal["int8", "float16", "float32"]
PRECISIONS: tuple[str, ...] = ("int8", "float16", "float32")


def require_extra(module: str):
    """Import one of the ``index`` extra's modules, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"the video index needs {module.split('.')[0]}: pip install 'hf_xclip[index]' (datasets, faiss-cpu)"
        ) from None


# ----------------------------------------------------------------------------------------------------------------
# What made the rows: index.json


class IndexModelMismatchError(ValueError):
    """The model used with an index is not the one (with the same adapter) that made its rows."""


@dataclass
class IndexSettings:
    """How rows are made; fixed when an index is created (an append uses the same).

    Attributes:
        window: window length in seconds; ``None``: one row per video.
        stride: seconds between window starts (default: ``window``, windows side by side).
        num_frames: frames per row (default: the model's ``vision_config.num_frames``).
        tail: the last window of a video, ``"shift"`` or ``"partial"`` (see `hf_xclip.video_io.window_spans`).
        precision: how prompt features are stored: ``"int8"`` (one float32 scale per patch), ``"float16"`` or
            ``"float32"``.
    """

    window: float | None = None
    stride: float | None = None
    num_frames: int | None = None
    tail: str = "shift"
    precision: str = "int8"

    def __post_init__(self) -> None:
        if self.window is not None:
            if not is_positive_number(self.window):
                raise ValueError(f"window must be a positive number of seconds, got {self.window!r}.")
            self.window = float(self.window)
            self.stride = self.window if self.stride is None else self.stride
            if not is_positive_number(self.stride):
                raise ValueError(f"stride must be a positive number of seconds, got {self.stride!r}.")
            self.stride = float(self.stride)
        elif self.stride is not None:
            raise ValueError("stride needs a window: give window (seconds) with stride.")
        if self.num_frames is not None and (isinstance(self.num_frames, bool) or int(self.num_frames) < 1):
            raise ValueError(f"num_frames must be a positive integer, got {self.num_frames!r}.")
        if self.tail not in ("shift", "partial"):
            raise ValueError(f"tail must be 'shift' or 'partial', got {self.tail!r}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}.")


@dataclass
class IndexInfo:
    """The contents of ``index.json``: what the rows of an index depend on.

    Attributes:
        model: the model's directory or Hub id (`DEFAULT_MODEL_NAME` for the embedded default model), or None.
        adapter: the PEFT adapter loaded onto it, or None.
        video_fingerprint / text_fingerprint: `model_fingerprint(model, "video")` (what rows depend on: vision
            tower, MIT, prompt generator, logit scale) and `model_fingerprint(model, "text")` (what queries depend
            on). A model whose fingerprints differ is refused.
        projection_dim: size of an embedding (D).
        num_patches: prompt-feature tokens per row (P); 0 for a model without a prompt generator.
        settings: how rows are made.
        created: when the index was created (UTC, ISO 8601).
    """

    model: str | None
    adapter: str | None
    video_fingerprint: str
    text_fingerprint: str
    projection_dim: int
    num_patches: int
    settings: IndexSettings
    created: str = ""

    def to_json(self) -> str:
        data = {"format": INDEX_FORMAT, "version": INDEX_VERSION, **asdict(self)}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "index.json") -> IndexInfo:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where} is not valid JSON ({err}).") from None
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
            raise ValueError(f"{where} is not an hf_xclip video index (no format '{INDEX_FORMAT}').")
        if data.get("version") != INDEX_VERSION:
            raise ValueError(f"{where} has index version {data.get('version')!r}; this hf_xclip reads {INDEX_VERSION}.")
        try:
            settings = IndexSettings(**data["settings"])
            return cls(
                model=data["model"],
                adapter=data["adapter"],
                video_fingerprint=data["video_fingerprint"],
                text_fingerprint=data["text_fingerprint"],
                projection_dim=int(data["projection_dim"]),
                num_patches=int(data["num_patches"]),
                settings=settings,
                created=data.get("created", ""),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"{where} is malformed ({type(err).__name__}: {err}).") from None

    def check_model(self, video_fingerprint: str, text_fingerprint: str, where: str = "this index") -> None:
        """Raise [`IndexModelMismatchError`] unless both fingerprints are those the index was made with."""
        sides = [
            side
            for side, mine, theirs in (
                ("video", self.video_fingerprint, video_fingerprint),
                ("text", self.text_fingerprint, text_fingerprint),
            )
            if mine != theirs
        ]
        if sides:
            made_by = self.model or "another model"
            adapter = f" + adapter {self.adapter}" if self.adapter else ""
            raise IndexModelMismatchError(
                f"{where} was made by {made_by}{adapter} ({' and '.join(sides)} fingerprint "
                f"{(self.video_fingerprint if sides[0] == 'video' else self.text_fingerprint)[:12]}), not by the model "
                f"given ({(video_fingerprint if sides[0] == 'video' else text_fingerprint)[:12]}): search it with the "
                "model (and adapter) that built it, or build a new index for this model."
            )


def read_info(index_dir: str | os.PathLike) -> IndexInfo | None:
    """The `IndexInfo` of an index folder, or None when the folder holds no ``index.json``."""
    path = Path(index_dir) / INDEX_FILE
    if not path.is_file():
        return None
    return IndexInfo.from_json(path.read_text(encoding="utf-8"), str(path))


def create_index(index_dir: str | os.PathLike, info: IndexInfo) -> Path:
    """Start an empty index: write ``index.json`` (atomically) into `index_dir` (created). Rows are then added with
    [`write_shard`]; `build_index` does both."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    if not info.created:
        info.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_text(index_dir / INDEX_FILE, info.to_json())
    return index_dir


# ----------------------------------------------------------------------------------------------------------------
# Rows: schema, quantisation, shards


def shard_schema(projection_dim: int, num_patches: int, precision: str):
    """The Arrow schema of a shard (without its manifest metadata)."""
    pa = require_extra("pyarrow")
    fields = [
        pa.field("video", pa.string(), nullable=False),
        pa.field("start", pa.float64(), nullable=False),
        pa.field("end", pa.float64(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), projection_dim), nullable=False),
    ]
    if num_patches:
        value = {"int8": pa.int8(), "float16": pa.float16(), "float32": pa.float32()}[precision]
        features = pa.list_(pa.list_(value, projection_dim), num_patches)
        fields.append(pa.field("prompt_features", features, nullable=False))
        if precision == "int8":
            fields.append(pa.field("prompt_scale", pa.list_(pa.float32(), num_patches), nullable=False))
    return pa.schema(fields)


def quantize_prompt_features(
    features: torch.Tensor | np.ndarray, precision: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(values, scales)`` to store for prompt features ``(B, P, D)``.

    ``"int8"``: symmetric per-patch quantisation, ``values = round(x / s)`` in [-127, 127] with ``s = max|x| / 127``
    over the patch's D values (``scales`` (B, P) float32); ``"float16"`` / ``"float32"``: the values cast, no scales.

    Example:

    ```python
    >>> import torch
    >>> values, scales = quantize_prompt_features(torch.tensor([[[0.5, -1.0, 0.25]]]), "int8")
    >>> values.tolist(), round(float(scales[0, 0]) * 127, 6)
    ([[[64, -127, 32]]], 1.0)
    >>> [round(float(x), 3) for x in dequantize_prompt_features(values, scales)[0, 0]]  # off by half a step at most
    [0.504, -1.0, 0.252]
    ```
    """
    if isinstance(features, torch.Tensor):
        features = features.detach().float().cpu().numpy()
    x = np.asarray(features, np.float32)
    if precision == "float32":
        return np.ascontiguousarray(x, dtype=np.float32), None
    if precision == "float16":
        return x.astype(np.float16), None
    if precision != "int8":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    scales = np.abs(x).max(axis=-1) / 127.0
    scales[scales == 0] = 1.0
    values = np.clip(np.rint(x / scales[..., None]), -127, 127).astype(np.int8)
    return values, scales.astype(np.float32)


def dequantize_prompt_features(values: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
    """float32 ``(B, P, D)`` prompt features from stored ``values`` (and int8 ``scales`` (B, P))."""
    out = values.astype(np.float32, copy=scales is not None)
    if scales is not None:
        out *= scales[..., None]
    return out


@dataclass
class RowBatch:
    """Rows in memory, before they are written: ``videos`` / ``starts`` / ``ends`` (N,), ``embeddings`` (N, D)
    float32, ``prompt_values`` (N, P, D) and ``prompt_scales`` (N, P) as stored (None without a prompt generator)."""

    videos: list[str]
    starts: np.ndarray
    ends: np.ndarray
    embeddings: np.ndarray
    prompt_values: np.ndarray | None = None
    prompt_scales: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.videos)

    @classmethod
    def concatenate(cls, batches: Sequence[RowBatch]) -> RowBatch:
        def cat(name):
            parts = [getattr(b, name) for b in batches]
            return None if any(p is None for p in parts) or not parts else np.concatenate(parts)

        return cls(
            videos=[v for b in batches for v in b.videos],
            starts=cat("starts") if batches else np.zeros(0),
            ends=cat("ends") if batches else np.zeros(0),
            embeddings=cat("embeddings") if batches else np.zeros((0, 0), np.float32),
            prompt_values=cat("prompt_values"),
            prompt_scales=cat("prompt_scales"),
        )


def _fixed_list(values: np.ndarray, depth: int):
    """A nested fixed-size-list Arrow array over a C-contiguous array whose first axis is the row (no copy)."""
    pa = require_extra("pyarrow")
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    for size in reversed(values.shape[1 : 1 + depth]):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


@dataclass
class Shard:
    """A committed shard: its file, rows, and manifest (videos with their row counts, failures)."""

    path: Path
    rows: int
    files: list[tuple[str, int]]
    failed: list[tuple[str, str]]
    rank: int = 0

    @property
    def name(self) -> str:
        return self.path.name


def write_shard(
    index_dir: str | os.PathLike,
    info: IndexInfo,
    rows: RowBatch,
    files: Sequence[tuple[str, int]],
    failed: Sequence[tuple[str, str]] = (),
    rank: int = 0,
) -> Shard:
    """Write one shard and commit it atomically.

    Args:
        index_dir: the index folder (``shards/`` is created).
        info: the index's `IndexInfo` (sizes and precision of the columns).
        rows: the rows, grouped by video in the order of `files`.
        files: ``(video, rows)`` of every video whose rows this shard holds (all of them), in order.
        failed: ``(video, reason)`` of videos that failed, recorded with the shard.
        rank: the writing process (part of the file name).

    The file is written under a hidden name and renamed into place: readers and a restarted run see the whole
    shard or nothing.
    """
    pa = require_extra("pyarrow")
    if sum(count for _, count in files) != len(rows):
        raise ValueError(f"a shard's files list {sum(c for _, c in files)} rows but it holds {len(rows)}.")
    schema = shard_schema(info.projection_dim, info.num_patches, info.settings.precision)
    manifest = {
        "files": [list(f) for f in files],
        "failed": [list(f) for f in failed],
        "rank": rank,
        "rows": len(rows),
        "committed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    schema = schema.with_metadata({SHARD_METADATA_KEY: json.dumps(manifest, ensure_ascii=False).encode("utf-8")})
    folder = Path(index_dir) / SHARDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-r{rank:04d}{SHARD_SUFFIX}"
    final = folder / name
    with atomic_path(final, fsync=True) as partial:
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            if len(rows):
                writer.write_batch(pa.RecordBatch.from_arrays(_row_columns(rows, info), schema=schema))
        pause = float(os.environ.get(TEST_PAUSE_ENV) or 0)
        if pause:
            time.sleep(pause)
    return Shard(final, len(rows), [tuple(f) for f in files], [tuple(f) for f in failed], rank)


def _row_columns(rows: RowBatch, info: IndexInfo) -> list:
    import pyarrow as pa

    columns = [
        pa.array(rows.videos, pa.string()),
        pa.array(np.asarray(rows.starts, np.float64)),
        pa.array(np.asarray(rows.ends, np.float64)),
        _fixed_list(np.asarray(rows.embeddings, np.float32), 1),
    ]
    if info.num_patches:
        columns.append(_fixed_list(rows.prompt_values, 2))
        if info.settings.precision == "int8":
            columns.append(_fixed_list(rows.prompt_scales, 1))
    return columns


def shard_paths(index_dir: str | os.PathLike) -> list[Path]:
    """Committed shard files, in commit order (their names start with the commit time)."""
    folder = Path(index_dir) / SHARDS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(SHARD_SUFFIX) and not p.name.startswith("."))


def open_shard(path: Path):
    """``(table, manifest)`` of a shard: a memory-mapped Arrow table (no copy) and its manifest dict."""
    pa = require_extra("pyarrow")
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
        table = reader.read_all()
    except (OSError, pa.ArrowInvalid) as err:
        raise ValueError(f"shard {path} is not a readable Arrow stream ({err}).") from None
    return table, _manifest(reader.schema, path)


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a shard, from its schema, checked against the rows the file holds (its record batches are
    walked through a memory map, not copied): a shard truncated or damaged on disk is refused here, not found out
    when a search reads it."""
    pa = require_extra("pyarrow")
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_stream(source)
            schema = reader.schema
            rows = sum(batch.num_rows for batch in reader)
    except (OSError, pa.ArrowInvalid) as err:
        raise ValueError(f"shard {path} is truncated or not a readable Arrow stream ({err}).") from None
    manifest = _manifest(schema, path)
    if rows != int(manifest["rows"]):
        raise ValueError(f"shard {path} holds {rows} rows, its manifest lists {manifest['rows']} (truncated?).")
    return manifest


def _manifest(schema: Any, path: Path) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(SHARD_METADATA_KEY)
    if raw is None:
        raise ValueError(f"shard {path} has no hf_xclip manifest.")
    return json.loads(raw.decode("utf-8"))


@dataclass
class Manifest:
    """What the committed shards of an index hold.

    Attributes:
        shards: committed shards in commit order (row order of the index).
        files: ``{video: rows}`` of every indexed video.
        failed: ``{video: reason}`` of videos that failed and are not indexed (a failure later fixed by a retry is
            not listed).
        duplicates: videos held by more than one shard (only possible when shards are copied in by hand).
        set_aside: damaged shards `read_manifest(..., repair=True)` renamed out of the way.
    """

    shards: list[Shard]
    files: dict[str, int]
    failed: dict[str, str]
    duplicates: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(shard.rows for shard in self.shards)


def read_manifest(index_dir: str | os.PathLike, repair: bool = False) -> Manifest:
    """Read the manifests of all committed shards, each checked against its rows.

    Args:
        repair: set a damaged shard aside (renamed ``.NAME.broken``, listed in ``Manifest.set_aside``) so that its
            videos count as not indexed and an indexing run redoes them; else refuse it.

    Raises:
        ValueError: a shard is truncated or damaged (without `repair`), naming it and the fix.
    """
    shards, files, failed, duplicates, set_aside = [], {}, {}, [], []
    for path in shard_paths(index_dir):
        try:
            data = _read_manifest(path)
        except ValueError as err:
            if not repair:
                raise ValueError(
                    f"{err} Re-run `hf-xclip index` into {index_dir} to set it aside and redo its videos."
                ) from None
            aside = path.with_name(f".{path.name}.broken")
            os.replace(path, aside)
            set_aside.append(str(aside))
            continue
        shard = Shard(
            path,
            int(data["rows"]),
            [tuple(f) for f in data["files"]],
            [tuple(f) for f in data["failed"]],
            int(data.get("rank", 0)),
        )
        shards.append(shard)
        for video, count in shard.files:
            if video in files:
                duplicates.append(video)
            files[video] = files.get(video, 0) + int(count)
        for video, reason in shard.failed:
            failed[video] = reason
    failed = {video: reason for video, reason in failed.items() if video not in files}
    return Manifest(shards, files, failed, duplicates, set_aside)


__all__ = [
    "DEFAULT_MODEL_NAME",
    "INDEX_FILE",
    "PRECISIONS",
    "create_index",
    "dequantize_prompt_features",
    "open_shard",
    "quantize_prompt_features",
    "read_info",
    "read_manifest",
    "require_extra",
    "shard_paths",
    "shard_schema",
    "write_shard",
    "IndexInfo",
    "IndexModelMismatchError",
    "IndexSettings",
    "Manifest",
    "RowBatch",
    "Shard",
]

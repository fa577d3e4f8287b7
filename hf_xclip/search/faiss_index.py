"""The FAISS index over the committed shards of a video index: exact (flat) up to `FLAT_MAX_FLOATS`, IVF above with a
calibrated `nprobe`; stored next to the shards under a key naming the shard list, so it is rebuilt whenever they
change."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from transformers.utils import logging

from .format import Shard, _atomic_write_text, open_shard, read_info, require_extra

logger = logging.get_logger(__name__)

FaissKind = Literal["auto", "flat", "ivf"]
# Exhaustive (exact) FAISS search while the embedding matrix holds at most this many float32 values (256 MiB:
# 131,072 rows of 512, about 30 ms of one core per query); an IVF index above.
FLAT_MAX_FLOATS = 2**26


# ----------------------------------------------------------------------------------------------------------------
# FAISS over the committed shards


@dataclass
class FaissInfo:
    """How the FAISS index was built: ``kind`` ("flat" or "ivf"), ``rows``, ``nlist`` and the default ``nprobe``
    (IVF), and the ``key`` of the shard list it covers."""

    kind: str
    rows: int
    key: str
    nlist: int = 0
    nprobe: int = 0
    calibration_recall: float | None = None


def faiss_key(shards: Sequence[Shard]) -> str:
    """Names the shard list a FAISS index covers (a changed list means a stale FAISS index)."""
    digest = hashlib.sha256("\n".join(f"{s.name}:{s.rows}" for s in shards).encode()).hexdigest()
    return digest[:16]


def normalized_embeddings(tables: Sequence[Any]) -> np.ndarray:
    """(N, D) float32 L2-normalised ``embedding`` column of shard tables (rows in order)."""
    parts = [column_array(table, "embedding") for table in tables if table.num_rows]
    if not parts:
        return np.zeros((0, 0), np.float32)
    vectors = np.concatenate(parts).astype(np.float32, copy=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    vectors /= norms
    return vectors


def column_array(table: Any, name: str) -> np.ndarray:
    """A fixed-size-list column of a shard table as a numpy array ``(rows, ...)``, without copying when the table
    is one chunk (a shard read from disk)."""
    column = table.column(name)
    chunks = column.chunks if column.num_chunks else []
    parts = []
    for chunk in chunks:
        shape = [len(chunk)]
        values = chunk
        while hasattr(values, "flatten") and hasattr(values.type, "list_size"):
            shape.append(values.type.list_size)
            values = values.flatten()
        parts.append(values.to_numpy(zero_copy_only=False).reshape(shape))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def build_faiss(vectors: np.ndarray, kind: FaissKind = "auto", calibration_candidates: int = 100, seed: int = 0):
    """``(faiss index, FaissInfo)`` over L2-normalised ``vectors`` (N, D), searched by inner product (= cosine).

    ``kind="auto"``: exact ``IndexFlatIP`` while ``N * D <= FLAT_MAX_FLOATS``, else ``IndexIVFFlat`` with
    ``nlist = 4 * sqrt(N)`` cells (k-means on up to 256 points per cell). Its default ``nprobe`` is calibrated: the
    smallest power of two for which the IVF search finds 99 % of the exact top-`calibration_candidates` of 256
    queries drawn from the rows (searched for themselves, the self match left out); pass ``nprobe=`` to a search to
    trade speed for recall.
    """
    faiss = require_extra("faiss")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dim = vectors.shape
    if kind not in ("auto", "flat", "ivf"):
        raise ValueError(f"kind must be 'auto', 'flat' or 'ivf', got {kind!r}.")
    if kind == "auto":
        kind = "flat" if count * dim <= FLAT_MAX_FLOATS else "ivf"
    nlist = max(1, min(int(4 * math.sqrt(count)), count // 39)) if kind == "ivf" else 0
    if kind == "flat" or nlist < 2:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, FaissInfo("flat", count, "")
    rng = np.random.default_rng(seed)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    train = vectors[rng.choice(count, size=min(count, 256 * nlist), replace=False)]
    index.cp.seed = seed
    index.train(train)
    index.add(vectors)
    nprobe, recall = _calibrate_nprobe(index, vectors, min(calibration_candidates, count - 1), rng)
    index.nprobe = nprobe
    return index, FaissInfo("ivf", count, "", nlist=nlist, nprobe=nprobe, calibration_recall=recall)


def _calibrate_nprobe(index, vectors: np.ndarray, k: int, rng: np.random.Generator) -> tuple[int, float]:
    queries = rng.choice(len(vectors), size=min(256, len(vectors)), replace=False)
    exact = np.argsort(-(vectors[queries] @ vectors.T), axis=1)[:, : k + 1]
    truth = [set(row.tolist()) - {int(q)} for row, q in zip(exact, queries)]
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, found = index.search(vectors[queries], k + 1)
        recall = float(np.mean([len(t & set(f.tolist())) / max(1, len(t)) for t, f in zip(truth, found)]))
        if recall >= 0.99 or nprobe >= index.nlist:
            return min(nprobe, index.nlist), recall
        nprobe *= 2


def load_or_build_faiss(index_dir: str | os.PathLike, shards: Sequence[Shard], tables: Sequence[Any] | None = None,
                        kind: FaissKind = "auto", write: bool = True):
    """``(faiss index, FaissInfo)`` for the committed `shards`: read from ``faiss-<key>.index`` when it covers
    exactly these shards (and `kind` allows it), else built from their embeddings and, with `write`, saved
    atomically (older FAISS files are removed). `tables` are the shards' tables when already open."""
    faiss = require_extra("faiss")
    index_dir = Path(index_dir)
    key = faiss_key(shards)
    path, sidecar = index_dir / f"faiss-{key}.index", index_dir / f"faiss-{key}.json"
    if path.is_file() and sidecar.is_file():
        try:
            info = FaissInfo(**json.loads(sidecar.read_text(encoding="utf-8")))
            if kind in ("auto", info.kind):
                index = faiss.read_index(str(path))
                if info.kind == "ivf":
                    faiss.extract_index_ivf(index).nprobe = info.nprobe
                return index, info
        except (OSError, TypeError, ValueError, RuntimeError) as err:
            logger.warning(f"rebuilding the FAISS index of {index_dir}: {path.name} is unreadable ({err}).")
    if tables is None:
        tables = [open_shard(shard.path)[0] for shard in shards]
    vectors = normalized_embeddings(tables)
    if not len(vectors):
        vectors = np.zeros((0, read_info(index_dir).projection_dim), np.float32)
    index, info = build_faiss(vectors, kind)
    info.key = key
    if write:
        try:
            partial = index_dir / f".faiss-{key}.index.partial"
            _atomic_write_text(sidecar, json.dumps(asdict(info), indent=2) + "\n")
            faiss.write_index(index, str(partial))
            os.replace(partial, path)  # the .index file is the commit: a sidecar alone is ignored
            for old in index_dir.glob("faiss-*"):
                if old.name not in (path.name, sidecar.name):
                    old.unlink(missing_ok=True)
        except OSError as err:  # a read-only index still searches, with its FAISS index in memory
            logger.warning(f"could not save the FAISS index of {index_dir} ({err}); it is kept in memory.")
    return index, info


__all__ = [
    "FLAT_MAX_FLOATS",
    "build_faiss",
    "load_or_build_faiss",
    "normalized_embeddings",
    "FaissInfo",
]

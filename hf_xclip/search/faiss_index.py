"""The FAISS index over the committed shards of a video index, chosen by size: exact (flat) up to `FLAT_MAX_FLOATS`,
IVF-PQ above (64 bytes per row in memory; its candidates re-scored by the exact cosine of their memory-mapped
embeddings), with a calibrated `nprobe`; stored next to the shards under a key naming the shard list, so it is rebuilt
whenever they change.

| kind | in memory per row (D = 512) | per query | chosen by ``auto`` |
| --- | --- | --- | --- |
| ``flat`` (``IndexFlatIP``) | 2 KiB | N x D multiply-adds: exact | N x D <= 2^26 (131,072 rows of 512) |
| ``ivf`` (``IndexIVFFlat``) | 2 KiB | nprobe / nlist of that | never (``--faiss ivf``) |
| ``ivfpq`` (``IndexIVFPQ``, D / 8 bytes) | 64 B | nprobe / nlist x N code look-ups, then | above |
| | | `REFINE_FACTOR` x C embeddings read and re-scored | |

The IVF-PQ index is built without holding the embedding matrix: k-means and the PQ codebooks are trained on a sample,
the rows are added shard by shard from the memory-mapped shards."""

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

from ..utils import atomic_path, atomic_write_text
from .format import Shard, open_shard, read_info, require_extra

logger = logging.get_logger(__name__)

FaissKind = Literal["auto", "flat", "ivf", "ivfpq"]
FAISS_KINDS: tuple[str, ...] = ("auto", "flat", "ivf", "ivfpq")
# Exhaustive (exact) FAISS search while the embedding matrix holds at most this many float32 values (256 MiB:
# 131,072 rows of 512, about 30 ms of one core per query); an IVF index above.
FLAT_MAX_FLOATS = 2**26
# An IVF-PQ search returns REFINE_FACTOR x C rows, re-scored by the exact cosine of their stored embeddings (read from
# the memory-mapped shards), of which the best C are the candidates.
# Measured at 1M clustered B/32 rows: 8 x 50 PQ-ranked rows held 93 % of the exact top 50, 16 x 50 held 99.7 %.
REFINE_FACTOR = 16
# IVF-PQ's default nprobe: NPROBE_MARGIN x the calibrated one, at least NPROBE_MIN (see build_faiss_from_tables).
NPROBE_MARGIN, NPROBE_MIN = 4, 16
# k-means training points per IVF cell (FAISS asks for at least 39), and at most this many in all.
TRAIN_PER_CELL, TRAIN_MAX = 64, 131_072


# ----------------------------------------------------------------------------------------------------------------
# FAISS over the committed shards


@dataclass
class FaissInfo:
    """How the FAISS index was built: ``kind`` ("flat", "ivf" or "ivfpq"), ``rows``, ``nlist`` and the default
    ``nprobe`` (IVF), ``refine`` (IVF-PQ: rows re-scored exactly per candidate), and the ``key`` of the shard list it
    covers."""

    kind: str
    rows: int
    key: str
    nlist: int = 0
    nprobe: int = 0
    calibration_recall: float | None = None
    refine: int = 0


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

    ``kind="auto"``: exact ``IndexFlatIP`` while ``N * D <= FLAT_MAX_FLOATS``, else ``"ivfpq"``: ``IndexIVFPQ`` with
    ``nlist = sqrt(N)`` cells and D / 8 one-byte codes per row (trained on `TRAIN_PER_CELL` points per cell, at most
    `TRAIN_MAX`), whose searches return `REFINE_FACTOR` x the rows asked for, re-scored exactly by the caller
    (`VideoIndex.candidates`). ``"ivf"``: ``IndexIVFFlat`` with ``nlist = 4 * sqrt(N)`` (k-means on up to 256
    points per cell). An IVF index's default ``nprobe`` is calibrated: the smallest power of two for which the search
    finds 99 % of the exact top-`calibration_candidates` of 256 queries drawn from the rows (IVF-PQ: among its
    `REFINE_FACTOR` x as many results); pass ``nprobe=`` to a search to trade speed for recall.
    """
    faiss = require_extra("faiss")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dim = vectors.shape
    if kind not in FAISS_KINDS:
        raise ValueError(f"kind must be one of {FAISS_KINDS}, got {kind!r}.")
    if kind in ("auto", "ivfpq"):
        return build_faiss_from_tables([vectors], dim, kind, calibration_candidates, seed)
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


def choose_kind(count: int, dim: int, kind: FaissKind = "auto") -> FaissKind:
    """The FAISS index for `count` rows of `dim` floats: `kind`, or for ``"auto"`` flat up to `FLAT_MAX_FLOATS`
    values, IVF-PQ above (flat when D is not a multiple of 8, the PQ code size)."""
    if kind not in FAISS_KINDS:
        raise ValueError(f"kind must be one of {FAISS_KINDS}, got {kind!r}.")
    if kind == "auto":
        kind = "flat" if count * dim <= FLAT_MAX_FLOATS else "ivfpq"
    if kind == "ivfpq" and (dim % 8 or count < 39 * 2):
        kind = "flat"
    return kind


def build_faiss_from_tables(
    tables: Sequence[Any], dim: int, kind: FaissKind = "auto", calibration_candidates: int = 100, seed: int = 0
):
    """`build_faiss` over the ``embedding`` columns of shard tables (or (n, D) arrays), normalised chunk by chunk:
    an IVF-PQ index never holds the whole matrix (training on a sample, rows added table by table)."""
    faiss = require_extra("faiss")
    chunks = [t for t in tables if len(t)]
    count = sum(len(t) for t in chunks)
    kind = choose_kind(count, dim, kind)
    if kind != "ivfpq":
        parts = [_normalized(_embeddings(t)) for t in chunks]
        return build_faiss(
            np.concatenate(parts) if parts else np.zeros((0, dim), np.float32), kind, calibration_candidates, seed
        )
    rng = np.random.default_rng(seed)
    nlist = max(2, min(int(math.sqrt(count)), count // 39))
    sample = np.sort(rng.choice(count, size=min(count, TRAIN_MAX, TRAIN_PER_CELL * nlist), replace=False))
    train = _rows(chunks, sample)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, dim // 8, 8, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(train)
    for chunk in chunks:
        index.add(_normalized(_embeddings(chunk)))
    queries = _rows(chunks, np.sort(rng.choice(count, size=min(256, count), replace=False)))
    k = min(calibration_candidates, count - 1)
    truth = _exact_top(chunks, queries, k + 1)
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = nprobe
        _, found = index.search(queries, min(count, REFINE_FACTOR * (k + 1)))
        recall = float(np.mean([len(set(t.tolist()) & set(f.tolist())) / len(t) for t, f in zip(truth, found)]))
        if recall >= 0.99 or nprobe >= nlist:
            break
        nprobe *= 2
    # Rows used as queries sit closer to their neighbours than text queries do (measured at 1M rows: 0.9925 on
    # rows, 0.946 recall@10 on text-like queries at the calibrated nprobe 2); scanning cells of 64-byte codes costs
    # little next to the re-ranking, so the default probes NPROBE_MARGIN times the calibrated cells, at least 16.
    index.nprobe = min(nlist, max(NPROBE_MIN, NPROBE_MARGIN * nprobe))
    return index, FaissInfo(
        "ivfpq", count, "", nlist=nlist, nprobe=index.nprobe, calibration_recall=recall, refine=REFINE_FACTOR
    )


def _embeddings(chunk: Any) -> np.ndarray:
    return chunk if isinstance(chunk, np.ndarray) else column_array(chunk, "embedding")


def _normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.array(vectors, dtype=np.float32, copy=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    vectors /= norms
    return vectors


def _rows(chunks: Sequence[Any], rows: np.ndarray) -> np.ndarray:
    """Normalised embeddings of sorted global `rows` across the chunks."""
    out, offset = [], 0
    for chunk in chunks:
        mine = rows[(rows >= offset) & (rows < offset + len(chunk))] - offset
        if len(mine):
            out.append(_normalized(_embeddings(chunk)[mine]))
        offset += len(chunk)
    return np.concatenate(out)


def _exact_top(chunks: Sequence[Any], queries: np.ndarray, k: int) -> np.ndarray:
    """Global row ids of the `k` highest inner products of each query, by one pass over the chunks."""
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), 0), np.int64)
    offset = 0
    for chunk in chunks:
        scores = queries @ _normalized(_embeddings(chunk)).T
        ids = np.broadcast_to(np.arange(offset, offset + len(chunk)), scores.shape)
        scores, ids = np.concatenate([best_scores, scores], 1), np.concatenate([best_ids, ids], 1)
        keep = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_scores, best_ids = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
        offset += len(chunk)
    return best_ids


def load_or_build_faiss(
    index_dir: str | os.PathLike,
    shards: Sequence[Shard],
    tables: Sequence[Any] | None = None,
    kind: FaissKind = "auto",
    write: bool = True,
):
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
                if info.kind in ("ivf", "ivfpq"):
                    faiss.extract_index_ivf(index).nprobe = info.nprobe
                return index, info
        except (OSError, TypeError, ValueError, RuntimeError) as err:
            logger.warning(f"rebuilding the FAISS index of {index_dir}: {path.name} is unreadable ({err}).")
    if tables is None:
        tables = [open_shard(shard.path)[0] for shard in shards]
    index, info = build_faiss_from_tables(tables, read_info(index_dir).projection_dim, kind)
    info.key = key
    if write:
        try:
            atomic_write_text(sidecar, json.dumps(asdict(info), indent=2) + "\n")
            with atomic_path(path) as partial:  # the .index file is the commit: a sidecar alone is ignored
                faiss.write_index(index, str(partial))
            for old in index_dir.glob("faiss-*"):
                if old.name not in (path.name, sidecar.name):
                    old.unlink(missing_ok=True)
        except OSError as err:  # a read-only index still searches, with its FAISS index in memory
            logger.warning(f"could not save the FAISS index of {index_dir} ({err}); it is kept in memory.")
    return index, info


__all__ = [
    "FAISS_KINDS",
    "FLAT_MAX_FLOATS",
    "REFINE_FACTOR",
    "build_faiss_from_tables",
    "choose_kind",
    "build_faiss",
    "load_or_build_faiss",
    "normalized_embeddings",
    "FaissInfo",
]

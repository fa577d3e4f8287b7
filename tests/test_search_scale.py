"""Search over large indexes: the FAISS index is chosen by size (flat, then IVF-PQ with a calibrated nprobe), built
from the memory-mapped shards chunk by chunk, and an IVF-PQ search (candidates re-scored by their stored
embeddings) ranks as the exact flat search does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")
pytest.importorskip("pyarrow")

from hf_xclip.search import (  # noqa: E402
    FLAT_MAX_FLOATS,
    IndexInfo,
    IndexSettings,
    RowBatch,
    VideoIndex,
    create_index,
    write_shard,
)
from hf_xclip.search.faiss_index import (  # noqa: E402
    REFINE_FACTOR,
    build_faiss,
    build_faiss_from_tables,
    choose_kind,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def clustered(count: int, dim: int, clusters: int, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, clusters, count)] + spread / np.sqrt(dim) * rng.standard_normal((count, dim))
    return vectors.astype(np.float32)


def test_the_faiss_index_is_chosen_by_size():
    assert choose_kind(FLAT_MAX_FLOATS // 512, 512) == "flat"
    assert choose_kind(FLAT_MAX_FLOATS // 512 + 1, 512) == "ivfpq"
    assert choose_kind(10**6, 500) == "flat"  # no PQ code size for D not a multiple of 8
    assert choose_kind(1000, 64, "ivf") == "ivf"
    with pytest.raises(ValueError, match="kind must be one of"):
        choose_kind(10, 8, "hnsw")


def test_ivfpq_built_chunk_by_chunk_reaches_the_calibrated_recall():
    vectors = clustered(10_000, 32, 60)
    index, info = build_faiss_from_tables(np.array_split(vectors, 7), 32, "ivfpq", calibration_candidates=50)
    assert (info.kind, info.nlist, info.refine) == ("ivfpq", int(np.sqrt(10_000)), REFINE_FACTOR)
    assert info.calibration_recall >= 0.99 and min(16, info.nlist) <= info.nprobe <= info.nlist
    assert index.ntotal == 10_000 and index.code_size == 32 // 8  # D / 8 bytes per row in memory
    _, again = build_faiss(vectors, "ivfpq", calibration_candidates=50)  # one array: the same index
    assert (again.nlist, again.nprobe) == (info.nlist, info.nprobe)


@pytest.fixture(scope="module")
def synthetic_index(tmp_path_factory):
    """3,000 rows of the embedded model's sizes (clustered embeddings, random int8 prompt features) in 3 shards."""
    from hf_xclip import XClipModel, default_model_path
    from hf_xclip.search import index_fingerprints

    model = XClipModel.from_pretrained(default_model_path()).eval()
    dim, patches = model.config.projection_dim, 16
    folder = tmp_path_factory.mktemp("scale") / "index"
    info = IndexInfo(
        None,
        None,
        **index_fingerprints(model),
        projection_dim=dim,
        num_patches=patches,
        settings=IndexSettings(num_frames=8),
    )
    create_index(folder, info)
    embeddings = clustered(3000, dim, 40, seed=1)
    rng = np.random.default_rng(2)
    for part in np.array_split(np.arange(3000), 3):
        videos = [f"clip{i:05d}.mp4" for i in part]
        values = rng.integers(-127, 128, (len(part), patches, dim), dtype=np.int8)
        scales = rng.uniform(0.002, 0.004, (len(part), patches)).astype(np.float32)
        write_shard(
            folder,
            info,
            RowBatch(videos, np.zeros(len(part)), np.ones(len(part)), embeddings[part], values, scales),
            [(v, 1) for v in videos],
        )
    return folder, model


def test_ivfpq_search_ranks_as_the_flat_search(synthetic_index):
    folder, model = synthetic_index
    queries = torch.from_numpy(clustered(20, model.config.projection_dim, 40, seed=1, spread=1.0))
    flat = VideoIndex.open(folder, default_model(), faiss_kind="flat")
    assert flat.faiss_index is not None and flat.faiss_info.kind == "flat"
    reference = flat.rank(queries, 10)
    pq = VideoIndex.open(folder, default_model(), faiss_kind="ivfpq")
    assert pq.faiss_index is not None and pq.faiss_info.kind == "ivfpq" and pq.faiss_info.refine == REFINE_FACTOR
    ranked = pq.rank(queries, 10)
    recall = np.mean([len({r for r, _ in a} & {r for r, _ in b}) / 10 for a, b in zip(ranked, reference)])
    assert recall >= 0.99
    candidates = pq.candidates(queries[:2], 50)
    assert candidates.shape == (2, 50) and (candidates >= 0).all()


def default_model() -> str:
    from hf_xclip import default_model_path

    return default_model_path()

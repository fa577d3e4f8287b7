"""Video index and search. An index is a folder of Arrow shards (rows: video, start, end, embedding, compact prompt
features) with the model that made them in `index.json`, and a FAISS index derived from the shards.

`format` (index.json, row schema, atomic shards, manifests) <- `faiss_index` (FAISS over the committed shards) <-
`build` (`build_index`: videos -> rows -> shards, resumable, across processes) <- `index` (`VideoIndex`: search by
text or by video, re-ranked by the exact X-CLIP score)."""

from .build import (
    IndexingResult,
    LoadedModel,
    build_index,
    embed_videos,
    index_fingerprints,
    load_index_model,
    unwrap_model,
    video_rows,
)
from .faiss_index import (
    FLAT_MAX_FLOATS,
    FaissInfo,
    build_faiss,
    load_or_build_faiss,
    normalized_embeddings,
)
from .format import (
    DEFAULT_MODEL_NAME,
    INDEX_FILE,
    PRECISIONS,
    IndexInfo,
    IndexModelMismatchError,
    IndexSettings,
    Manifest,
    RowBatch,
    Shard,
    create_index,
    dequantize_prompt_features,
    open_shard,
    quantize_prompt_features,
    read_info,
    read_manifest,
    require_extra,
    shard_paths,
    shard_schema,
    write_shard,
)
from .index import VideoIndex, exact_scores

__all__ = [
    "DEFAULT_MODEL_NAME",
    "FLAT_MAX_FLOATS",
    "FaissInfo",
    "INDEX_FILE",
    "IndexInfo",
    "IndexModelMismatchError",
    "IndexSettings",
    "IndexingResult",
    "LoadedModel",
    "Manifest",
    "PRECISIONS",
    "RowBatch",
    "Shard",
    "VideoIndex",
    "build_faiss",
    "build_index",
    "create_index",
    "dequantize_prompt_features",
    "embed_videos",
    "exact_scores",
    "index_fingerprints",
    "load_index_model",
    "load_or_build_faiss",
    "normalized_embeddings",
    "open_shard",
    "quantize_prompt_features",
    "read_info",
    "read_manifest",
    "require_extra",
    "shard_paths",
    "shard_schema",
    "unwrap_model",
    "video_rows",
    "write_shard",
]

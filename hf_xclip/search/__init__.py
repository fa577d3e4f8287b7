"""Video index and search. An index is a folder of Arrow shards (rows: video, start, end, embedding, compact prompt
features) with the model that made them in `index.json`, and a FAISS index derived from the shards.

`format` (index.json, row schema, atomic shards, manifests) <- `faiss_index` (FAISS over the committed shards) <-
`model` (the model of an index: loading, fingerprints, embeddings) <- `build` (`build_index`: videos -> rows ->
shards, resumable, across processes) <- `index` (`VideoIndex`: search by text or by video, re-ranked by the exact
X-CLIP score)."""

from . import build as _build
from . import faiss_index as _faiss_index
from . import format as _format
from . import model as _model
from .build import *  # noqa: F403
from .faiss_index import *  # noqa: F403
from .format import *  # noqa: F403
from .index import RankOptions, VideoIndex, exact_scores
from .model import *  # noqa: F403

__all__ = [
    *_format.__all__,
    *_faiss_index.__all__,
    *_model.__all__,
    *_build.__all__,
    "RankOptions",
    "VideoIndex",
    "exact_scores",
]

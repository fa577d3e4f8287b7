"""Searching a video index (`hf_xclip.search.build`) by text, ranked by the exact X-CLIP score.

X-CLIP scores a text against a video with a text embedding that depends on the video: the prompt generator lets
the text attend to the video's patch features and adds the result to the text embedding before the cosine
similarity. One vector per video is therefore not enough to rank exactly. [`VideoIndex.search`] works in two
stages:

1. **candidates**: FAISS on the plain (prompt-free) normalised embeddings returns the `num_candidates` rows whose
   video embedding is closest to the query's text embedding (exact inner product below
   `hf_xclip.search.faiss_index.FLAT_MAX_FLOATS`, IVF above);
2. **exact re-ranking**: every candidate is scored with the full X-CLIP logit, prompt generator included, from
   its stored embedding and prompt features ([`exact_scores`]), and the best `top_k` are returned.

``exhaustive=True`` skips the first stage and scores every row with `XClipModel.get_logits` (the reference the
two-stage ranking is measured against: recall@10 in ``docs/search.md``).

```python
>>> from hf_xclip.search.index import VideoIndex  # doctest: +SKIP
>>> index = VideoIndex.open("my_index")  # doctest: +SKIP
>>> index.search("a red circle moving left", top_k=3)  # doctest: +SKIP
[{'video': '/data/clips/0007.mp4', 'start': 0.0, 'end': 2.0, 'score': 21.3}, ...]
```
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..labels import (
    LabelEncoder,
    ensemble_text_embeddings,
    fill_templates,
    resolve_templates,
)
from ..utils import check_positive_int, unwrap_model
from ..video_io import fetch_video
from .faiss_index import FaissInfo, column_array, load_or_build_faiss
from .format import (
    IndexInfo,
    dequantize_prompt_features,
    read_info,
    read_manifest,
    require_extra,
)
from .model import LoadedModel, embed_videos, load_index_model

if TYPE_CHECKING:
    from typing_extensions import Unpack

# Candidates re-ranked per query: max(DEFAULT_CANDIDATES, CANDIDATES_PER_RESULT * top_k), at most the index size.
DEFAULT_CANDIDATES = 50
CANDIDATES_PER_RESULT = 5


# ----------------------------------------------------------------------------------------------------------------
# The exact score of one text against many videos


def _plain_linear(module: Any) -> bool:
    return type(module) is nn.Linear and module.bias is None


@torch.inference_mode()
def exact_scores(
    model: Any,
    text_embed: torch.Tensor,
    video_embeds: torch.Tensor,
    prompt_features: torch.Tensor | None,
    chunk_size: int = 256,
) -> torch.Tensor:
    """X-CLIP logits ``(C,)`` of one text against C videos: exactly ``model.get_logits(video_embeds, text_embed[None],
    prompt_features)[0][:, 0]``, computed for one query at a time.

    The prompt generator's cross-attention has one query (the text) and P keys / values (the video's patches). Its
    key and value projections are linear and bias-free, so they move to the query side: the attention logits are
    ``(W_k^T q_h) . v_p`` and the head output is ``W_v,h (sum_p a_hp v_p)``. Per video this costs O(P * D * heads)
    instead of projecting all P patches (O(P * D^2)); the first layer's query is the same for every video. The
    result equals `get_logits` up to float rounding (tested). Models whose prompt generator projections carry
    adapters (e.g. LoRA on ``q_proj``) are scored by `get_logits` itself.

    Args:
        model: an `XClipModel` (or a peft model around one).
        text_embed: ``(D,)`` projected text embedding before the prompts (`get_text_features(...).pooler_output`).
        video_embeds: ``(C, D)`` video embeddings (`get_video_features(...).pooler_output`).
        prompt_features: ``(C, P, D)`` (`get_video_features(..., output_prompt_features=True).prompt_features`);
            ignored (may be None) for a model without a prompt generator.
        chunk_size: videos per step (bounds memory: ``chunk_size * P * D`` floats).
    """
    core = unwrap_model(model)
    param = next(core.parameters())
    device, dtype = param.device, param.dtype
    text = text_embed.reshape(1, -1).to(device=device, dtype=dtype)
    capabilities = getattr(core, "capabilities", None)
    if capabilities is not None and capabilities.family != "xclip":  # the model's own formula (video-text interface)
        return core.get_logits(video_embeds.to(device=device, dtype=dtype), text)[0][:, 0].float()
    videos = video_embeds.to(device=device, dtype=dtype)
    videos = videos / videos.norm(dim=-1, keepdim=True)
    scale = core.logit_scale_module()
    if not core.config.use_prompt_generator:
        return (scale * videos @ (text / text.norm(dim=-1, keepdim=True)).T)[:, 0].float()
    if prompt_features is None:
        raise ValueError("This model has a prompt generator: exact scores need the videos' prompt features.")
    generator = core.prompts_generator
    layers_plain = all(
        _plain_linear(getattr(layer.cross_attn, name))
        for layer in generator.decoder
        for name in ("q_proj", "k_proj", "v_proj")
    )
    scores = []
    for start in range(0, len(videos), chunk_size):
        features = prompt_features[start : start + chunk_size].to(device=device, dtype=dtype)
        chunk = videos[start : start + chunk_size]
        if layers_plain:
            prompted = text + _prompts(generator, text, features)
        else:
            prompted = text + generator(text.expand(len(features), 1, -1), features)[:, 0]
        prompted = prompted / prompted.norm(dim=-1, keepdim=True)
        scores.append((scale * (chunk * prompted).sum(-1)).float())
    return torch.cat(scores) if scores else torch.zeros(0)


def _prompts(generator: nn.Module, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
    """``generator(text, visual)`` for one text (1, D) and C videos (C, P, D) -> (C, D), with the key / value
    projections moved to the query side (see `exact_scores`)."""
    count, patches, dim = visual.shape
    visual = generator.layernorm(visual)
    hidden = text  # (1, D) in the first layer: every video sees the same query
    for layer in generator.decoder:
        attn = layer.cross_attn
        heads, head_dim = attn.num_heads, attn.head_dim
        query = F.linear(layer.norm1(hidden), attn.q_proj.weight).view(-1, heads, head_dim)
        keys = torch.einsum("nhd,hde->nhe", query, attn.k_proj.weight.view(heads, head_dim, dim)) * attn.scale
        if keys.shape[0] == 1:  # (P * C, D) @ (D, heads): one matrix product for all videos
            logits = (visual.reshape(count * patches, dim) @ keys[0].T).view(count, patches, heads).transpose(1, 2)
        else:
            logits = torch.bmm(keys, visual.transpose(1, 2))
        weights = logits.float().softmax(dim=-1).to(visual.dtype)  # (C, heads, P)
        mixed = torch.bmm(weights, visual)  # (C, heads, D): attention-weighted patch features per head
        values = torch.einsum("nhe,hde->nhd", mixed, attn.v_proj.weight.view(heads, head_dim, dim))
        hidden = hidden + attn.proj(values.reshape(count, dim))
        hidden = hidden + layer.mlp(layer.norm3(hidden))
    return generator.alpha * hidden


# ----------------------------------------------------------------------------------------------------------------
# The index


class RankOptions(TypedDict, total=False):
    """How [`VideoIndex.rank`] finds the best rows; `VideoIndex.search` and `VideoIndex.search_embeddings` take them
    too.

    Attributes:
        num_candidates: rows re-ranked exactly (default ``max(50, 5 * top_k)``).
        nprobe: IVF cells probed (default: the calibrated value recorded with the FAISS index).
        exhaustive: score every row exactly instead (no FAISS).
    """

    num_candidates: int | None
    nprobe: int | None
    exhaustive: bool


class VideoIndex:
    """An index written by `hf_xclip.search.build.build_index` (or ``hf-xclip index``), opened for search.

    Open it with [`VideoIndex.open`]. The rows stay on disk, memory-mapped (the FAISS index and what a query
    touches are in memory); the FAISS index is loaded, or rebuilt from the committed shards when they changed,
    on the first search.

    Attributes:
        path: the index folder.
        info: its `IndexInfo` (model, fingerprints, row settings).
        model: the `LoadedModel` queries are encoded and scored with.
        templates: the text templates a query is put in (default: the model's own, ``"{}"`` for X-CLIP).
    """

    def __init__(
        self, path: Path, info: IndexInfo, model: LoadedModel, templates: tuple[str, ...], faiss_kind: str = "auto"
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.model = model
        self.templates = templates
        self.faiss_kind = faiss_kind
        self.encoder = LabelEncoder(model.model, model.tokenizer)
        manifest = read_manifest(self.path)
        if manifest.duplicates:
            warnings.warn(f"{self.path}: videos in more than one shard: {manifest.duplicates[:5]}", stacklevel=3)
        self.manifest = manifest
        opened = [_open_mapped(shard.path) for shard in manifest.shards]
        self._tables = [table for table, _ in opened]
        counts = [table.num_rows for table in self._tables]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # The table (FAISS builds, `dataset`) is memory-mapped; the rows a query needs are read with pread instead
        # (`_ShardColumn`): a mapped page stays in the RSS, and the kernel maps large folios of the page cache per
        # fault (about 1 MiB here), so mapped random reads grew the RSS by ~0.5 GB per query on 300k rows.
        shards = [(shard.path, table, base) for shard, (table, base) in zip(manifest.shards, opened)]
        self._embeddings = [_ShardColumn.of(p, t, "embedding", b) if t.num_rows else None for p, t, b in shards]
        with_prompts = info.num_patches > 0
        self._prompt_values = [
            _ShardColumn.of(p, t, "prompt_features", b) if t.num_rows and with_prompts else None for p, t, b in shards
        ]
        int8 = with_prompts and info.settings.precision == "int8"
        self._prompt_scales = [
            _ShardColumn.of(p, t, "prompt_scale", b) if t.num_rows and int8 else None for p, t, b in shards
        ]
        self._faiss = None
        self.faiss_info: FaissInfo | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        model: Any = None,
        *,
        adapter: str | os.PathLike | None = None,
        processor: Any = None,
        tokenizer: Any = None,
        templates: str | Sequence[str] | None = None,
        device: str | torch.device | None = None,
        faiss_kind: str = "auto",
    ) -> VideoIndex:
        """Open an index for search.

        Args:
            path: the index folder.
            model: the model that built it: a name (default: the one the index records, with its adapter) or an
                `XClipModel` / peft model object (with `processor` or `tokenizer` unless its folder has them).
            adapter: PEFT adapter to load onto a model given by name.
            templates: text template(s) a query is put in (ensembled); default the model's own.
            device: where the model runs (default: where it is, CPU for a loaded name).
            faiss_kind: ``"auto"``, ``"flat"``, ``"ivf"`` or ``"ivfpq"``: the FAISS index to use (see
                `hf_xclip.search.faiss_index.build_faiss`).

        Raises:
            FileNotFoundError: no such folder. ValueError: not an hf_xclip video index.
            IndexModelMismatchError: the model (or adapter) is not the one that built the index.
        """
        require_extra("pyarrow")
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"video index {path} not found")
        info = read_info(path)
        if info is None:
            raise ValueError(f"{path} is not an hf_xclip video index (no index.json).")
        loaded = load_index_model(model, adapter, processor, info, tokenizer=tokenizer, device=device)
        info.check_model(loaded.video_fingerprint, loaded.text_fingerprint, f"the index {path}")
        source = getattr(unwrap_model(loaded.model), "name_or_path", None) or None
        return cls(path, info, loaded, resolve_templates(templates, loaded.processor, source), faiss_kind)

    # -- contents -------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return (
            f"VideoIndex({str(self.path)!r}, rows={len(self)}, videos={len(self.manifest.files)}, "
            f"model={self.info.model!r})"
        )

    @property
    def videos(self) -> list[str]:
        """Indexed videos, in row order."""
        return list(self.manifest.files)

    @property
    def failed(self) -> dict[str, str]:
        """``{video: reason}`` of videos that could not be indexed."""
        return dict(self.manifest.failed)

    def dataset(self):
        """The rows as one `datasets.Dataset`, memory-mapped from the shard files (no copy)."""
        datasets = require_extra("datasets")
        parts = [datasets.Dataset.from_file(str(shard.path)) for shard in self.manifest.shards if shard.rows]
        if not parts:
            raise ValueError(f"the index {self.path} holds no rows.")
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]

    def row(self, row: int) -> dict[str, Any]:
        """``{"video", "start", "end"}`` of a row."""
        shard, local = self._locate(np.asarray([row]))
        table = self._tables[int(shard[0])]
        return {name: table.column(name)[int(local[0])].as_py() for name in ("video", "start", "end")}

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range for an index of {len(self)} rows")
        shard = np.searchsorted(self._offsets, rows, side="right") - 1
        return shard, rows - self._offsets[shard]

    def features(self, rows: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(embeddings (N, D), prompt_features (N, P, D) or None)`` of rows, float32 (prompt features
        dequantised)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return torch.zeros(0, self.info.projection_dim), None
        embeddings = torch.from_numpy(self._gather_rows(rows, self._embeddings))
        if not self.info.num_patches:
            return embeddings, None
        with_scales = any(scales is not None for scales in self._prompt_scales)
        scales = self._gather_rows(rows, self._prompt_scales) if with_scales else None
        values = self._gather_rows(rows, self._prompt_values)
        return embeddings, torch.from_numpy(dequantize_prompt_features(values, scales))

    def _gather_rows(self, rows: np.ndarray, columns: list) -> np.ndarray:
        """``columns[shard][local row]`` for global `rows`, in their order: shard by shard, so that only these rows
        of the memory-mapped shards are read."""
        shard, local = self._locate(rows)
        order = np.argsort(shard, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        starts = np.flatnonzero(np.diff(shard[order], prepend=-1))
        groups = [(int(shard[order[a]]), local[order[a:b]]) for a, b in zip(starts, [*starts[1:], len(order)])]
        return np.concatenate([columns[s].take(picked) for s, picked in groups])[back]

    # -- FAISS ------------------------------------------------------------------------------------------------------

    @property
    def faiss_index(self):
        """The FAISS index over the normalised embeddings (loaded, or rebuilt when stale, on first use)."""
        if self._faiss is None:
            writable = os.access(self.path, os.W_OK)
            self._faiss, self.faiss_info = load_or_build_faiss(
                self.path, self.manifest.shards, self._tables, kind=self.faiss_kind, write=writable
            )
        return self._faiss

    def candidates(self, queries: torch.Tensor, count: int, nprobe: int | None = None) -> np.ndarray:
        """``(Q, count)`` rows whose embeddings are closest (cosine) to the normalised `queries` ``(Q, D)``;
        ``-1`` pads when an IVF search finds fewer."""
        faiss = require_extra("faiss")
        vectors = F.normalize(queries.detach().float().cpu(), dim=-1).numpy()
        index = self.faiss_index
        info = self.faiss_info
        if info is None:  # set together with the index by `faiss_index`
            raise RuntimeError(f"{self.path}: the FAISS index was loaded without its description")
        params = None
        if nprobe is not None and info.kind in ("ivf", "ivfpq"):
            params = faiss.SearchParametersIVF(nprobe=int(nprobe))
        count = min(count, len(self))
        refine = info.refine if info.kind == "ivfpq" else 0
        _, ids = index.search(vectors, min(len(self), count * max(1, refine)), params=params)
        if not refine:
            return ids
        out = np.full((len(ids), count), -1, dtype=np.int64)  # PQ codes ranked them: the stored embeddings decide
        for q, (vector, found) in enumerate(zip(vectors, ids)):
            found = found[found >= 0]
            if len(found):
                embeddings = F.normalize(torch.from_numpy(self._gather_rows(found, self._embeddings)), dim=-1)
                best = _best(found, (embeddings @ torch.from_numpy(vector)).numpy(), count)
                out[q, : len(best)] = [row for row, _ in best]
        return out

    # -- search -----------------------------------------------------------------------------------------------------

    def encode_queries(self, queries: Sequence[str]) -> torch.Tensor:
        """Text embeddings ``(Q, D)`` of queries (before the prompts), each in the index's templates (ensembled),
        through the label core's cache."""
        for position, query in enumerate(queries):
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"search query {position} must be a non-empty string, got {query!r}.")
        texts = fill_templates(list(queries), self.templates)
        embeds = self.encoder.encode_texts(texts).view(len(queries), len(self.templates), -1)
        return ensemble_text_embeddings(embeds.float())

    def search(
        self, query: str | Sequence[str], top_k: int = 10, **options: Unpack[RankOptions]
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """The rows that best match a text, best first.

        Args:
            query: a text, or a list of texts (then a list of results per text).
            top_k: results per text.
            options: `RankOptions`: ``num_candidates`` (rows re-ranked exactly), ``nprobe`` (IVF cells probed),
                ``exhaustive`` (score every row exactly, no FAISS).

        Returns:
            ``[{"video": str, "start": float, "end": float, "score": float}, ...]``: ``score`` is the X-CLIP logit
            (logit scale x cosine similarity with the video-specifically prompted text), as in
            `XClipModel.forward(...).logits_per_text`.
        """
        single = isinstance(query, str)
        queries = [query] if single else list(query)
        results = self.search_embeddings(self.encode_queries(queries), top_k, **options)
        return results[0] if single else results

    def search_embeddings(
        self, text_embeds: torch.Tensor, top_k: int = 10, **options: Unpack[RankOptions]
    ) -> list[list[dict[str, Any]]]:
        """[`search`] for text embeddings ``(Q, D)`` already computed (e.g. rows of a `LabelBank` made with the
        index's model)."""
        ranked = self.rank(text_embeds, top_k, **options)
        return [[{**self.row(row), "score": score} for row, score in hits] for hits in ranked]

    def rank(
        self,
        text_embeds: torch.Tensor,
        top_k: int = 10,
        *,
        num_candidates: int | None = None,
        nprobe: int | None = None,
        exhaustive: bool = False,
    ) -> list[list[tuple[int, float]]]:
        """``[(row, score), ...]`` best first for each of the text embeddings ``(Q, D)``: the ranking behind
        [`search`]."""
        check_positive_int(top_k, "top_k")
        text_embeds = torch.as_tensor(text_embeds).float()
        if text_embeds.ndim == 1:
            text_embeds = text_embeds[None]
        if text_embeds.ndim != 2 or text_embeds.shape[1] != self.info.projection_dim:
            raise ValueError(
                f"text embeddings must have shape (num_queries, {self.info.projection_dim}), got "
                f"{tuple(text_embeds.shape)}."
            )
        if not len(self):
            return [[] for _ in text_embeds]
        if exhaustive:
            scores = self.exact_scores(text_embeds)
            return [_best(np.arange(len(self)), row.numpy(), top_k) for row in scores]
        if num_candidates is None:
            num_candidates = max(DEFAULT_CANDIDATES, CANDIDATES_PER_RESULT * top_k)
        check_positive_int(num_candidates, "num_candidates")
        ids = self.candidates(text_embeds, max(num_candidates, top_k), nprobe)
        ranked = []
        for text, rows in zip(text_embeds, ids):
            rows = rows[rows >= 0]
            embeddings, prompts = self.features(rows)
            scores = exact_scores(self.model.model, text, embeddings, prompts).cpu().numpy()
            ranked.append(_best(rows, scores, top_k))
        return ranked

    @torch.inference_mode()
    def exact_scores(self, text_embeds: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
        """``(Q, N)`` X-CLIP logits of texts against every row, by `XClipModel.get_logits` (brute force: the
        reference of the two-stage search)."""
        model = self.model.model
        param = next(model.parameters())
        texts = torch.as_tensor(text_embeds).reshape(-1, self.info.projection_dim).to(param.device, param.dtype)
        columns = []
        for start in range(0, len(self), chunk_size):
            rows = np.arange(start, min(start + chunk_size, len(self)))
            embeddings, prompts = self.features(rows)
            prompts = None if prompts is None else prompts.to(param.device, param.dtype)
            logits, _ = model.get_logits(embeddings.to(param.device, param.dtype), texts, prompts)
            columns.append(logits.float().cpu().T)
        return torch.cat(columns, dim=1)

    # -- video -> video ---------------------------------------------------------------------------------------------

    def search_video(
        self, video: Any, top_k: int = 10, *, num_candidates: int | None = None, nprobe: int | None = None
    ) -> list[dict[str, Any]]:
        """Rows most similar to a video (a path, URL, bytes or frames; or the row number of an indexed row), by the
        cosine similarity of video embeddings (X-CLIP compares videos without prompts). The query video is sampled
        as a whole (the index's frame count); ``score`` is the cosine similarity in [-1, 1]."""
        if isinstance(video, (int, np.integer)) and not isinstance(video, bool):
            query = self.features([int(video)])[0]
        else:
            settings = self.info.settings
            pixels = self.model.video_processor(
                fetch_video(video), num_frames=settings.num_frames, num_clips=1, num_crops=1
            )["pixel_values"]
            query = torch.from_numpy(embed_videos(self.model.model, pixels)[0][0])[None]
        if not len(self):
            return []
        count = num_candidates or max(DEFAULT_CANDIDATES, CANDIDATES_PER_RESULT * top_k)
        rows = self.candidates(query, max(count, top_k), nprobe)[0]
        rows = rows[rows >= 0]
        embeddings, _ = self.features(rows)
        scores = (F.normalize(embeddings, dim=-1) @ F.normalize(query.float(), dim=-1)[0]).numpy()
        return [{**self.row(row), "score": score} for row, score in _best(rows, scores, top_k)]


def _open_mapped(path: Path) -> tuple[Any, int | None]:
    """``(table, address of the file's first byte in the mapping)`` of a shard (as `open_shard`, memory-mapped)."""
    pa = require_extra("pyarrow")
    try:
        source = pa.memory_map(str(path))
        base = source.read_buffer(1).address if source.size() else None
        source.seek(0)
        return pa.ipc.open_stream(source).read_all(), base
    except (OSError, pa.ArrowInvalid) as err:
        raise ValueError(f"shard {path} is not a readable Arrow stream ({err}).") from None


class _ShardColumn:
    """A fixed-size column of one shard file, rows read with ``os.pread`` (runs of consecutive rows in one read), so
    that reading a query's candidates leaves nothing mapped; ``array`` is the memory-mapped view (whole-column use).
    Falls back to the view when the column is not one contiguous buffer of the file."""

    def __init__(self, array: np.ndarray, path: Path | None = None, offset: int = 0) -> None:
        self.array, self.path, self.offset = array, path, offset
        self.row_bytes = array[0].nbytes if len(array) else 0
        self._fd: int | None = None

    @classmethod
    def of(cls, path: Path, table: Any, name: str, base: int | None) -> _ShardColumn:
        """The column `name` of a shard `table` memory-mapped from `path` at address `base`."""
        array = column_array(table, name)
        try:
            if base is None:
                return cls(array)
            offset = array.ctypes.data - base
            size = os.path.getsize(path)
            # a second mapping of the file may sit elsewhere: check the view's bytes against the file's
            if array.flags["C_CONTIGUOUS"] and len(array) and 0 <= offset and offset + array.nbytes <= size:
                column = cls(array, Path(path), offset)
                if np.array_equal(column._read(0, 1)[0], array[0]):
                    return column
        except (OSError, ValueError, AttributeError):
            pass
        return cls(array)

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, item):
        return self.array[item]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.array, dtype=dtype)

    def _read(self, start: int, count: int) -> np.ndarray:
        if self.path is None:  # `take` reads in-memory columns directly
            raise RuntimeError("an in-memory shard column has no file to read from")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        data = os.pread(self._fd, count * self.row_bytes, self.offset + start * self.row_bytes)
        return np.frombuffer(data, self.array.dtype).reshape(count, *self.array.shape[1:])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``(len(rows), ...)`` in the order given."""
        if self.path is None or not len(rows):
            return self.array[rows]
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out = np.empty((len(rows), *self.array.shape[1:]), self.array.dtype)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for run in np.split(np.arange(len(ordered)), breaks):
            out[order[run]] = self._read(int(ordered[run[0]]), len(run))
        return out

    def __del__(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def _best(rows: np.ndarray, scores: np.ndarray, top_k: int) -> list[tuple[int, float]]:
    """The `top_k` highest scores, best first, ties by row."""
    order = np.lexsort((rows, -scores))[:top_k]
    return [(int(rows[i]), float(scores[i])) for i in order]


__all__ = ["CANDIDATES_PER_RESULT", "DEFAULT_CANDIDATES", "RankOptions", "VideoIndex", "exact_scores"]

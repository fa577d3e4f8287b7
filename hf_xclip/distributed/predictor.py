"""`XClipPredictor`: the model as a stateful callable class for `ray.data.Dataset.map_batches` (imports no Ray).

```python
import ray
from hf_xclip.distributed import XClipPredictor

ds = ray.data.from_items([{"path": p} for p in paths])
out = ds.map_batches(
    XClipPredictor,
    fn_constructor_kwargs={"mode": "classify", "model": "./my-xclip", "labels": ["surfing", "cooking"]},
    batch_size=8, concurrency=2, num_gpus=1,      # two GPU workers, each loading the model once
)
out.write_parquet("results/")
```

Each worker builds one predictor: `__init__` loads the model through the project's loaders (`hf_xclip.cli.
load_pipeline` for classify / timeline, `hf_xclip.search.load_index_model` for index rows) and encodes the
labels once (`ZeroShotVideoClassificationPipeline.prepare_labels`, or a label bank). `__call__(batch)` takes a
column of paths (``path``; or ``bytes`` of video files, named by ``path`` when given), decodes and samples inside
the worker, and returns a `pyarrow.Table` with one schema per mode ([`output_schema`]):

* ``classify``: one row per video: ``path``, ``labels``, ``scores`` (the pipeline's single-label softmax over the
  labels), ``probabilities`` (with ``multi_label=True``: the pipeline's independent per-label probabilities, else
  null), ``video_embeds`` (``get_video_features(...).pooler_output``, averaged over the views), ``error``;
* ``timeline``: one row per window (`hf_xclip.timeline.video_timeline`, the local command's code): ``path``,
  ``start``, ``end``, ``labels``, ``scores`` (softmax, or multi-label probabilities with ``multi_label=True``),
  ``error``;
* ``index``: the rows of an index shard (`hf_xclip.search.shard_schema`: ``video``, ``start``, ``end``,
  ``embedding``, ``prompt_features``, ``prompt_scale``) and ``error``.

A video that fails gives one row whose ``error`` names it (the other columns null): a bad file never raises out of
``__call__``, so it never kills the job. Scores are those of the local pipeline for the same videos (a batch's
float rounding aside: within 1e-5, tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

MODES: tuple[str, ...] = ("classify", "timeline", "index")
PATH_COLUMN, BYTES_COLUMN, ERROR_COLUMN = "path", "bytes", "error"


@dataclass
class PredictorConfig:
    """Everything a worker needs to rebuild the predictor (the `fn_constructor_kwargs` of `map_batches`)."""

    mode: str = field(default="classify", metadata={"help": "classify, timeline or index."})
    model: str | None = field(default=None, metadata={"help": "Model folder or Hub id; default: the embedded model."})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder to load onto the model."})
    device: str | None = field(default=None, metadata={"help": "torch device; default: the worker's GPU if any."})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, float16 or bfloat16 (classify/timeline)."})
    quantize: str | None = field(default=None, metadata={"help": "int8 / none for ONNX exports (classify/timeline)."})
    language_model: str | None = field(default=None, metadata={"help": "An LLM prompter's language model."})
    labels: Sequence[str] | None = field(default=None, metadata={"help": "Label texts (None: the bank's labels)."})
    templates: Sequence[str] | None = field(default=None, metadata={"help": "Hypothesis templates (ensembled)."})
    label_descriptions: dict[str, list[str]] | None = field(default=None, metadata={"help": "Sentences per label."})
    label_bank: str | None = field(default=None, metadata={"help": "Path of a LabelBank (hf-xclip labels encode)."})
    multi_label: bool = field(default=False, metadata={"help": "Also independent per-label probabilities."})
    multi_label_method: str = field(default="auto", metadata={"help": "sigmoid, background, negative or auto."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames per clip; default: the model's."})
    num_clips: int = field(default=1, metadata={"help": "Temporal clips averaged per video (classify)."})
    num_crops: int = field(default=1, metadata={"help": "Spatial crops averaged per video (classify)."})
    timeline: dict[str, Any] | None = field(default=None, metadata={"help": "TimelineConfig fields (timeline)."})
    index: dict[str, Any] | None = field(default=None, metadata={"help": "IndexSettings fields (index)."})
    batch_size: int = field(default=8, metadata={"help": "Clips (index: rows) per forward pass."})
    decode_threads: int = field(default=2, metadata={"help": "Threads decoding videos inside the worker."})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}.")
        if self.mode != "index" and self.labels is None and self.label_bank is None:
            raise ValueError(f"mode {self.mode!r} needs labels or a label_bank.")
        for name in ("batch_size", "num_clips", "num_crops", "decode_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.labels = None if self.labels is None else list(self.labels)
        self.templates = None if self.templates is None else list(self.templates)


class XClipPredictor:
    """A picklable callable class for ``ray.data.Dataset.map_batches(XClipPredictor, fn_constructor_kwargs=...)``;
    the keyword arguments are the fields of [`PredictorConfig`]. Usable without Ray: ``XClipPredictor(...)(
    {"path": [...]})`` returns the same table (the ``local`` engine of `hf_xclip.distributed.run_job` does that).

    Pickling a predictor pickles its configuration only; unpickling loads the model again.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.config = PredictorConfig(**kwargs)
        self._kwargs = asdict(self.config)
        self._pool = ThreadPoolExecutor(max_workers=self.config.decode_threads, thread_name_prefix="xclip-ray")
        if self.config.mode == "index":
            self._load_index_model()
        else:
            self._load_pipeline()
        self.schema = output_schema(self.config.mode, self.projection_dim, self.num_patches, self.precision)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state)

    # -- loading ----------------------------------------------------------------------------------------------------

    def _load_pipeline(self) -> None:
        from ..cli import UsageError, load_pipeline, model_or_default

        cfg = self.config
        try:
            self.classifier = load_pipeline(
                model_or_default(cfg.model), cfg.device, cfg.dtype, cfg.quantize, cfg.adapter, cfg.language_model
            )
        except UsageError as err:
            raise ValueError(str(err)) from None
        self.projection_dim = int(self.classifier.model.config.projection_dim)
        self.num_patches, self.precision = 0, "float32"
        label_side = dict(label_descriptions=cfg.label_descriptions, label_bank=cfg.label_bank)
        if cfg.mode == "timeline":
            from ..timeline import TimelineConfig

            timeline = dict(cfg.timeline or {})
            timeline.setdefault("multi_label", cfg.multi_label)
            timeline.setdefault("multi_label_method", cfg.multi_label_method)
            if cfg.templates and "hypothesis_template" not in timeline:
                timeline["hypothesis_template"] = tuple(cfg.templates)
            if cfg.num_frames and "num_frames" not in timeline:
                timeline["num_frames"] = cfg.num_frames
            if isinstance(timeline.get("hypothesis_template"), list):
                timeline["hypothesis_template"] = tuple(timeline["hypothesis_template"])
            self.timeline_config = TimelineConfig(**timeline)
            # encoded once here (the text cache serves every video's call); also checks labels before any video
            self.prepared = self.classifier.prepare_labels(
                cfg.labels,
                self.timeline_config.hypothesis_template,
                self.timeline_config.multi_label,
                self.timeline_config.multi_label_method,
                self.timeline_config.negative_template,
                **label_side,
            )
            return
        self.prepared = self.classifier.prepare_labels(cfg.labels, cfg.templates, False, **label_side)
        self.prepared_multi = (
            self.classifier.prepare_labels(cfg.labels, cfg.templates, True, cfg.multi_label_method, **label_side)
            if cfg.multi_label
            else None
        )

    def _load_index_model(self) -> None:
        from ..search.model import _index_info, load_index_model

        cfg = self.config
        self.loaded = load_index_model(cfg.model, cfg.adapter, device=cfg.device or _default_device())
        given = {key: None for key in ("window", "stride", "num_frames", "tail", "precision")}
        given.update(cfg.index or {})
        info = _index_info(self.loaded, None, given)  # the index's own rules: sizes, default frames and precision
        self.settings = info.settings
        self.projection_dim, self.num_patches = info.projection_dim, info.num_patches
        self.precision = self.settings.precision

    # -- calling ----------------------------------------------------------------------------------------------------

    def __call__(self, batch: Any) -> Any:
        """Predictions for a batch: a dict of columns (numpy arrays or lists), a pandas DataFrame or a
        `pyarrow.Table` with a ``path`` (or ``bytes``) column. Returns a `pyarrow.Table` of [`output_schema`]."""
        names, videos = _inputs(batch)
        if self.config.mode == "classify":
            columns = self._classify(names, videos)
        elif self.config.mode == "timeline":
            columns = self._timeline(names, videos)
        else:
            columns = self._index(names, videos)
        return _table(columns, self.schema)

    def _decoded(self, videos: list[Any], decode) -> list[Any]:
        """`decode(video)` for each video in the worker's threads; an exception in place of a failed one."""

        def safe(video):
            try:
                return decode(video)
            except Exception as err:  # reported as an error row
                return err

        return list(self._pool.map(safe, videos))

    def _classify(self, names: list[str], videos: list[Any]) -> dict[str, list]:
        cfg = self.config
        preprocess = dict(num_frames=cfg.num_frames, num_clips=cfg.num_clips, num_crops=cfg.num_crops)
        items = self._decoded(videos, lambda v: self.classifier.preprocess(v, **preprocess)["pixel_values"])
        columns: dict[str, list] = {
            k: [] for k in ("path", "labels", "scores", "probabilities", "video_embeds", "error")
        }
        labels = list(self.prepared.labels)
        good = [i for i, item in enumerate(items) if not isinstance(item, Exception)]
        results: dict[int, tuple | Exception] = {}
        for start in range(0, len(good), cfg.batch_size):
            chunk = good[start : start + cfg.batch_size]
            try:
                results.update(zip(chunk, self._score([items[i] for i in chunk])))
            except Exception as err:  # a failed forward fails its videos only
                results.update((i, err) for i in chunk)
        for i, name in enumerate(names):
            outcome = items[i] if isinstance(items[i], Exception) else results[i]
            columns["path"].append(name)
            if isinstance(outcome, Exception):
                columns["error"].append(_reason(name, outcome))
                for key in ("labels", "scores", "probabilities", "video_embeds"):
                    columns[key].append(None)
                continue
            scores, probabilities, embeds = outcome
            columns["labels"].append(labels)
            columns["scores"].append(scores)
            columns["probabilities"].append(probabilities)
            columns["video_embeds"].append(embeds)
            columns["error"].append(None)
        return columns

    def _score(self, views: list[torch.Tensor]) -> list[tuple]:
        """(scores, probabilities or None, video embeds) per video: the pipeline's scoring averaged over views."""
        counts = [v.shape[0] for v in views]
        video = self.classifier.encode_clips(torch.cat(views))
        single = self.classifier.score_video_features(video, self.prepared).split(counts)
        multi = (
            self.classifier.score_video_features(video, self.prepared_multi).split(counts)
            if self.prepared_multi is not None
            else [None] * len(views)
        )
        embeds = video.pooler_output.float().split(counts)
        return [
            (_floats(s.mean(dim=0)), None if m is None else _floats(m.mean(dim=0)), _floats(e.mean(dim=0)))
            for s, m, e in zip(single, multi, embeds)
        ]

    def _timeline(self, names: list[str], videos: list[Any]) -> dict[str, list]:
        from ..timeline import video_timeline

        columns: dict[str, list] = {k: [] for k in ("path", "start", "end", "labels", "scores", "error")}
        for name, video in zip(names, videos):
            try:
                timeline = video_timeline(
                    self.classifier,
                    video,
                    self.config.labels,
                    self.timeline_config,
                    label_descriptions=self.config.label_descriptions,
                    label_bank=self.config.label_bank,
                )
            except Exception as err:  # an error row, never an exception out of the batch
                for key, value in (("path", name), ("error", _reason(name, err))):
                    columns[key].append(value)
                for key in ("start", "end", "labels", "scores"):
                    columns[key].append(None)
                continue
            count = len(timeline.spans)
            columns["path"].extend([name] * count)
            columns["start"].extend(float(s) for s in timeline.spans[:, 0])
            columns["end"].extend(float(e) for e in timeline.spans[:, 1])
            columns["labels"].extend([list(timeline.labels)] * count)
            columns["scores"].extend(_floats(row) for row in timeline.scores)
            columns["error"].extend([None] * count)
        return columns

    def _index(self, names: list[str], videos: list[Any]) -> dict[str, list]:
        from ..search import embed_videos, video_rows

        processor, settings = self.loaded.video_processor, self.settings
        decoded = self._decoded(videos, lambda v: list(video_rows(v, processor, settings)))
        columns: dict[str, list] = {
            k: [] for k in ("video", "start", "end", "embedding", "prompt_features", "prompt_scale", "error")
        }
        pending = [(i, row) for i, rows in enumerate(decoded) if not isinstance(rows, Exception) for row in rows]
        outputs: dict[int, list] = {i: [] for i, rows in enumerate(decoded) if not isinstance(rows, Exception)}
        failed: dict[int, Exception] = {i: rows for i, rows in enumerate(decoded) if isinstance(rows, Exception)}
        for start in range(0, len(pending), self.config.batch_size):
            chunk = pending[start : start + self.config.batch_size]
            try:
                embeddings, values, scales = embed_videos(
                    self.loaded.model, torch.cat([pixels for _, (_, _, pixels) in chunk]), settings.precision
                )
            except Exception as err:
                failed.update((i, err) for i, _ in chunk)
                continue
            for (i, (row_start, row_end, _)), e, v, s in zip(chunk, embeddings, values, scales):
                outputs[i].append((row_start, row_end, e, v, s))
        for i, name in enumerate(names):
            if i in failed or not outputs.get(i):
                reason = _reason(name, failed[i]) if i in failed else f"{name}: no rows (no frames to sample)"
                for key in columns:
                    columns[key].append({"video": name, "error": reason}.get(key))
                continue
            for row_start, row_end, embedding, values, scales in outputs[i]:
                columns["video"].append(name)
                columns["start"].append(float(row_start))
                columns["end"].append(float(row_end))
                columns["embedding"].append(np.asarray(embedding, np.float32))
                columns["prompt_features"].append(values)
                columns["prompt_scale"].append(scales)
                columns["error"].append(None)
        return columns


# ----------------------------------------------------------------------------------------------------------------
# Schemas and conversions


def output_schema(mode: str, projection_dim: int, num_patches: int = 0, precision: str = "int8"):
    """The Arrow schema of a mode's rows (the same for every batch and every Parquet part of a job)."""
    import pyarrow as pa

    scores = pa.list_(pa.float32())
    if mode == "classify":
        return pa.schema(
            [
                pa.field("path", pa.string()),
                pa.field("labels", pa.list_(pa.string())),
                pa.field("scores", scores),
                pa.field("probabilities", scores),
                pa.field("video_embeds", pa.list_(pa.float32(), projection_dim)),
                pa.field(ERROR_COLUMN, pa.string()),
            ]
        )
    if mode == "timeline":
        return pa.schema(
            [
                pa.field("path", pa.string()),
                pa.field("start", pa.float64()),
                pa.field("end", pa.float64()),
                pa.field("labels", pa.list_(pa.string())),
                pa.field("scores", scores),
                pa.field(ERROR_COLUMN, pa.string()),
            ]
        )
    if mode == "index":
        from ..search import shard_schema

        shard = shard_schema(projection_dim, num_patches, precision)
        # nullable copies of the shard's columns (null on error rows), and the error column
        columns = [pa.field(f.name, f.type) for f in shard]
        return pa.schema([*columns, pa.field(ERROR_COLUMN, pa.string())])
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")


def path_column(mode: str) -> str:
    """The column naming a row's video: ``video`` for index rows (the shard's name), ``path`` otherwise."""
    return "video" if mode == "index" else PATH_COLUMN


def _inputs(batch: Any) -> tuple[list[str], list[Any]]:
    """``(names, videos)`` from a batch's ``path`` / ``bytes`` columns."""
    if hasattr(batch, "column_names") and hasattr(batch, "to_pydict"):  # pyarrow.Table
        columns = {name: batch.column(name).to_pylist() for name in batch.column_names}
    elif hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas.DataFrame
        columns = {name: list(batch[name]) for name in batch.columns}
    else:
        columns = {name: list(values) for name, values in dict(batch).items()}
    paths = columns.get(PATH_COLUMN)
    if BYTES_COLUMN in columns:
        data = [bytes(b) if b is not None else None for b in columns[BYTES_COLUMN]]
        names = [str(p) for p in paths] if paths is not None else [f"<bytes {i}>" for i in range(len(data))]
        return names, data
    if paths is None:
        raise ValueError(f"a batch needs a {PATH_COLUMN!r} (or {BYTES_COLUMN!r}) column, got {sorted(columns)}.")
    names = [str(p) for p in paths]
    return names, names


def _table(columns: dict[str, list], schema: Any):
    import pyarrow as pa

    arrays = []
    for schema_field in schema:
        values = columns.get(schema_field.name)
        if values is None:
            values = [None] * len(next(iter(columns.values()), []))
        arrays.append(_array(values, schema_field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _array(values: list, kind: Any):
    """An Arrow array of `kind` from Python values or numpy rows (None: null). Fixed-size lists (embeddings, prompt
    features) are built from one stacked numpy buffer, null rows masked."""
    import pyarrow as pa

    if not pa.types.is_fixed_size_list(kind):
        return pa.array([v.tolist() if isinstance(v, np.ndarray) else v for v in values], kind)
    shape, leaf = [], kind
    while pa.types.is_fixed_size_list(leaf):
        shape.append(leaf.list_size)
        leaf = leaf.value_type
    nulls = np.array([v is None for v in values], dtype=bool)
    stacked = np.zeros((len(values), *shape), dtype=leaf.to_pandas_dtype())
    for row, value in enumerate(values):
        if value is not None:
            stacked[row] = np.asarray(value)
    array = pa.array(stacked.reshape(-1), leaf)
    for depth, size in enumerate(reversed(shape)):
        outer = depth == len(shape) - 1
        array = pa.FixedSizeListArray.from_arrays(array, size, mask=pa.array(nulls) if outer and nulls.any() else None)
    return array


def _floats(values: torch.Tensor | np.ndarray) -> list[float]:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, np.float32).tolist()


def _reason(name: str, err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text if name in text else f"{name}: {type(err).__name__}: {text}"


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def predictor_kwargs(**kwargs: Any) -> dict[str, Any]:
    """`fn_constructor_kwargs` checked on the driver (a bad option fails before any worker starts)."""
    return asdict(PredictorConfig(**kwargs))


__all__ = ["MODES", "PredictorConfig", "XClipPredictor", "output_schema", "path_column", "predictor_kwargs"]

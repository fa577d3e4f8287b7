"""Resumable batch jobs over many videos: `XClipPredictor` run by Ray Data (``engine="ray"``) or in this process
(``engine="local"``), rows written as they complete.

**Predictions** (`run_job`, modes ``classify`` / ``timeline``) go to a folder of Parquet parts::

    OUTPUT/                     e.g. results.parquet/
      _job.json                 the options the rows depend on (a re-run with other options is refused)
      part-<time>-<n>.parquet   committed parts: one schema for all (`output_schema`, a string ``error`` column)

A part is written under a hidden ``.part-*.partial`` name and renamed into place (`os.replace`, atomic): it is there
whole or not at all, and the rows of one video are never split between parts. A killed job keeps its committed
parts; running the same command again skips every path that has rows (error rows included) and adds no duplicates.
`pandas.read_parquet(OUTPUT)`, `pyarrow.parquet.read_table(OUTPUT)` and
``datasets.load_dataset("parquet", data_files="OUTPUT/*.parquet")`` read the folder (names starting with ``_`` or
``.`` are skipped by all three).

**Index rows** (`run_index_job`) are committed as the shards of an hf_xclip video index (`hf_xclip.search`):
the same folder, manifests, lock and FAISS index as ``hf-xclip index`` writes, so an index built by Ray is appended to
by a local run and the other way round.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import ENGINES, EngineOptions
from .predictor import ERROR_COLUMN, XClipPredictor, path_column, predictor_kwargs

if TYPE_CHECKING:
    from ..search.faiss_index import FaissKind

JOB_FILE = "_job.json"
JOB_FORMAT = "hf_xclip-predictions"
PART_PREFIX, PART_SUFFIX = "part-", ".parquet"
# Options that do not change the rows (left out of the check that a re-run continues the same job).
_RUN_OPTIONS = ("device", "batch_size", "decode_threads")
# Test hook: exit the process (os._exit(137), as a kill) right after this many parts are committed.
TEST_EXIT_AFTER_ENV = "HF_XCLIP_JOB_TEST_EXIT_AFTER_PARTS"


@dataclass
class JobResult:
    """What a job did: videos written by this run (``written``, of which ``failed`` as error rows), ``skipped``
    (already in the output), ``missing`` paths, and the output's totals."""

    output: Path
    written: int = 0
    rows: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    total_videos: int = 0
    parts: int = 0
    seconds: float = 0.0


# ----------------------------------------------------------------------------------------------------------------
# Parquet parts


def part_paths(output: str | os.PathLike) -> list[Path]:
    """Committed parts of a prediction folder, in commit order."""
    folder = Path(output)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(PART_PREFIX) and p.name.endswith(PART_SUFFIX))


def written_paths(output: str | os.PathLike, column: str = "path") -> set[str]:
    """Every video with rows in the committed parts (only the path column is read)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in part_paths(output):
        done.update(pq.read_table(part, columns=[column]).column(column).to_pylist())
    return done


class PartWriter:
    """Commits tables as Parquet parts of at least `part_rows` rows (or after `flush_seconds`), atomically."""

    def __init__(self, output: Path, schema: Any, part_rows: int = 1024, flush_seconds: float = 30.0) -> None:
        self.output, self.schema = output, schema
        self.part_rows, self.flush_seconds = part_rows, flush_seconds
        self.pending: list[Any] = []
        self.last = time.monotonic()
        self.parts = 0
        self._exit_after = int(os.environ.get(TEST_EXIT_AFTER_ENV) or 0)

    def add(self, table: Any) -> None:
        self.pending.append(table)
        rows = sum(t.num_rows for t in self.pending)
        if rows >= self.part_rows or time.monotonic() - self.last >= self.flush_seconds:
            self.commit()

    def commit(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.last = time.monotonic()
        if not self.pending:
            return
        table = pa.concat_tables([t.cast(self.schema) for t in self.pending])
        self.pending = []
        name = f"{PART_PREFIX}{time.time_ns():020d}-{self.parts:05d}{PART_SUFFIX}"
        final, partial = self.output / name, self.output / f".{name}.partial"
        pq.write_table(table, partial)
        _fsync(partial)
        os.replace(partial, final)
        self.parts += 1
        if self._exit_after and self.parts >= self._exit_after:
            os._exit(137)  # test hook: a kill right after a commit


def _fsync(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError:
        pass


def whole_videos(tables: Iterable[Any], column: str) -> Iterator[Any]:
    """The rows of `tables` again, cut only between videos: the rows of the last video of a table are held back
    until a row of another video (or the end) shows they are complete. A video's rows are contiguous (one worker
    call makes them all)."""
    import pyarrow as pa

    held = None
    for table in tables:
        if held is not None and held.num_rows:
            table = pa.concat_tables([held, table.cast(held.schema)])
        held = None
        if not table.num_rows:
            continue
        names = table.column(column).to_pylist()
        cut = len(names)
        while cut and names[cut - 1] == names[-1]:
            cut -= 1
        if cut:
            yield table.slice(0, cut)
        held = table.slice(cut)
    if held is not None and held.num_rows:
        yield held


# ----------------------------------------------------------------------------------------------------------------
# Engines


def predictions(paths: Sequence[str], kwargs: dict[str, Any], options: EngineOptions) -> Iterator[Any]:
    """`XClipPredictor(**kwargs)` over `paths`: `pyarrow.Table`s as they complete, on the chosen engine."""
    if not paths:
        return iter(())
    if options.engine == "local":
        return _local(paths, kwargs, options)
    return _ray(paths, kwargs, options)


def _local(paths: Sequence[str], kwargs: dict[str, Any], options: EngineOptions) -> Iterator[Any]:
    predictor = XClipPredictor(**kwargs)
    step = options.videos_per_call
    for start in range(0, len(paths), step):
        yield predictor({"path": list(paths[start : start + step])})


def require_ray():
    """Import Ray, or say how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError("--engine ray needs Ray Data: pip install 'hf_xclip[ray]' (ray[data])") from None
    return ray


def _ray(paths: Sequence[str], kwargs: dict[str, Any], options: EngineOptions) -> Iterator[Any]:
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=options.ray_address, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in input order, as the local engine writes them
    context.enable_progress_bars = False
    step = options.videos_per_call
    blocks = max(1, -(-len(paths) // step))
    dataset = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)
    dataset = dataset.map_batches(
        XClipPredictor,
        fn_constructor_kwargs=kwargs,
        batch_size=step,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=options.num_workers),
        num_gpus=options.num_gpus_per_worker or None,
        num_cpus=options.num_cpus_per_worker,
    )
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
        # Ray frees a block once the next one is fetched, and its Arrow buffers are views of the object store: copy
        # the rows out (the writers hold rows back across batches).
        yield _copied(table)


def _copied(table: Any):
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return pa.ipc.open_stream(sink.getvalue()).read_all()


# ----------------------------------------------------------------------------------------------------------------
# Prediction jobs


def run_job(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    predictor: dict[str, Any],
    options: EngineOptions | None = None,
    *,
    part_rows: int = 1024,
    flush_seconds: float = 30.0,
) -> JobResult:
    """Run a ``classify`` or ``timeline`` predictor over videos into a folder of Parquet parts, resuming it.

    Args:
        paths: video files and folders (walked, `hf_xclip.data.folders.find_videos`) or URLs.
        output: the folder of parts (created; a folder holding another job's rows is refused).
        predictor: `XClipPredictor` keyword arguments (`PredictorConfig` fields).
        options: the engine (`EngineOptions`; default local).
        part_rows / flush_seconds: a part is committed once it holds this many rows, or this long after the last.

    Raises:
        ValueError: bad options; an output folder of another job or not a prediction folder.
    """
    from ..search.build import _IndexLock

    started = time.perf_counter()
    options = options or EngineOptions()
    kwargs = predictor_kwargs(**predictor)
    if kwargs["mode"] == "index":
        raise ValueError("index rows go to an index: use run_index_job.")
    output = Path(output)
    _open_job(output, kwargs)
    lock = _IndexLock(output)  # one writer per folder (released by the OS when the process dies)
    try:
        return _run_job(paths, output, kwargs, options, part_rows, flush_seconds, started)
    finally:
        lock.release()


def _run_job(
    paths,
    output: Path,
    kwargs: dict[str, Any],
    options: EngineOptions,
    part_rows: int,
    flush_seconds: float,
    started: float,
) -> JobResult:
    from ..search.build import find_index_videos

    for stale in output.glob(".*.partial"):  # a part a killed run was writing
        stale.unlink(missing_ok=True)
    videos, missing = find_index_videos(paths)
    done = written_paths(output)
    pending = [v for v in videos if v not in done]
    result = JobResult(output, skipped=len(videos) - len(pending), missing=[(str(p), r) for p, r in missing])
    schema = None
    writer = None
    for table in whole_videos(predictions(pending, kwargs, options), "path"):
        if writer is None:
            schema = table.schema
            writer = PartWriter(output, schema, part_rows, flush_seconds)
        writer.add(table)
        _count(result, table, "path")
    if writer is not None:
        writer.commit()
        result.parts = writer.parts
    result.total_videos = len(written_paths(output))
    result.seconds = time.perf_counter() - started
    return result


def _count(result: JobResult, table: Any, column: str) -> None:
    names = table.column(column).to_pylist()
    errors = table.column(ERROR_COLUMN).to_pylist()
    result.rows += sum(e is None for e in errors)
    result.written += len(dict.fromkeys(names))
    result.failed.extend((n, e) for n, e in zip(names, errors) if e is not None)


def _open_job(output: Path, kwargs: dict[str, Any]) -> None:
    """Create the output folder with its ``_job.json``, or check that it continues the same job."""
    recorded = {k: v for k, v in kwargs.items() if k not in _RUN_OPTIONS}
    path = output / JOB_FILE
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} exists and is not a folder (a job writes a folder of Parquet parts).")
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}).") from None
        theirs = data.get("predictor", {}) if isinstance(data, dict) else {}
        differ = sorted(k for k in set(recorded) | set(theirs) if recorded.get(k) != theirs.get(k))
        if differ:
            raise ValueError(
                f"{output} holds the rows of another job ({', '.join(differ)} differ): re-run with that job's "
                "options to resume it, or write to a new --output."
            )
        return
    if output.is_dir() and any(not p.name.startswith(".") for p in output.iterdir()):
        raise ValueError(f"{output} is not empty and holds no {JOB_FILE}: give a new folder as --output.")
    output.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"format": JOB_FORMAT, "predictor": recorded}, indent=2, ensure_ascii=False) + "\n"
    partial = output / f".{JOB_FILE}.partial"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def read_predictions(output: str | os.PathLike):
    """All committed rows of a prediction folder as one `pyarrow.Table` (in commit order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = part_paths(output)
    if not parts:
        raise ValueError(f"{output} holds no committed parts.")
    return pa.concat_tables([pq.read_table(p) for p in parts])


SEGMENTS_FILE = "_segments.jsonl"


def write_segments(output: str | os.PathLike, config: Any) -> Path:
    """``OUTPUT/_segments.jsonl`` from the window rows of a timeline job: one line per video, ``{"path", "segments"
    [{label, start, end, score}], "error"}``, the segments found by `hf_xclip.timeline.find_segments` with the
    options of `config` (a `TimelineConfig`), as ``hf-xclip timeline --json`` finds them. Rewritten atomically."""
    import numpy as np

    from ..timeline.segments import _segment_options, find_segments

    output = Path(output)
    lines = []
    if part_paths(output):
        table = read_predictions(output)
        by_path: dict[str, list[int]] = {}
        for row, name in enumerate(table.column("path").to_pylist()):
            by_path.setdefault(name, []).append(row)
        errors = table.column(ERROR_COLUMN).to_pylist()
        for name, rows in by_path.items():
            picked = table.take(rows)
            if errors[rows[0]] is not None:
                lines.append({"path": name, "segments": [], "error": errors[rows[0]]})
                continue
            spans = np.stack([picked.column("start").to_numpy(), picked.column("end").to_numpy()], axis=1)
            scores = np.asarray(picked.column("scores").to_pylist(), np.float32)
            labels = picked.column("labels")[0].as_py()
            segments = find_segments(spans, scores, labels, **_segment_options(config))
            lines.append({"path": name, "segments": [s.to_dict() for s in segments], "error": None})
    path, partial = output / SEGMENTS_FILE, output / f".{SEGMENTS_FILE}.partial"
    partial.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    os.replace(partial, path)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Index jobs


def run_index_job(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    options: EngineOptions | None = None,
    *,
    model: str | None = None,
    adapter: str | None = None,
    window: float | None = None,
    stride: float | None = None,
    num_frames: int | None = None,
    tail: str | None = None,
    precision: str | None = None,
    batch_size: int = 8,
    shard_size: int = 256,
    retry_failed: bool = False,
    faiss_kind: FaissKind = "auto",
    device: str | None = None,
):
    """`hf_xclip.search.build_index` with the rows made by `XClipPredictor` workers (Ray, or this process):
    the same index folder, settings, shards (whole videos, failures in the manifests), resumption and FAISS index.

    Returns:
        An `hf_xclip.search.IndexingResult`.

    Raises:
        as `build_index`.
    """
    from dataclasses import asdict

    from ..search import load_index_model, load_or_build_faiss, read_manifest
    from ..search.build import (
        _IndexLock,
        checked_index_info,
        existing_index,
        find_index_videos,
        finish_indexing,
        plan_indexing,
        prepare_index_folder,
        require_index_extras,
    )

    options = options or EngineOptions()
    require_index_extras()
    output = Path(output)
    existing = existing_index(output)
    loaded = load_index_model(model, adapter, None, existing, device="cpu")  # fingerprints; workers load their own
    given = {"window": window, "stride": stride, "num_frames": num_frames, "tail": tail, "precision": precision}
    info = checked_index_info(loaded, existing, output, given)
    del loaded
    kwargs = predictor_kwargs(
        mode="index",
        model=info.model,
        adapter=info.adapter,
        device=device,
        index=asdict(info.settings),
        batch_size=batch_size,
    )
    lock = _IndexLock(output)
    try:
        prepare_index_folder(output, info, existing)
        videos, missing = find_index_videos(paths)
        pending, result = plan_indexing(output, videos, missing, read_manifest(output), retry_failed)
        shards = _ShardWriter(output, info, shard_size)
        for table in whole_videos(predictions(pending, kwargs, options), path_column("index")):
            shards.add(table)
        shards.commit()
        after = read_manifest(output)
        _, result.faiss = load_or_build_faiss(output, after.shards, kind=faiss_kind)
    finally:
        lock.release()
    return finish_indexing(result, pending, after)


class _ShardWriter:
    """Index-row tables -> committed shards of whole videos (`hf_xclip.search.write_shard`). Rows are picked
    with numpy, not `pyarrow.compute.filter` (which misreads sliced nested fixed-size lists in pyarrow 26)."""

    def __init__(self, output: Path, info: Any, shard_size: int) -> None:
        self.output, self.info, self.shard_size = output, info, shard_size
        self.tables: list[tuple[Any, list[bool]]] = []
        self.rows = 0
        self.failed: list[tuple[str, str]] = []

    def add(self, table: Any) -> None:
        errors = table.column(ERROR_COLUMN).to_pylist()
        names = table.column("video").to_pylist()
        self.failed.extend((n, e) for n, e in zip(names, errors) if e is not None)
        good = [e is None for e in errors]
        if any(good):
            self.tables.append((table, good))
            self.rows += sum(good)
        if self.rows >= self.shard_size:
            self.commit()

    def commit(self) -> None:
        import numpy as np

        from ..search import RowBatch, write_shard

        if not self.tables and not self.failed:
            return
        info = self.info
        with_prompts = info.num_patches > 0
        int8 = with_prompts and info.settings.precision == "int8"

        def column(name: str) -> np.ndarray:
            return np.concatenate([dense_column(t, name)[np.asarray(m)] for t, m in self.tables])

        names = [n for t, m in self.tables for n, ok in zip(t.column("video").to_pylist(), m) if ok]
        if self.tables:
            rows = RowBatch(
                videos=names,
                starts=np.concatenate([_floats(t, "start")[m] for t, m in self.tables]),
                ends=np.concatenate([_floats(t, "end")[m] for t, m in self.tables]),
                embeddings=np.ascontiguousarray(column("embedding"), np.float32),
                prompt_values=np.ascontiguousarray(column("prompt_features")) if with_prompts else None,
                prompt_scales=np.ascontiguousarray(column("prompt_scale")) if int8 else None,
            )
        else:
            rows = RowBatch([], np.zeros(0), np.zeros(0), np.zeros((0, info.projection_dim), np.float32))
        write_shard(self.output, info, rows, list(_counts(names).items()), self.failed)
        self.tables, self.rows, self.failed = [], 0, []


def _floats(table: Any, name: str):
    import numpy as np

    return np.asarray(table.column(name).to_pylist(), np.float64)


def dense_column(table: Any, name: str):
    """A (nested) fixed-size-list column as a numpy array ``(rows, ...)``, read through ``.values`` and the
    arrays' offsets: `FixedSizeListArray.flatten` skips null entries, which shifts rows whose batch held an error
    row."""
    import numpy as np
    import pyarrow as pa

    parts = []
    for chunk in table.column(name).chunks:
        shape, array = [len(chunk)], chunk
        while pa.types.is_fixed_size_list(array.type):
            size = array.type.list_size
            shape.append(size)
            array = array.values.slice(array.offset * size, len(array) * size)
        parts.append(array.to_numpy(zero_copy_only=False).reshape(shape))
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _counts(names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


__all__ = [
    "ENGINES",
    "EngineOptions",
    "JobResult",
    "PartWriter",
    "part_paths",
    "predictions",
    "read_predictions",
    "require_ray",
    "run_index_job",
    "run_job",
    "whole_videos",
    "write_segments",
    "written_paths",
]

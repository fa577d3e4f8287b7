"""A video collection as a searchable index: rows on disk, written in atomic shards, resumable, sharded across
processes with accelerate; the FAISS index over them.

An index is a folder:

```
INDEX/
  index.json                         what made the rows: model, adapter, fingerprints, sizes, row settings
  shards/<time>-r<rank>.arrow         committed shards (Arrow IPC stream files, each listing the videos it holds)
  faiss-<key>.index / .json          the FAISS index over the committed shards (derived, rebuilt when stale)
```

* A **row** is one video (sampled as the zero-shot pipeline samples it: the model's frame count, middle frames of
  equal segments, by the model's `XClipVideoProcessor`) or, with ``window`` / ``stride``, one window of a long video
  (`hf_xclip.video_io.iter_windows`, one decoding pass per file). Its columns: ``video`` (absolute path or URL),
  ``start`` / ``end`` (seconds; the whole video is ``[0, duration)``), ``embedding`` (the video embedding,
  `get_video_features(...).pooler_output`, float32) and, for models with a prompt generator, ``prompt_features``
  (the patch features the prompt generator attends to, ``(num_patches, projection_dim)``) stored as int8 with one
  float32 scale per patch (``prompt_scale``; or float16 / float32, see [`PRECISIONS`]).
* **Shards** are written to a hidden temporary name and renamed into ``shards/`` (`os.replace`, atomic): a shard
  is there completely or not at all, and it carries its own manifest in its schema metadata (the videos it holds
  with their row counts, and the videos that failed). All rows of a video go into one shard. A run killed at any
  point (``kill -9`` included) and started again skips the committed videos and redoes the rest: no lost, partial
  or duplicated rows. Videos that failed are recorded with the reason and not retried unless asked.
* **Several processes** (``accelerate launch --num_processes N``): `accelerate.PartialState` splits the videos not
  yet indexed between the processes (``split_between_processes``); each writes its own shards, named by its rank.
  The rows are those of a one-process run.
* The **FAISS index** (exact ``IndexFlatIP`` on the normalised embeddings up to [`FLAT_MAX_FLOATS`] floats, IVF
  above) is derived from the committed shards and named after them: it is rebuilt at the end of a run and
  whenever the shards changed (an append, a resumed run), so it can never disagree with the rows.

The table loads with `datasets` (memory-mapped, no copy): ``datasets.Dataset.from_file(shard)`` per shard, or
``datasets.load_dataset("arrow", data_files="INDEX/shards/*.arrow", split="train")``; ``VideoIndex.dataset()`` in
`hf_xclip.search.index` concatenates the shards. Search is in `hf_xclip.search.index`.

Needs the ``index`` extra: ``pip install 'hf_xclip[index]'`` (datasets / pyarrow, faiss-cpu).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers.utils import logging

from ..utils import check_positive_int, prefetch
from ..video_io import URL_PREFIXES, fetch_video, require_backend
from .faiss_index import FaissInfo, FaissKind, faiss_key, load_or_build_faiss
from .format import (
    INDEX_FILE,
    LOCK_FILE,
    SHARDS_DIR,
    IndexInfo,
    IndexSettings,
    Manifest,
    RowBatch,
    Shard,
    create_index,
    read_info,
    read_manifest,
    require_extra,
    write_shard,
)
from .model import LoadedModel, _index_info, embed_videos, load_index_model

if TYPE_CHECKING:
    from accelerate import PartialState

logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Building: videos -> rows -> shards


@dataclass
class IndexingResult:
    """What `build_index` did (the same in every process of a multi-process run).

    Attributes:
        output: the index folder.
        indexed: videos indexed by this run (all processes); ``rows``: their rows.
        skipped: videos already in the index (not redone).
        failed: ``(video, reason)`` of videos that failed in this run (recorded, skipped; not retried unless asked).
        previously_failed: videos skipped because an earlier run recorded them as failed.
        missing: ``(path, reason)`` of paths that do not exist.
        total_rows / total_videos: the whole index after the run.
        faiss: the FAISS index built (`FaissInfo`), or None when not built.
    """

    output: Path
    indexed: int = 0
    rows: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    previously_failed: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    total_rows: int = 0
    total_videos: int = 0
    faiss: FaissInfo | None = None


def video_key(video: str) -> str:
    """How a video is named in an index: the absolute path of a file, a URL as it is."""
    return video if video.startswith(URL_PREFIXES) else os.path.abspath(video)


def build_index(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    model: Any = None,
    adapter: str | os.PathLike | None = None,
    processor: Any = None,
    window: float | None = None,
    stride: float | None = None,
    num_frames: int | None = None,
    tail: str | None = None,
    precision: str | None = None,
    batch_size: int = 8,
    shard_size: int = 256,
    num_workers: int = 2,
    retry_failed: bool = False,
    faiss_kind: FaissKind = "auto",
    device: str | torch.device | None = None,
    progress: bool = False,
    decode_backend: str | None = None,
) -> IndexingResult:
    """Index videos into `output` (created, or appended to), resuming where an earlier run stopped.

    Args:
        paths: video files and folders (walked recursively, `hf_xclip.data.folders.find_videos`), URLs.
        output: the index folder.
        model: a model directory or Hub id (default: the model recorded in an existing index, else the embedded
            default model), or an `XClipModel` (or a peft model around one) with `processor`.
        adapter: a PEFT adapter folder to load onto a model given by name.
        processor: an `XClipProcessor` (or `XClipVideoProcessor`) for a model given as an object; by default the
            one saved with the model.
        window / stride / num_frames / tail / precision: see `IndexSettings`; fixed when the index is created
            (``None``: the index's own, or the defaults for a new index). A different value for an existing
            index raises.
        batch_size: rows per forward pass.
        shard_size: rows per shard (a shard closes at the end of a video once it holds this many rows; smaller
            shards lose less work to a kill, and make more files to open).
        num_workers: threads decoding and preprocessing ahead of the model.
        retry_failed: also redo videos an earlier run recorded as failed.
        faiss_kind: ``"auto"``, ``"flat"`` or ``"ivf"`` (see `build_faiss`).
        device: torch device (default: this process's accelerate device).
        progress: show a progress bar (main process).
        decode_backend: `"auto"`, `"torchcodec"`, `"pyav"` or `"decord"` for this run (default: the processor's own).

    Under ``accelerate launch`` each process indexes its part of the videos not yet indexed
    (`PartialState.split_between_processes`) into its own shards; the main process then builds the FAISS index.

    Raises:
        IndexModelMismatchError: appending with another model or adapter than the one that made the index.
        ValueError: settings that differ from the index's, a folder that is not an index, bad arguments.
        RuntimeError: another run is writing the same index.
    """
    from accelerate import PartialState

    check_positive_int(batch_size, "batch_size")
    check_positive_int(shard_size, "shard_size")
    require_index_extras()
    output = Path(output)
    state = PartialState(cpu=_cpu_only(device))
    _warn_one_process(state)
    existing = existing_index(output)
    loaded = load_index_model(model, adapter, processor, existing, device=device or state.device)
    if decode_backend is not None:  # `hf-xclip index --decode-backend`
        require_backend(decode_backend)
        loaded.video_processor.decode_backend = decode_backend
    given = {"window": window, "stride": stride, "num_frames": num_frames, "tail": tail, "precision": precision}
    info = checked_index_info(loaded, existing, output, given)
    lock = _main_process_lock(state, output, info, existing)
    try:
        videos, missing = find_index_videos(paths)
        pending, result = plan_indexing(output, videos, missing, _committed_before(state, output), retry_failed)
        with state.split_between_processes(pending) as mine:  # each process indexes its part into its own shards
            _index_videos(list(mine), output, info, loaded, batch_size, shard_size, num_workers, state, progress)
        after, result.faiss = _faiss_after_run(state, output, faiss_kind)
    finally:
        if lock is not None:
            lock.release()
    return finish_indexing(result, pending, after)


# -- the steps of a run (`hf_xclip.distributed.run_index_job` shares them) ---------------------------------------


def require_index_extras() -> None:
    """Raise ImportError (saying how to install them) without the ``index`` extra's pyarrow and faiss."""
    require_extra("pyarrow")
    require_extra("faiss")


def existing_index(output: Path) -> IndexInfo | None:
    """The index in `output` a run appends to; None for a new index (no folder yet, or an empty one).

    Raises:
        ValueError: `output` is a file, or a folder holding something else.
    """
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} exists and is not a folder.")
    existing = read_info(output) if output.is_dir() else None
    if existing is None and output.is_dir() and any(not p.name.startswith(".") for p in output.iterdir()):
        raise ValueError(f"{output} is not empty and is not an hf_xclip video index (no {INDEX_FILE}).")
    return existing


def checked_index_info(
    loaded: LoadedModel, existing: IndexInfo | None, output: Path, given: dict[str, Any]
) -> IndexInfo:
    """The `IndexInfo` of the rows this run writes, checked against the index it appends to (settings, row sizes,
    model and adapter)."""
    info = _index_info(loaded, existing, given)
    if existing is not None:
        existing.check_model(info.video_fingerprint, info.text_fingerprint, f"the index {output}")
    return info


def prepare_index_folder(output: Path, info: IndexInfo, existing: IndexInfo | None) -> None:
    """Create a new index; delete the shards a run that was killed before committing them left behind."""
    if existing is None:
        create_index(output, info)
    for stale in (output / SHARDS_DIR).glob(".*.partial") if (output / SHARDS_DIR).is_dir() else ():
        stale.unlink(missing_ok=True)  # written by a run that was killed before committing it


def find_index_videos(paths: Sequence[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """The videos of `paths` (`hf_xclip.data.folders.find_videos`) named as an index names them (`video_key`),
    without repeats, and ``(path, reason)`` of the paths that do not exist."""
    from ..data.folders import find_videos

    videos, missing = find_videos(paths)
    return list(dict.fromkeys(video_key(v) for v in videos)), missing


def plan_indexing(
    output: Path, videos: list[str], missing: list[tuple[str, str]], before: Manifest, retry_failed: bool
) -> tuple[list[str], IndexingResult]:
    """The videos this run indexes (those not in the index `before` it, nor recorded as failed unless
    `retry_failed`), and its result so far (skipped, previously failed, missing)."""
    pending = [v for v in videos if v not in before.files and (retry_failed or v not in before.failed)]
    result = IndexingResult(
        output,
        skipped=sum(v in before.files for v in videos),
        previously_failed=[v for v in videos if v in before.failed and not retry_failed],
        missing=[(str(p), r) for p, r in missing],
    )
    return pending, result


def finish_indexing(result: IndexingResult, pending: list[str], after: Manifest) -> IndexingResult:
    """`result` completed from the index `after` the run: what became of the `pending` videos, and the totals."""
    mine = set(pending)
    result.indexed = sum(v in after.files for v in mine)
    result.rows = sum(after.files.get(v, 0) for v in mine)
    result.failed = [(v, r) for v, r in after.failed.items() if v in mine]
    result.total_rows, result.total_videos = after.rows, len(after.files)
    return result


def _warn_one_process(state: PartialState) -> None:
    if state.num_processes == 1 and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ:
        logger.warning(
            "accelerate launch asked for several processes but started one: with --cpu it starts several only "
            "through MPI (--mpirun_hostfile). On a machine without GPUs use `accelerate launch --multi_gpu "
            "--num_processes N` or `torchrun --nproc_per_node N` (the processes then run on the CPU)."
        )


def _main_process_lock(
    state: PartialState, output: Path, info: IndexInfo, existing: IndexInfo | None
) -> _IndexLock | None:
    """The main process locks the index and prepares its folder (`prepare_index_folder`); a failure there is
    raised in every process. Returns the lock (None in the other processes)."""
    lock = None
    error = None
    if state.is_main_process:
        try:
            lock = _IndexLock(output)
            prepare_index_folder(output, info, existing)
        except (OSError, RuntimeError) as err:
            error = f"{type(err).__name__}: {err}"
    error = _broadcast(state, error)
    if error is not None:
        if lock is not None:
            lock.release()
        raise RuntimeError(f"cannot write the index {output}: {error}")
    return lock


def _committed_before(state: PartialState, output: Path) -> Manifest:
    """The committed state of the index, the same in every process: the main process first sets damaged shards
    aside (their videos are indexed again)."""
    if state.is_main_process:  # a damaged shard is set aside (its videos are redone) before anyone reads
        for path in read_manifest(output, repair=True).set_aside:
            logger.warning(f"set aside the damaged shard {path}: its videos are indexed again")
    state.wait_for_everyone()
    before = read_manifest(output)
    state.wait_for_everyone()  # every process has read the same committed state before any writes
    return before


def _faiss_after_run(state: PartialState, output: Path, faiss_kind: FaissKind) -> tuple[Manifest, FaissInfo | None]:
    """The committed state after every process wrote its shards, and the FAISS index over it (built by the main
    process)."""
    state.wait_for_everyone()
    after = read_manifest(output)
    faiss = None
    if state.is_main_process:
        _, faiss = load_or_build_faiss(output, after.shards, kind=faiss_kind)
    state.wait_for_everyone()
    if faiss is None:  # other processes read what the main process wrote
        faiss = _faiss_info_on_disk(output, after.shards)
    return after, faiss


def _cpu_only(device: str | torch.device | None) -> bool:
    """Whether the processes run on the CPU: asked for (``device="cpu"``, ``accelerate launch --cpu``), or no
    accelerator. accelerate makes a CPU-only multi-process group (gloo) only when told so, e.g. under
    ``accelerate launch --multi_gpu`` or ``torchrun`` on a machine without GPUs."""
    from accelerate.utils import parse_flag_from_env

    if device is not None:
        return torch.device(device).type == "cpu"
    if parse_flag_from_env("ACCELERATE_USE_CPU"):
        return True
    available = getattr(getattr(torch, "accelerator", None), "is_available", None)
    return not (available() if callable(available) else torch.cuda.is_available())


def _faiss_info_on_disk(index_dir: Path, shards: Sequence[Shard]) -> FaissInfo | None:
    sidecar = index_dir / f"faiss-{faiss_key(shards)}.json"
    try:
        return FaissInfo(**json.loads(sidecar.read_text(encoding="utf-8")))
    except (OSError, TypeError, ValueError):
        return None


def _broadcast(state, value: Any) -> Any:
    """The main process's `value` in every process."""
    if state.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


class _IndexLock:
    """An exclusive lock on an index folder (``flock`` on ``.lock``), held by the main process of a writing run;
    the operating system releases it when the process dies (``kill -9`` included)."""

    def __init__(self, index_dir: Path):
        index_dir.mkdir(parents=True, exist_ok=True)
        self.handle = open(index_dir / LOCK_FILE, "a+")
        try:
            import fcntl

            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): one writer at a time is then the user's job
            pass
        except OSError:
            self.handle.close()
            raise RuntimeError(f"another run is writing {index_dir} (its {LOCK_FILE} is locked)") from None

    def release(self) -> None:
        self.handle.close()


# -- rows of one video --------------------------------------------------------------------------------------------


def video_rows(
    video: str, video_processor: Any, settings: IndexSettings
) -> Iterator[tuple[float, float, torch.Tensor]]:
    """``(start, end, pixel_values (1, T, 3, S, S))`` of each row of one video: the whole video sampled as the
    pipeline samples it, or each window of `iter_windows` (decoded once)."""
    source = fetch_video(video)
    frames = settings.num_frames
    if settings.window is None:
        out = video_processor(source, num_frames=frames, num_clips=1, num_crops=1, return_metadata=True)
        duration = out["video_metadata"][0].duration
        yield 0.0, float(duration) if duration is not None else float("nan"), out["pixel_values"]
        return
    windows = video_processor.iter_windows(
        source,
        window=settings.window,
        stride=settings.stride,
        num_frames=frames,
        tail=settings.tail,
        short_side=video_processor.decode_short_side,
    )
    with windows:
        for window in windows:
            pixels = video_processor(window.frames, num_frames=frames, num_clips=1, num_crops=1)["pixel_values"]
            yield window.start, window.end, pixels


@dataclass
class _Event:
    kind: str  # "row", "done" or "failed"
    video: str
    start: float = 0.0
    end: float = 0.0
    pixel_values: torch.Tensor | None = None
    reason: str = ""


def prefetch_rows(
    videos: Sequence[str],
    produce: Callable[[str], Iterator[tuple[float, float, torch.Tensor]]],
    num_workers: int = 2,
    depth: int = 8,
) -> Iterator[_Event]:
    """The rows of `videos` in order, produced by `num_workers` threads ahead of the caller: for each video its
    ``row`` events, then ``done`` (or ``failed`` with the reason; rows already yielded for it must be dropped).
    At most ``depth + num_workers`` videos are in flight and each holds at most ``depth`` rows."""
    streams = prefetch(videos, produce, workers=num_workers, ahead=depth + num_workers, depth=depth, name="xclip-index")
    with contextlib.closing(streams):  # also when the caller stops early: running videos stop at their next row
        for video, stream in streams:
            try:
                for start, end, pixels in stream:
                    yield _Event("row", video, start, end, pixels)
            except Exception as err:  # one video's failure never stops the others
                reason = str(err) if video in str(err) else f"{type(err).__name__}: {err}"
                yield _Event("failed", video, reason=reason)
            else:
                yield _Event("done", video)


@dataclass
class _OpenVideo:
    video: str
    spans: list[tuple[float, float]] = field(default_factory=list)
    outputs: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = field(default_factory=list)
    read: bool = False
    failure: str | None = None

    @property
    def finished(self) -> bool:
        return self.failure is not None or (self.read and len(self.outputs) == len(self.spans))


def _index_videos(
    videos: list[str],
    output: Path,
    info: IndexInfo,
    loaded: LoadedModel,
    batch_size: int,
    shard_size: int,
    num_workers: int,
    state: PartialState,
    progress: bool,
) -> None:
    """Embed `videos` and commit them in shards of about `shard_size` rows (whole videos only). Decoding runs
    ahead in `num_workers` threads and each shard is written by a background thread while the model goes on (one
    write at a time, in order). Its shards are named by the process's rank; the main process shows `progress`."""
    from tqdm.auto import tqdm

    if not videos:
        return
    progress = progress and state.is_main_process
    settings = info.settings
    opened: collections.deque[_OpenVideo] = collections.deque()
    batch: list[tuple[_OpenVideo, torch.Tensor]] = []
    ready: list[_OpenVideo] = []  # finished videos waiting for their shard
    by_name: dict[str, _OpenVideo] = {}
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xclip-index-writer")
    writing: list = []  # the shard write in flight (at most one)

    def run_batch() -> None:
        if not batch:
            return
        outputs = embed_videos(loaded.model, torch.cat([pixels for _, pixels in batch]), settings.precision)
        _check_row_shapes(outputs, info)
        for (item, _), row in zip(batch, zip(*outputs)):
            item.outputs.append(row)
        batch.clear()

    def commit(final: bool = False) -> None:
        while opened and opened[0].finished:
            ready.append(opened.popleft())
        rows = sum(len(v.outputs) for v in ready if v.failure is None)
        if ready and (rows >= shard_size or final):
            if writing:
                writing.pop().result()  # raises what the previous write raised
            writing.append(writer.submit(_commit_shard, output, info, list(ready), state.process_index))
            bar.update(len(ready))
            ready.clear()

    produce = lambda video: video_rows(video, loaded.video_processor, settings)  # noqa: E731
    events = prefetch_rows(videos, produce, num_workers=num_workers, depth=batch_size)
    try:
        with tqdm(total=len(videos), unit="video", disable=not progress, dynamic_ncols=True) as bar:
            for event in events:
                item = by_name.get(event.video)
                if item is None:
                    item = by_name[event.video] = _OpenVideo(event.video)
                    opened.append(item)
                if event.kind == "row":
                    item.spans.append((event.start, event.end))
                    batch.append((item, event.pixel_values))
                    if len(batch) >= batch_size:
                        run_batch()
                elif event.kind == "done":
                    item.read = True
                else:  # its rows are dropped: a video is committed whole or recorded as failed
                    item.failure = event.reason
                    batch[:] = [(v, p) for v, p in batch if v is not item]
                    logger.warning(f"skipping {event.video}: {event.reason}")
                if event.kind != "row":
                    by_name.pop(event.video, None)
                commit()
            run_batch()
            commit(final=True)
            if writing:
                writing.pop().result()
    finally:
        writer.shutdown(wait=True)  # a write under way completes (a whole shard) even when the loop failed


def _check_row_shapes(outputs, info: IndexInfo) -> None:
    embedding, prompts = outputs[0][0], outputs[1][0]
    shape = None if prompts is None else tuple(prompts.shape)
    expected = (info.num_patches, info.projection_dim) if info.num_patches else None
    if embedding.shape != (info.projection_dim,) or shape != expected:
        raise ValueError(
            f"the model makes rows of embedding {tuple(embedding.shape)} and prompt features {shape}; the index "
            f"holds ({info.projection_dim},) and {expected} (another crop size or patch size?)."
        )


def _commit_shard(output: Path, info: IndexInfo, videos: list[_OpenVideo], rank: int) -> Shard:
    good = [v for v in videos if v.failure is None]
    failed = [(v.video, v.failure) for v in videos if v.failure is not None]
    outputs = [row for v in good for row in v.outputs]
    spans = [span for v in good for span in v.spans]

    def stacked(column: int, present: bool) -> np.ndarray | None:
        return np.stack([o[column] for o in outputs]) if present and outputs else None

    rows = RowBatch(
        videos=[v.video for v in good for _ in v.outputs],
        starts=np.array([s for s, _ in spans], np.float64),
        ends=np.array([e for _, e in spans], np.float64),
        embeddings=stacked(0, True) if outputs else np.zeros((0, info.projection_dim), np.float32),
        prompt_values=stacked(1, info.num_patches > 0),
        prompt_scales=stacked(2, info.num_patches > 0 and info.settings.precision == "int8"),
    )
    return write_shard(output, info, rows, [(v.video, len(v.outputs)) for v in good], failed, rank)


__all__ = ["build_index", "video_rows", "IndexingResult"]

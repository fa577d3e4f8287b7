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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from ..fingerprint import model_fingerprint
from ..utils import check_positive_int, prefetch, unwrap_model
from ..video_io import URL_PREFIXES, fetch_video, iter_windows, require_backend
from .faiss_index import FaissInfo, FaissKind, faiss_key, load_or_build_faiss
from .format import (
    DEFAULT_MODEL_NAME,
    INDEX_FILE,
    LOCK_FILE,
    SHARDS_DIR,
    IndexInfo,
    IndexModelMismatchError,
    IndexSettings,
    RowBatch,
    Shard,
    create_index,
    quantize_prompt_features,
    read_info,
    read_manifest,
    require_extra,
    write_shard,
)

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

    from ..data.folders import find_videos

    check_positive_int(batch_size, "batch_size")
    check_positive_int(shard_size, "shard_size")
    require_extra("pyarrow")
    require_extra("faiss")
    output = Path(output)
    state = PartialState(cpu=_cpu_only(device))
    if state.num_processes == 1 and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ:
        logger.warning(
            "accelerate launch asked for several processes but started one: with --cpu it starts several only "
            "through MPI (--mpirun_hostfile). On a machine without GPUs use `accelerate launch --multi_gpu "
            "--num_processes N` or `torchrun --nproc_per_node N` (the processes then run on the CPU)."
        )
    existing = read_info(output) if output.is_dir() else None
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} exists and is not a folder.")
    if existing is None and output.is_dir() and any(not p.name.startswith(".") for p in output.iterdir()):
        raise ValueError(f"{output} is not empty and is not an hf_xclip video index (no {INDEX_FILE}).")
    loaded = load_index_model(model, adapter, processor, existing, device=device or state.device)
    if decode_backend is not None:  # `hf-xclip index --decode-backend`
        require_backend(decode_backend)
        loaded.video_processor.decode_backend = decode_backend
    given = {"window": window, "stride": stride, "num_frames": num_frames, "tail": tail, "precision": precision}
    info = _index_info(loaded, existing, given)
    if existing is not None:
        existing.check_model(info.video_fingerprint, info.text_fingerprint, f"the index {output}")

    lock = None
    error = None
    if state.is_main_process:
        try:
            lock = _IndexLock(output)
            if existing is None:
                create_index(output, info)
            for stale in (output / SHARDS_DIR).glob(".*.partial") if (output / SHARDS_DIR).is_dir() else ():
                stale.unlink(missing_ok=True)  # written by a run that was killed before committing it
        except (OSError, RuntimeError) as err:
            error = f"{type(err).__name__}: {err}"
    error = _broadcast(state, error)
    if error is not None:
        if lock is not None:
            lock.release()
        raise RuntimeError(f"cannot write the index {output}: {error}")
    try:
        videos, missing = find_videos(paths)
        videos = list(dict.fromkeys(video_key(v) for v in videos))
        if state.is_main_process:  # a damaged shard is set aside (its videos are redone) before anyone reads
            for path in read_manifest(output, repair=True).set_aside:
                logger.warning(f"set aside the damaged shard {path}: its videos are indexed again")
        state.wait_for_everyone()
        before = read_manifest(output)
        state.wait_for_everyone()  # every process has read the same committed state before any writes
        pending = [v for v in videos if v not in before.files and (retry_failed or v not in before.failed)]
        result = IndexingResult(
            output,
            skipped=sum(v in before.files for v in videos),
            previously_failed=[v for v in videos if v in before.failed and not retry_failed],
            missing=[(str(p), r) for p, r in missing],
        )
        with state.split_between_processes(pending) as mine:
            _index_videos(
                list(mine),
                output,
                info,
                loaded,
                batch_size,
                shard_size,
                num_workers,
                state.process_index,
                progress and state.is_main_process,
            )
        state.wait_for_everyone()
        after = read_manifest(output)
        if state.is_main_process:
            _, result.faiss = load_or_build_faiss(output, after.shards, kind=faiss_kind)
        state.wait_for_everyone()
        if result.faiss is None:  # other processes read what the main process wrote
            result.faiss = _faiss_info_on_disk(output, after.shards)
    finally:
        if lock is not None:
            lock.release()
    mine_now = set(pending)
    result.indexed = sum(v in after.files for v in mine_now)
    result.rows = sum(after.files.get(v, 0) for v in mine_now)
    result.failed = [(v, r) for v, r in after.failed.items() if v in mine_now]
    result.total_rows, result.total_videos = after.rows, len(after.files)
    return result


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


# -- the model ------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model ready to embed videos and queries: the model (eval mode, on its device), its video processor and
    tokenizer, where it came from, and its fingerprints."""

    model: Any
    video_processor: Any
    tokenizer: Any
    processor: Any
    name: str | None
    adapter: str | None
    video_fingerprint: str
    text_fingerprint: str

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def load_index_model(
    model: Any = None,
    adapter: str | os.PathLike | None = None,
    processor: Any = None,
    info: IndexInfo | None = None,
    *,
    tokenizer: Any = None,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """The model of an index: `model` (a name, or an object with `processor` / `tokenizer`), else the one `info`
    records (with its adapter), else the embedded default model; with its fingerprints.

    Raises:
        ValueError: the model or its processor cannot be loaded.
    """
    from ..loading import resolve_components

    if model is None and info is not None:
        if info.model is None:
            raise ValueError("the index does not record a model it can load: pass the model that built it.")
        model, adapter = info.model, adapter if adapter is not None else info.adapter
    if model is None:
        model = DEFAULT_MODEL_NAME
    name = None
    if isinstance(model, (str, os.PathLike)):
        from ..finetuning.adapters import load_model_with_adapter

        name = os.fspath(model)
        try:
            model, loaded_processor, _ = load_model_with_adapter(_model_source(name), adapter)
        except (OSError, ValueError) as err:
            with_adapter = f" with adapter {adapter}" if adapter else ""
            raise ValueError(f"cannot load model {name!r}{with_adapter}: {err}") from None
        processor = processor or loaded_processor
        name = _model_name(name)
        if adapter is not None:
            adapter = os.path.abspath(adapter) if os.path.exists(adapter) else os.fspath(adapter)
    else:
        model.eval()
        source = getattr(getattr(model, "config", None), "name_or_path", None) or getattr(model, "name_or_path", None)
        name = _model_name(source) if source else None
    if device is not None:
        model.to(device)
    from ..video_processing_xclip import XClipVideoProcessor

    core = unwrap_model(model)
    video_processor = None
    if isinstance(processor, XClipVideoProcessor):  # a video processor alone: the tokenizer comes from the model
        video_processor, processor = processor, None
    _, video_processor, tokenizer = resolve_components(
        getattr(core, "name_or_path", None) or None, processor, video_processor, tokenizer
    )
    return LoadedModel(
        model=model,
        video_processor=video_processor,
        tokenizer=tokenizer,
        processor=processor,
        name=name,
        adapter=None if adapter is None else os.fspath(adapter),
        **index_fingerprints(model),
    )


def index_fingerprints(model: Any) -> dict[str, str]:
    """Both sides' fingerprints, hashed in two threads (hashing and dtype conversion release the GIL)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        video, text = pool.map(lambda part: model_fingerprint(model, part), ("video", "text"))
    return {"video_fingerprint": video, "text_fingerprint": text}


def _model_source(name: str) -> str:
    if name == DEFAULT_MODEL_NAME:
        from ..embedded_model.location import default_model_path

        return default_model_path()
    return name


def _model_name(source: str) -> str:
    """How index.json names a model: the default model by `DEFAULT_MODEL_NAME`, a folder by its absolute path, a
    Hub id as it is."""
    from ..embedded_model.location import default_model_path

    try:
        if os.path.exists(source) and os.path.samefile(source, default_model_path()):
            return DEFAULT_MODEL_NAME
    except FileNotFoundError:
        pass
    return os.path.abspath(source) if os.path.exists(source) else source


def _index_info(loaded: LoadedModel, existing: IndexInfo | None, given: dict[str, Any]) -> IndexInfo:
    core = unwrap_model(loaded.model)
    config = core.config
    projection_dim = int(getattr(core, "embed_dim", None) or config.projection_dim)
    num_patches = 0
    capabilities = getattr(core, "capabilities", None)  # the video-text interface: no prompts outside X-CLIP
    if getattr(config, "use_prompt_generator", True) and (
        capabilities is None or capabilities.video_conditioned_prompts
    ):
        crop = loaded.video_processor.crop_size
        size = (crop["height"], crop["width"]) if isinstance(crop, dict) else (int(crop), int(crop))
        patch = config.vision_config.patch_size
        num_patches = (size[0] // patch) * (size[1] // patch)
    if existing is not None:
        recorded = asdict(existing.settings)
        differ = {
            k: (v, recorded[k])
            for k, v in given.items()
            if v is not None and v != recorded[k] and not (k == "stride" and given.get("window") is None)
        }
        if given.get("window") is not None and given.get("stride") is None and recorded["stride"] != given["window"]:
            differ.setdefault("stride", (given["window"], recorded["stride"]))
        if differ:
            raise ValueError(
                "this index was made with other settings: "
                + ", ".join(f"{k}={theirs!r} (given {mine!r})" for k, (mine, theirs) in differ.items())
                + "; append with the index's settings (leave them out) or build a new index."
            )
        if (existing.projection_dim, existing.num_patches) != (projection_dim, num_patches):
            raise IndexModelMismatchError(
                f"the index holds rows of {existing.projection_dim} x {existing.num_patches} patches, the model makes "
                f"{projection_dim} x {num_patches}."
            )
        return IndexInfo(
            loaded.name,
            loaded.adapter,
            loaded.video_fingerprint,
            loaded.text_fingerprint,
            projection_dim,
            num_patches,
            existing.settings,
            existing.created,
        )
    settings = IndexSettings(
        window=given["window"],
        stride=given["stride"],
        num_frames=given["num_frames"] or int(config.vision_config.num_frames),
        tail=given["tail"] or "shift",
        precision=given["precision"] or "int8",
    )
    return IndexInfo(
        loaded.name,
        loaded.adapter,
        loaded.video_fingerprint,
        loaded.text_fingerprint,
        projection_dim,
        num_patches,
        settings,
    )


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
    windows = iter_windows(
        source,
        window=settings.window,
        stride=settings.stride,
        num_frames=frames,
        tail=settings.tail,
        short_side=video_processor.decode_short_side,
        backend=video_processor.decode_backend,
        num_threads=video_processor.decode_threads,
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
    rank: int,
    progress: bool,
) -> None:
    """Embed `videos` and commit them in shards of about `shard_size` rows (whole videos only). Decoding runs
    ahead in `num_workers` threads and each shard is written by a background thread while the model goes on (one
    write at a time, in order)."""
    from tqdm.auto import tqdm

    if not videos:
        return
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
            writing.append(writer.submit(_commit_shard, output, info, list(ready), rank))
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


@torch.inference_mode()
def embed_videos(model: Any, pixel_values: torch.Tensor, precision: str = "int8"):
    """``(embeddings (B, D) float32, prompt values, prompt scales)`` of a batch of videos as an index stores them
    (prompt values / scales are per row lists of arrays, or None per row without a prompt generator)."""
    param = next(model.parameters())
    pixels = pixel_values.to(device=param.device, dtype=param.dtype)
    out = model.get_video_features(pixels, output_prompt_features=True, return_dict=True)
    embeddings = out.pooler_output.float().cpu().numpy()
    if out.prompt_features is None:
        return list(embeddings), [None] * len(embeddings), [None] * len(embeddings)
    values, scales = quantize_prompt_features(out.prompt_features, precision)
    return list(embeddings), list(values), [None] * len(values) if scales is None else list(scales)


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


__all__ = [
    "build_index",
    "embed_videos",
    "index_fingerprints",
    "load_index_model",
    "unwrap_model",
    "video_rows",
    "IndexingResult",
    "LoadedModel",
]

"""What the app's tabs do, as plain functions over an [`AppState`] (testable without Gradio): `classify`,
`timeline` (with `timeline_files`) and `search` (with `search_thumbnails` and `window_clip`).

The state holds the model, loaded once through the command line's loader (`hf_xclip.cli.load_pipeline`, so the app
accepts what the commands accept) and kept warm; the pipeline's text cache keeps label embeddings across requests.
Every problem a user can cause (a file that is not a video, an upload over the limit, an unknown label file, a
model or index that cannot be loaded) raises [`AppError`] with one sentence naming it; the server shows that
sentence in the page.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .clips import DemoClip, write_demo_clips

logger = logging.getLogger(__name__)

# Called with (fraction done in [0, 1], what is being done): Gradio's progress, or None.
Progress = Callable[[float, str], Any] | None


class AppError(ValueError):
    """A problem with what the user gave (file, labels, options, model, index), shown as a message in the page."""


@dataclass
class AppConfig:
    """Options of `hf-xclip app` (and of `hf_xclip.app.launch`)."""

    model: str | None = field(default=None, metadata={"help": "Model folder or Hub id (default: the embedded one)."})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter loaded onto the model."})
    label_bank: str | None = field(
        default=None, metadata={"help": "Label bank (hf-xclip labels encode) offered as the labels to score."}
    )
    index: str | None = field(default=None, metadata={"help": "Video index (hf-xclip index) of the Search tab."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind; 0.0.0.0 exposes the app."})
    port: int = field(default=7860, metadata={"help": "Port to listen on (0: a free one)."})
    share: bool = field(default=False, metadata={"help": "Open a public gradio.live tunnel (off by default)."})
    max_upload_mb: float = field(default=200.0, metadata={"help": "Uploads larger than this are refused (MiB)."})
    device: str | None = field(default=None, metadata={"help": "Torch device (default: first GPU if any)."})
    demo_clips: int = field(default=4, metadata={"help": "Generated single-action clips offered (0: none)."})
    workdir: str | None = field(
        default=None, metadata={"help": "Where generated clips, thumbnails and downloads go (default: a temp dir)."}
    )

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0:
            raise ValueError(f"max_upload_mb must be positive, got {self.max_upload_mb!r}")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port must lie in [0, 65535], got {self.port!r}")
        if self.demo_clips < 0:
            raise ValueError(f"demo_clips must be >= 0, got {self.demo_clips!r}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class AppState:
    """The app's long-lived objects, each made once on first use: the pipeline, the label bank, the generated
    clips, opened indexes. Model calls are serialised by a lock (Gradio runs handlers in threads)."""

    def __init__(self, config: AppConfig | None = None) -> None:
        self.config = config or AppConfig()
        self.lock = threading.RLock()
        self._classifier: Any = None
        self._load_error: str | None = None
        self._bank: Any = None
        self._clips: list[DemoClip] | None = None
        self._indexes: dict[str, Any] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        if self.config.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hf-xclip-app-")
            self.workdir = Path(self._tmp.name)
        else:
            self.workdir = Path(self.config.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def warm_up(self) -> None:
        """Load the model, the label bank and the `--index` now (instead of on the first request); raises
        `AppError` when one cannot be loaded."""
        classifier = self.classifier
        _ = self.bank
        if self.config.index:
            self.index(self.config.index)
        with self.lock:  # one forward pass on blank frames, so that the first request does not pay torch's start-up
            count = getattr(classifier.video_processor, "num_frames", None) or 8
            frames = np.zeros((count, 64, 64, 3), dtype=np.uint8)
            try:
                classifier(frames, candidate_labels=["warm-up"])
            except (ValueError, OSError, RuntimeError) as err:  # not a reason to refuse to serve
                logger.warning("hf-xclip app: warm-up classification failed: %s", err)
            classifier.clear_text_cache()  # the cache holds what users asked for only

    # -- long-lived objects ---------------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        from ..cli import UsageError, model_or_default

        try:
            return model_or_default(self.config.model)
        except UsageError as err:
            raise AppError(str(err)) from None

    @property
    def classifier(self) -> Any:
        """The zero-shot pipeline, loaded on first use (`hf_xclip.cli.load_pipeline`); a model that cannot be
        loaded raises `AppError` now and on every later call."""
        with self.lock:
            if self._classifier is None and self._load_error is None:
                from ..cli import UsageError, load_pipeline

                try:
                    self._classifier = load_pipeline(self.model_name, self.config.device, adapter=self.config.adapter)
                except (UsageError, AppError) as err:
                    self._load_error = str(err)
            if self._load_error is not None:
                raise AppError(self._load_error)
            return self._classifier

    @property
    def bank(self) -> Any:
        """The `--label-bank` (a `LabelBank`), or None."""
        if self.config.label_bank is None:
            return None
        with self.lock:
            if self._bank is None:
                from ..cli import UsageError, read_bank_argument

                try:
                    self._bank = read_bank_argument(Path(self.config.label_bank))
                except UsageError as err:
                    raise AppError(str(err)) from None
            return self._bank

    @property
    def clips(self) -> list[DemoClip]:
        """The generated clips (written on first use)."""
        with self.lock:
            if self._clips is None:
                count = self.config.demo_clips
                self._clips = write_demo_clips(self.workdir / "clips", count) if count else []
            return self._clips

    def clip(self, name: str) -> DemoClip:
        for clip in self.clips:
            if clip.name == name:
                return clip
        raise AppError(f"no generated clip named {name!r}; pick one of the list")

    def index(self, path: str | None) -> Any:
        """The `VideoIndex` at `path` (default `--index`), opened once. It is searched with the app's model when
        that model built it, else with the model the index records (as `hf-xclip search` does)."""
        path = (path or "").strip() or self.config.index
        if not path:
            raise AppError("no video index: start the app with --index INDEX, or type an index folder")
        key = os.path.abspath(path)
        with self.lock:
            if key not in self._indexes:
                self._indexes[key] = self._open_index(path)
            return self._indexes[key]

    def _open_index(self, path: str) -> Any:
        from ..search import IndexModelMismatchError, VideoIndex

        try:
            if not Path(path).is_dir():
                raise FileNotFoundError(f"video index {path} not found")
            try:
                classifier = self.classifier
                return VideoIndex.open(
                    path, classifier.model, processor=classifier.video_processor, tokenizer=classifier.tokenizer
                )
            except (IndexModelMismatchError, AppError):
                return VideoIndex.open(path)  # the model the index records
        except (IndexModelMismatchError, ValueError, FileNotFoundError, ImportError, OSError) as err:
            raise AppError(f"cannot open the index {path}: {err}") from None

    # -- inputs ---------------------------------------------------------------------------------------------------

    def video_path(self, upload: str | None, clip_name: str | None = None) -> str:
        """The video to work on: an uploaded file (checked: exists, within the size limit), else a generated clip."""
        if upload:
            path = Path(upload)
            if not path.is_file():
                raise AppError(f"the uploaded video {path.name} is missing on the server; upload it again")
            size = path.stat().st_size
            if size > self.config.max_upload_bytes:
                raise AppError(
                    f"the video {path.name} is {size / 2**20:.1f} MiB, over the limit of "
                    f"{self.config.max_upload_mb:g} MiB (hf-xclip app --max-upload-mb)"
                )
            if size == 0:
                raise AppError(f"the video {path.name} is empty")
            return str(path)
        if clip_name:
            return str(self.clip(clip_name).path)
        raise AppError("upload a video or pick a generated clip")

    def labels(self, text: str | None, label_file: str | None = None, use_bank: bool = False):
        """``(labels, bank)`` for the pipeline: typed labels (comma- or line-separated), else a label file, else
        every label of the bank (labels given with the bank are looked up in it)."""
        from ..cli import UsageError, read_labels

        text = (text or "").replace("\n", ",").strip().strip(",")
        bank = self.bank if use_bank else None
        if use_bank and bank is None:
            raise AppError("no label bank: start the app with --label-bank BANK")
        try:
            if text:
                return read_labels(text, None), bank
            if label_file:
                return read_labels(None, Path(label_file)), bank
        except UsageError as err:
            raise AppError(str(err)) from None
        if bank is not None:
            return None, bank
        raise AppError("type some labels (comma-separated), or give a label file")


# ----------------------------------------------------------------------------------------------------------------
# Classify


def classify(
    state: AppState,
    video: str | None,
    labels: str | None = None,
    *,
    clip: str | None = None,
    label_file: str | None = None,
    use_bank: bool = False,
    multi_label: bool = False,
    threshold: float | None = None,
    top_k: int | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """``(video path, predictions)``: the pipeline's ``[{"label", "score"}, ...]`` for the video, best first
    (exactly a call of the pipeline with these options)."""
    path = state.video_path(video, clip)
    candidates, bank = state.labels(labels, label_file, use_bank)
    threshold = _threshold(threshold, multi_label)
    classifier = state.classifier
    with _scoring(state, path, video):
        predictions = classifier(
            path,
            candidate_labels=candidates,
            label_bank=bank,
            multi_label=multi_label,
            threshold=threshold,
            top_k=top_k or None,
        )
    return path, predictions


@contextlib.contextmanager
def _scoring(state: AppState, path: str, upload: str | None) -> Iterator[None]:
    """Holds the model's lock; what the library says about a video it cannot read becomes an `AppError` naming the
    upload."""
    with state.lock:
        try:
            yield
        except (ValueError, OSError) as err:
            raise AppError(_video_message(path, upload, err)) from None


def _threshold(threshold: float | None, multi_label: bool) -> float | None:
    if threshold is None or (not multi_label and threshold <= 0):
        return None
    if not 0 <= threshold <= 1:
        raise AppError(f"the threshold must lie in [0, 1], got {threshold:g}")
    return float(threshold)


def _video_message(path: str, upload: str | None, err: Exception) -> str:
    text = str(err)
    name = Path(upload).name if upload else Path(path).name
    if path in text:  # the library names the file by its full (temporary) path: name the upload instead
        text = text.replace(path, name)
    return text if name in text else f"{name}: {text}"


# ----------------------------------------------------------------------------------------------------------------
# Timeline


def timeline(
    state: AppState,
    video: str | None,
    labels: str | None = None,
    *,
    clip: str | None = None,
    label_file: str | None = None,
    use_bank: bool = False,
    window: float = 2.0,
    stride: float | None = None,
    multi_label: bool = False,
    threshold: float | None = None,
    progress: Progress = None,
) -> Any:
    """The `hf_xclip.timeline.Timeline` of the video (`video_timeline` with these options, the defaults of
    `hf-xclip timeline` otherwise)."""
    from ..timeline import TimelineConfig, video_timeline

    path = state.video_path(video, clip)
    candidates, bank = state.labels(labels, label_file, use_bank)
    try:
        config = TimelineConfig(
            window=float(window),
            stride=float(stride) if stride else None,
            multi_label=multi_label,
            threshold=_threshold(threshold, multi_label),
        )
    except ValueError as err:
        raise AppError(str(err).replace("`", "")) from None
    classifier = state.classifier
    total = _window_count(path, config) if progress is not None else 1
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(min(1.0, done / max(1, total)), "scoring windows")

    with _scoring(state, path, video):
        return video_timeline(classifier, path, candidates, config, label_bank=bank, progress=tick)


def _window_count(path: str, config: Any) -> int:
    from ..video_io import probe_video, window_spans

    try:
        info = probe_video(path, broken_tail="keep")
        if info.duration is None:  # unknown length: one window, as for an unreadable probe
            return 1
        return len(window_spans(info.duration, config.window, config.effective_stride))
    except (ValueError, TypeError):
        return 1


def timeline_files(state: AppState, result: Any, top_labels: int = 20) -> dict[str, Path]:
    """Write the timeline's ``plot`` (PNG heat strip), ``json`` and ``csv`` into a fresh folder of the work
    directory; their paths."""
    out = Path(tempfile.mkdtemp(prefix="timeline-", dir=state.workdir))
    stem = Path(result.video).stem or "timeline"
    files = {
        "json": out / f"{stem}.timeline.json",
        "csv": out / f"{stem}.timeline.csv",
        "plot": out / f"{stem}.timeline.png",
    }
    result.to_json(files["json"])
    result.to_csv(files["csv"])
    try:
        result.plot(files["plot"], top_labels=top_labels, dpi=80)
    except ImportError:  # matplotlib missing: no strip, the rest still works
        del files["plot"]
    return files


def segment_rows(result: Any) -> list[list[Any]]:
    """One row per segment: label, start, end (seconds), score."""
    return [[s.label, round(s.start, 3), round(s.end, 3), round(float(s.score), 4)] for s in result.segments]


# ----------------------------------------------------------------------------------------------------------------
# Search


def search(state: AppState, query: str | None, index_path: str | None = None, top_k: int = 8) -> list[dict[str, Any]]:
    """``[{"video", "start", "end", "score"}, ...]`` best first: `VideoIndex.search` of the index, as
    `hf-xclip search INDEX TEXT --top-k K --json` prints it."""
    if not (query or "").strip():
        raise AppError("type what to look for")
    text = cast(str, query).strip()  # not None: an empty query was refused above
    k: object = top_k  # Gradio's Number sends floats
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if not isinstance(k, int) or k < 1:
        raise AppError(f"top-k must be a positive whole number, got {k!r}")
    index = state.index(index_path)
    with state.lock:
        try:
            return index.search(text, k)
        except (ValueError, OSError) as err:
            raise AppError(str(err)) from None


def search_thumbnails(state: AppState, results: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    """``(image path, caption)`` per result: the frame at the start of its window (None when the video cannot be
    read any more) and "rank. video start-end s · score"."""
    items = []
    for rank, item in enumerate(results, start=1):
        caption = f"{rank}. {Path(item['video']).stem} {item['start']:g}-{item['end']:g} s · {item['score']:.1f}"
        items.append((_start_frame(state, item), caption))
    return items


def _start_frame(state: AppState, item: dict[str, Any]) -> str | None:
    from PIL import Image

    from ..video_io import clip_frame_range, probe_video, read_frames

    out = state.workdir / "thumbnails" / f"{_media_key(item)}.png"
    if out.is_file():
        return str(out)
    try:
        info = probe_video(item["video"])
        first, _ = clip_frame_range(info.num_frames, info.fps, item["start"], item["end"])
        frames, _ = read_frames(item["video"], [first], short_side=240, info=info)
    except (ValueError, OSError):
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frames[0]).save(out)
    return str(out)


def window_clip(state: AppState, item: dict[str, Any]) -> str:
    """An mp4 of the result's window alone (from its start to its end), to play in the page."""
    from ..data.video_writer import write_video
    from ..video_io import clip_frame_range, probe_video, read_frames

    out = state.workdir / "windows" / f"{_media_key(item)}.mp4"
    if out.is_file():
        return str(out)
    try:
        info = probe_video(item["video"])
        first, stop = clip_frame_range(info.num_frames, info.fps, item["start"], item["end"])
        frames, _ = read_frames(item["video"], list(range(first, stop)), short_side=360, info=info)
    except (ValueError, OSError) as err:
        raise AppError(f"cannot play {Path(item['video']).name}: {err}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # even sizes for yuv420p
    return str(write_video(out, frames, fps=round(info.fps or 25), crf=20, faststart=True))


def _media_key(item: dict[str, Any]) -> str:
    import hashlib

    text = f"{os.path.abspath(item['video'])}|{item['start']:.6f}|{item['end']:.6f}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


__all__ = [
    "AppConfig",
    "AppError",
    "AppState",
    "classify",
    "search",
    "search_thumbnails",
    "segment_rows",
    "timeline",
    "timeline_files",
    "window_clip",
]

"""The Gradio page of `hf-xclip app`: three tabs (Classify, Timeline, Search) over the handlers of
`hf_xclip.app.handlers`, and `launch`.

Every event goes through `_shown_errors`: an `AppError` (or any other failure) becomes a `gr.Error` message in the
page, never a stack trace. The API names of the events (``/classify``, ``/timeline``, ``/search``) are what
`gradio_client` calls.
"""

from __future__ import annotations

import functools
import logging
import socket
from pathlib import Path
from typing import Any

from .handlers import (
    AppConfig,
    AppError,
    AppState,
    classify,
    search,
    search_thumbnails,
    segment_rows,
    timeline,
    timeline_files,
    window_clip,
)

gr: Any
try:
    import gradio as gr
except ImportError:  # importable without Gradio (API listings, doctests); `build_app` / `launch` need it
    gr = None

logger = logging.getLogger(__name__)

TITLE = "hf-xclip"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

# Clicking a segment row puts its start time into a hidden number; this seeks the timeline's player there.
SEEK_JS = """(seconds) => {
  const video = document.querySelector('#timeline-video video');
  if (video && seconds !== null && seconds >= 0) { video.currentTime = seconds; video.play().catch(() => {}); }
  return seconds;
}"""

CSS = """
#timeline-strip img { object-fit: contain; }
.hfx-note { font-size: 0.9em; opacity: 0.8; }
"""


def _shown_errors(fn):
    """Run a handler; what goes wrong reaches the page as one message (`gr.Error`), the traceback only the log."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except AppError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # a bug or an environment problem: a message in the page, the trace in the log
            logger.exception("hf-xclip app: %s failed", fn.__name__)
            raise gr.Error(f"{type(err).__name__}: {err}", print_exception=False) from None

    return wrapper


def require_gradio() -> None:
    """Raises `ImportError` naming the extra to install when Gradio is missing."""
    if gr is None:
        raise ImportError("the app needs Gradio: pip install 'hf_xclip[app]'")


def build_app(state: AppState):
    """The page (a `gr.Blocks`): a header naming the model, then the Classify, Timeline and Search tabs."""
    require_gradio()
    config = state.config
    clips = state.clips
    names = [clip.name for clip in clips]
    singles = [clip for clip in clips if len(clip.labels) == 1]
    sequence = clips[-1] if clips else None
    bank_note = f" · label bank {Path(config.label_bank).name}" if config.label_bank else ""
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(
            f"## hf-xclip: zero-shot video classification, timelines and search\n"
            f"model `{_display_model(state)}`{' + adapter `' + config.adapter + '`' if config.adapter else ''}"
            f"{bank_note}",
            elem_id="header",
        )
        with gr.Tab("Classify", id="classify"):
            _classify_tab(state, names, singles[0] if singles else None)
        with gr.Tab("Timeline", id="timeline"):
            _timeline_tab(state, names, sequence)
        with gr.Tab("Search", id="search"):
            _search_tab(state)
        # Called once by `launch` (Gradio's first event pays ~1 s of start-up; users should not).
        ready = gr.Textbox(visible=False)
        gr.Button(visible=False).click(lambda: "ready", None, ready, api_name="warm_up", api_visibility="undocumented")
    return app


def _display_model(state: AppState) -> str:
    try:
        name = state.model_name
    except AppError as err:
        return f"(none: {err})"
    from ..embedded_model import default_model_path

    try:
        return "embedded default model" if name == default_model_path() else name
    except FileNotFoundError:
        return name


def _video_and_label_inputs(state: AppState, names: list[str], first, prefix: str):
    """An upload box, the generated clips (`first` selected, its labels filled in) and the label inputs."""
    upload = gr.Video(label="upload a video", sources=["upload"], height=200, elem_id=f"{prefix}-upload")
    clip = gr.Dropdown(
        names, value=first.name if first else None, label="or a generated clip", elem_id=f"{prefix}-clip"
    )
    return (upload, clip, *_label_inputs(state, ", ".join(first.choices) if first else "", prefix))


def _label_inputs(state: AppState, default: str, prefix: str):
    labels = gr.Textbox(
        label="labels (comma-separated or one per line)", value=default, lines=3, elem_id=f"{prefix}-labels"
    )
    with gr.Accordion("label file or bank", open=False):
        label_file = gr.File(
            label="label file (one label per line, or a CSV with a 'name' column)",
            file_types=[".txt", ".csv", ".tsv"],
            type="filepath",
            elem_id=f"{prefix}-label-file",
        )
        use_bank = gr.Checkbox(
            label="score the labels of the label bank (leave the labels empty for all of them)",
            value=False,
            visible=state.config.label_bank is not None,
        )
    return labels, label_file, use_bank


def _classify_tab(state: AppState, names: list[str], first) -> None:
    with gr.Row():
        with gr.Column():
            upload, clip, labels, label_file, use_bank = _video_and_label_inputs(state, names, first, "classify")
            with gr.Row():
                multi_label = gr.Checkbox(label="multi-label (a probability per label)", value=False)
                threshold = gr.Slider(0, 1, value=0.0, step=0.01, label="threshold (0: none)")
                top_k = gr.Slider(0, 50, value=0, step=1, label="top-k (0: all)")
            run = gr.Button("Classify", variant="primary", elem_id="classify-run")
        with gr.Column():
            # The clip plays here from the moment it is picked or uploaded: a classification does not send it
            # again (a video output costs an ffprobe per request).
            player = gr.Video(
                str(first.path) if first else None,
                label="clip",
                interactive=False,
                autoplay=True,
                loop=True,
                height=320,
                elem_id="classify-video",
            )
            bars = gr.Label(label="scores", elem_id="classify-scores")
            exact = gr.JSON(label="scores (exact)", elem_id="classify-json")

    @_shown_errors
    def on_classify(video, clip_name, text, file, bank, multi, threshold_value, k):
        _, predictions = classify(
            state,
            video,
            text,
            clip=clip_name,
            label_file=file,
            use_bank=bank,
            multi_label=multi,
            threshold=threshold_value,
            top_k=int(k or 0),
        )
        chart = {item["label"]: float(item["score"]) for item in predictions}
        return gr.Label(chart, num_top_classes=len(chart) or None), predictions

    run.click(
        on_classify,
        [upload, clip, labels, label_file, use_bank, multi_label, threshold, top_k],
        [bars, exact],
        api_name="classify",
    )
    clip.change(_clip_labels(state), clip, labels, api_visibility="private")
    shown = _shown_video(state)
    clip.change(shown, [upload, clip], player, api_visibility="private")
    upload.change(shown, [upload, clip], player, api_visibility="private")


def _shown_video(state: AppState):
    @_shown_errors
    def video_of(upload, clip_name):
        if upload:
            return upload
        return str(state.clip(clip_name).path) if clip_name else None

    return video_of


def _clip_labels(state: AppState):
    @_shown_errors
    def labels_of(name):
        if not name:
            return gr.update()
        return ", ".join(state.clip(name).choices)

    return labels_of


def _timeline_tab(state: AppState, names: list[str], sequence) -> None:
    with gr.Row():
        with gr.Column():
            upload, clip, labels, label_file, use_bank = _video_and_label_inputs(state, names, sequence, "timeline")
            with gr.Row():
                window = gr.Number(value=2.0, label="window (s)")
                stride = gr.Number(value=0.5, label="stride (s, 0: window / 2)")
            with gr.Row():
                multi_label = gr.Checkbox(label="multi-label", value=False)
                threshold = gr.Slider(0, 1, value=0.0, step=0.01, label="threshold (0: none; multi-label 0.5)")
            run = gr.Button("Find when", variant="primary", elem_id="timeline-run")
        with gr.Column():
            player = gr.Video(label="video", interactive=False, height=320, elem_id="timeline-video")
            strip = gr.Image(label="labels x time", type="filepath", interactive=False, elem_id="timeline-strip")
            segments = gr.Dataframe(
                headers=["label", "start", "end", "score"],
                label="segments (click to seek)",
                interactive=False,
                elem_id="timeline-segments",
            )
            downloads = gr.File(
                label="download JSON / CSV", file_count="multiple", interactive=False, elem_id="timeline-files"
            )
            seek = gr.Number(value=-1, visible=False, elem_id="timeline-seek")

    @_shown_errors
    def on_timeline(
        video, clip_name, text, file, bank, window_s, stride_s, multi, threshold_value, progress=gr.Progress()
    ):  # noqa: B008 (Gradio's idiom)
        progress(0, desc="reading the video")
        threshold_value = threshold_value or (None if not multi else 0.5)
        result = timeline(
            state,
            video,
            text,
            clip=clip_name,
            label_file=file,
            use_bank=bank,
            window=window_s,
            stride=stride_s or None,
            multi_label=multi,
            threshold=threshold_value,
            progress=lambda done, what: progress(done, desc=what),
        )
        files = timeline_files(state, result)
        rows = segment_rows(result)
        return (
            result.video,
            files.get("plot"),
            rows or [["(no segments)", None, None, None]],
            [str(files["json"]), str(files["csv"])],
        )

    run.click(
        on_timeline,
        [upload, clip, labels, label_file, use_bank, window, stride, multi_label, threshold],
        [player, strip, segments, downloads],
        api_name="timeline",
    )
    clip.change(_clip_labels(state), clip, labels, api_visibility="private")

    def on_select(table, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            start = float(table.iloc[row]["start"])
        except (IndexError, KeyError, TypeError, ValueError):
            return gr.update()
        return start

    segments.select(on_select, segments, seek, api_visibility="private")
    seek.change(None, seek, seek, js=SEEK_JS, api_visibility="private")


def _search_tab(state: AppState) -> None:
    config = state.config
    with gr.Row():
        with gr.Column(scale=1):
            index = gr.Textbox(
                label="video index folder (hf-xclip index)",
                value=config.index or "",
                interactive=config.index is None,
                elem_id="search-index",
                placeholder="/path/to/videos.index",
            )
            query = gr.Textbox(label="what to look for", placeholder="a red circle moving left", elem_id="search-query")
            top_k = gr.Slider(1, 50, value=8, step=1, label="results")
            run = gr.Button("Search", variant="primary", elem_id="search-run")
            player = gr.Video(
                label="window", interactive=False, autoplay=True, loop=True, height=280, elem_id="search-video"
            )
        with gr.Column(scale=2):
            gallery = gr.Gallery(
                label="best windows (start frame; click to play)",
                columns=4,
                height="auto",
                allow_preview=False,
                elem_id="search-gallery",
            )
            results = gr.JSON(label="results", max_height=320, elem_id="search-json")

    shown = gr.State([])  # the results the gallery shows, in its order (a result without a thumbnail is left out)

    @_shown_errors
    def on_search(index_path, text, k, progress=gr.Progress()):  # noqa: B008
        progress(0, desc="opening the index")
        found = search(state, text, index_path, int(k))
        progress(0.8, desc="thumbnails")
        items = [
            (item, image, caption)
            for item, (image, caption) in zip(found, search_thumbnails(state, found))
            if image is not None
        ]
        best = window_clip(state, found[0]) if found else None
        return [(image, caption) for _, image, caption in items], found, best, [item for item, _, _ in items]

    run.click(on_search, [index, query, top_k], [gallery, results, player, shown], api_name="search")
    query.submit(on_search, [index, query, top_k], [gallery, results, player, shown], api_visibility="private")

    @_shown_errors
    def on_pick(items, evt: gr.SelectData):
        if not items or evt.index is None or evt.index >= len(items):
            return gr.update()
        return window_clip(state, items[evt.index])

    gallery.select(on_pick, shown, player, api_visibility="private")


# ----------------------------------------------------------------------------------------------------------------
# Serving


def host_warning(host: str) -> str | None:
    """The warning printed when the app listens beyond this machine."""
    if host in LOCAL_HOSTS:
        return None
    return (
        f"hf-xclip app: warning: listening on {host}: anyone who can reach this machine can use the app, read "
        "the videos of the index and upload files; there is no login. Use 127.0.0.1 (the default) unless you "
        "mean it."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at `host` now (for ``port=0``)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def launch(config: AppConfig, *, state: AppState | None = None, block: bool = True, quiet: bool = False):
    """Build the page and serve it on ``config.host:config.port`` (no share tunnel unless ``config.share``);
    uploads over ``config.max_upload_mb`` are refused by the server. Returns ``(app, url)``; with ``block`` it
    serves until interrupted."""
    state = state or AppState(config)
    app = build_app(state)
    app.queue(default_concurrency_limit=1)
    _, url, _ = app.launch(
        server_name=config.host,
        server_port=config.port or free_port(config.host),
        share=config.share,
        max_file_size=config.max_upload_bytes,
        prevent_thread_lock=True,
        quiet=quiet,
        show_error=True,
        footer_links=["api"],
        css=CSS,
        allowed_paths=[str(state.workdir)],
    )
    _first_event(url)
    if block:
        app.block_thread()
    return app, url


def _first_event(url: str) -> None:
    """Run the hidden ``warm_up`` event once, through the queue, before anyone else does."""
    import httpx

    try:
        event = httpx.post(f"{url}gradio_api/call/warm_up", json={"data": []}, timeout=60).json()["event_id"]
        httpx.get(f"{url}gradio_api/call/warm_up/{event}", timeout=60)
    except (httpx.HTTPError, KeyError, ValueError) as err:
        logger.warning("hf-xclip app: warm-up request failed: %s", err)


__all__ = ["build_app", "free_port", "host_warning", "launch", "require_gradio"]

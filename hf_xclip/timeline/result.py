"""The [`Timeline`] a run returns and its views: JSON (`to_json` / `load`), CSV, the heat-strip plot and the HTML
page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import atomic_write_text
from .config import TimelineConfig
from .segments import Segment, _seconds, _segment_options, find_segments, window_cells

# Videos up to this size are embedded in the HTML page (base64); larger ones are linked by a relative path.
HTML_EMBED_LIMIT = 64 * 2**20
_VIDEO_MIME = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
}


# ----------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Timeline:
    """Per-window scores of a video and the segments found in them (what `video_timeline` returns).

    Attributes:
        video: the video's path (or a description of the input).
        duration: seconds of the video (from its frames' timestamps); fps: its average frame rate.
        window / stride: the windowing, in seconds.
        labels: the candidate labels, score column order.
        spans: ``(W, 2)`` start and end of each window in seconds.
        scores: ``(W, K)`` float32 scores of each window (before any smoothing).
        segments: the segments, by start time.
        config: the options the timeline was made (and segmented) with.
        truncated: ``None``, or why the windows stop before the end of the video (a broken tail).
        warnings: anything a reader of the results should know (e.g. the header announces a longer video).
        stats: counters of the run: ``frames_decoded`` (by the decoder), ``frames_needed`` (distinct frames the
            windows sample; each was converted once), ``seconds`` (wall time), ``forward_seconds`` (model time),
            ``backend``, ``model``.
    """

    video: str
    duration: float
    fps: float | None
    window: float
    stride: float
    labels: list[str]
    spans: np.ndarray
    scores: np.ndarray
    segments: list[Segment]
    config: TimelineConfig = field(default_factory=TimelineConfig)
    truncated: str | None = None
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        return self.config.multi_label

    def resegment(self, **options: Any) -> Timeline:
        """A copy with segments found again with other segmentation options (``smoothing``, ``threshold``,
        ``min_gap``, ``min_duration``; the scores are not recomputed)."""
        allowed = {"smoothing", "threshold", "min_gap", "min_duration"}
        unknown = set(options) - allowed
        if unknown:
            raise TypeError(f"resegment() takes only {sorted(allowed)}, got {sorted(unknown)}")
        config = replace(self.config, **options)
        segments = find_segments(self.spans, self.scores, self.labels, **_segment_options(config))
        return replace(self, config=config, segments=segments)

    def top_labels(self, count: int) -> list[str]:
        """Up to `count` labels to show: those with the most segment time first, then the highest-scoring others;
        labels with segments in order of their first segment, the others after them by peak score."""
        first: dict[str, float] = {}
        total: dict[str, float] = {}
        for segment in self.segments:
            first.setdefault(segment.label, segment.start)
            total[segment.label] = total.get(segment.label, 0.0) + segment.duration
        peaks = self.scores.max(axis=0).tolist() if len(self.scores) else [0.0] * len(self.labels)
        peak = dict(zip(self.labels, peaks))
        chosen = sorted(total, key=lambda label: (-total[label], first[label]))[:count]
        chosen.sort(key=lambda label: first[label])
        rest = sorted((label for label in self.labels if label not in total), key=lambda label: -peak[label])
        return chosen + rest[: count - len(chosen)]

    # -- serialisation ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: ``video``, ``duration``, ``fps``, ``window``, ``stride``, ``windows`` (``start``,
        ``end``, ``scores`` per label), ``segments`` (``label``, ``start``, ``end``, ``score``), plus ``labels``,
        ``multi_label``, ``threshold``, ``options``, ``truncated``, ``warnings`` and ``stats``."""
        config = asdict(self.config)
        if isinstance(config.get("hypothesis_template"), tuple):
            config["hypothesis_template"] = list(config["hypothesis_template"])
        return {
            "video": self.video,
            "duration": _seconds(self.duration),
            "fps": self.fps,
            "window": float(self.window),
            "stride": float(self.stride),
            "labels": list(self.labels),
            "multi_label": self.multi_label,
            "multi_label_method": self.stats.get("multi_label_method"),
            "threshold": self.config.effective_threshold,
            "windows": [
                {
                    "start": _seconds(a),
                    "end": _seconds(b),
                    "scores": {label: round(float(s), 6) for label, s in zip(self.labels, row)},
                }
                for (a, b), row in zip(self.spans.tolist(), self.scores)
            ],
            "segments": [segment.to_dict() for segment in self.segments],
            "options": config,
            "truncated": self.truncated,
            "warnings": list(self.warnings),
            "stats": dict(self.stats),
        }

    def to_json(self, path: str | os.PathLike | None = None, indent: int | None = 1) -> str:
        """The JSON text of [`to_dict`]; written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """The timeline of a [`to_dict`] document (e.g. to plot or re-segment it without the model)."""
        try:
            labels = list(data.get("labels") or (data["windows"][0]["scores"] if data["windows"] else []))
            spans = np.array([[w["start"], w["end"]] for w in data["windows"]], dtype=np.float64).reshape(-1, 2)
            scores = np.array([[w["scores"][label] for label in labels] for w in data["windows"]], dtype=np.float32)
            known = {f.name for f in fields(TimelineConfig)}
            options = {k: v for k, v in (data.get("options") or {}).items() if k in known}
            if isinstance(options.get("hypothesis_template"), list):
                options["hypothesis_template"] = tuple(options["hypothesis_template"])
            config = TimelineConfig(**{"window": data["window"], "stride": data["stride"], **options})
            return cls(
                video=data["video"],
                duration=float(data["duration"]),
                fps=data.get("fps"),
                window=float(data["window"]),
                stride=float(data["stride"]),
                labels=labels,
                spans=spans,
                scores=scores.reshape(len(spans), len(labels)),
                segments=[
                    Segment(s["label"], float(s["start"]), float(s["end"]), float(s["score"])) for s in data["segments"]
                ],
                config=config,
                truncated=data.get("truncated"),
                warnings=list(data.get("warnings") or []),
                stats=dict(data.get("stats") or {}),
            )
        except (KeyError, TypeError, IndexError) as err:
            raise ValueError(f"not a timeline document: missing or malformed {err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Timeline:
        """Read a timeline written by [`to_json`].

        Raises:
            ValueError: naming the file, when it is not a timeline document.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (ValueError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: {err}") from None

    def to_csv(self, path: str | os.PathLike | io.TextIOBase) -> None:
        """One row per window: ``start,end,top_label,top_score`` and one column per label."""
        rows: list[list[Any]] = [["start", "end", "top_label", "top_score", *self.labels]]
        for (start, end), row in zip(self.spans.tolist(), self.scores):
            best = int(np.argmax(row)) if len(row) else 0
            rows.append(
                [f"{start:.6g}", f"{end:.6g}", self.labels[best], f"{row[best]:.6f}", *(f"{s:.6f}" for s in row)]
            )
        if isinstance(path, (str, os.PathLike)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows(rows)
        else:
            csv.writer(path).writerows(rows)

    def format_segments(self) -> str:
        """The segments as a text table (start - end, duration, score, label)."""
        if not self.segments:
            return "(no segments)"
        lines = []
        for segment in self.segments:
            span = f"{format_time(segment.start, 1)} - {format_time(segment.end, 1)}"
            lines.append(f"{span:>19}  {segment.duration:6.1f} s  {segment.score:6.1%}  {segment.label}")
        return "\n".join(lines)

    # -- views ------------------------------------------------------------------------------------------------

    def plot(self, path: str | os.PathLike, top_labels: int = 20, dpi: int = 100) -> Path:
        """Save the labels x time heat strip with the segments drawn on it (see [`plot_timeline`])."""
        return plot_timeline(self, path, top_labels=top_labels, dpi=dpi)

    def to_html(self, path: str | os.PathLike, top_labels: int = 30, embed_video: bool | None = None) -> Path:
        """Write a self-contained HTML page: the video, the heat strip, and the segments, which seek the video when
        clicked (see [`timeline_html`])."""
        return timeline_html(self, path, top_labels=top_labels, embed_video=embed_video)


# ----------------------------------------------------------------------------------------------------------------
# Plot and HTML


def format_time(seconds: float, decimals: int = 0) -> str:
    """``m:ss`` (``h:mm:ss`` from one hour), with `decimals` digits of the seconds."""
    seconds = max(0.0, float(seconds))
    scale = 10**decimals
    total = round(seconds * scale) / scale
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    width = 2 + (decimals + 1 if decimals else 0)
    text = f"{secs:0{width}.{decimals}f}"
    return f"{int(hours)}:{int(minutes):02d}:{text}" if hours else f"{int(minutes)}:{text}"


def _strip_columns(timeline: Timeline) -> tuple[np.ndarray, list[int | None]]:
    """Time edges of the strip's columns (window cells, with empty columns over gaps) and the window of each."""
    cells = window_cells(timeline.spans)
    edges: list[float] = []
    owners: list[int | None] = []
    for k, (start, end) in enumerate(cells.tolist()):
        if edges and start > edges[-1] + 1e-9:
            owners.append(None)  # a gap no window covers (stride > window)
            edges.append(start)
        elif not edges:
            edges.append(start)
        owners.append(k)
        edges.append(end)
    return np.asarray(edges), owners


def plot_timeline(timeline: Timeline, path: str | os.PathLike, *, top_labels: int = 20, dpi: int = 100) -> Path:
    """Save a labels x time heat strip of the window scores with the segments outlined on it; time in mm:ss.

    With more than `top_labels` labels only that many are drawn ([`Timeline.top_labels`]): the labels with the most
    segment time (rows in order of appearance), then the highest-scoring others; the title says how many were left
    out.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'hf_xclip[plot]'``).
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting a timeline needs matplotlib: pip install 'hf_xclip[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    shown = timeline.top_labels(max(1, top_labels))
    rows = {label: row for row, label in enumerate(shown)}
    columns = [timeline.labels.index(label) for label in shown]
    edges, owners = _strip_columns(timeline)
    grid = np.full((len(shown), len(owners)), np.nan, dtype=np.float32)
    for position, owner in enumerate(owners):
        if owner is not None:
            grid[:, position] = timeline.scores[owner, columns]
    height = 1.3 + 0.26 * len(shown)
    fig, ax = plt.subplots(figsize=(12, max(2.4, height)))
    vmax = 1.0 if timeline.multi_label else max(0.05, float(np.nanmax(grid)) if grid.size else 1.0)
    if grid.size:
        mesh = ax.pcolormesh(
            edges,
            np.arange(len(shown) + 1) - 0.5,
            np.ma.masked_invalid(grid),
            cmap="viridis",
            vmin=0.0,
            vmax=vmax,
            shading="flat",
        )
        fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.03).set_label("score", fontsize=8)
    for segment in timeline.segments:
        if segment.label in rows:
            ax.add_patch(
                Rectangle(
                    (segment.start, rows[segment.label] - 0.45),
                    segment.duration,
                    0.9,
                    fill=False,
                    edgecolor="#ff3b30",
                    linewidth=1.6,
                )
            )
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_xlim(edges[0] if len(edges) else 0.0, edges[-1] if len(edges) else timeline.duration)
    ax.set_yticks(range(len(shown)))
    size = 9 if len(shown) <= 25 else 7
    ax.set_yticklabels([label if len(label) <= 48 else label[:45] + "..." for label in shown], fontsize=size)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: format_time(t)))
    ax.set_xlabel("time (m:ss)", fontsize=9)
    hidden = len(timeline.labels) - len(shown)
    title = (
        f"{Path(timeline.video).name}: {format_time(timeline.duration)}, windows of {timeline.window:g} s every "
        f"{timeline.stride:g} s, {'multi-label' if timeline.multi_label else 'single-label'}"
    )
    if hidden > 0:
        title += f"; top {len(shown)} of {len(timeline.labels)} labels"
    if timeline.truncated:
        title += " (broken tail: stops early)"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def timeline_html(
    timeline: Timeline, path: str | os.PathLike, *, top_labels: int = 30, embed_video: bool | None = None
) -> Path:
    """Write one HTML file: the video, the heat strip (drawn in the page from the scores; hover for values, click
    to seek) and the list of segments (click to play from there).

    Args:
        embed_video: put the video in the page (base64), so the file stands alone; ``None``: when the video is a
            file of at most 64 MiB, else the page links it by its path relative to the page. Browsers play H.264
            mp4 and WebM; other codecs may show no picture.
    """
    path = Path(path)
    video_file = Path(timeline.video)
    source = None
    if video_file.is_file():
        size = video_file.stat().st_size
        embed = size <= HTML_EMBED_LIMIT if embed_video is None else embed_video
        if embed:
            mime = _VIDEO_MIME.get(video_file.suffix.lower(), "video/mp4")
            source = f"data:{mime};base64," + base64.b64encode(video_file.read_bytes()).decode("ascii")
        else:
            source = Path(os.path.relpath(video_file.resolve(), path.resolve().parent)).as_posix()
    shown = timeline.top_labels(max(1, top_labels))
    columns = [timeline.labels.index(label) for label in shown]
    edges, owners = _strip_columns(timeline)
    data = {
        "labels": shown,
        "edges": [round(float(t), 4) for t in edges],
        "scores": [None if o is None else [round(float(s), 4) for s in timeline.scores[o, columns]] for o in owners],
        "segments": [s.to_dict() for s in timeline.segments],
        "duration": timeline.duration,
        "vmax": 1.0 if timeline.multi_label else max(0.05, float(timeline.scores.max()) if timeline.scores.size else 1),
    }
    hidden = len(timeline.labels) - len(shown)
    rows = "\n".join(
        f'<tr data-start="{s.start:.3f}"><td>{format_time(s.start, 1)}</td><td>{format_time(s.end, 1)}</td>'
        f"<td>{s.score:.0%}</td><td>{html.escape(s.label)}</td></tr>"
        for s in timeline.segments
    )
    name = html.escape(Path(timeline.video).name)
    note = f"top {len(shown)} of {len(timeline.labels)} labels; " if hidden > 0 else ""
    if timeline.truncated:
        note += f"broken tail: {html.escape(timeline.truncated)}; "
    if source is None:
        player = f"<p>(the video {name} was not found next to this page)</p>"
    else:
        player = f'<video id="video" controls preload="metadata" src="{html.escape(source, quote=True)}"></video>'
    page = _HTML_TEMPLATE.format(
        title=name,
        player=player,
        summary=html.escape(
            f"{format_time(timeline.duration, 1)}, windows of {timeline.window:g} s every {timeline.stride:g} s, "
            f"{'multi-label' if timeline.multi_label else 'single-label'}; "
        )
        + note
        + f"{len(timeline.segments)} segments",
        rows=rows or '<tr><td colspan="4">(no segments)</td></tr>',
        data=json.dumps(data, ensure_ascii=False).replace("</", "<\\/"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Timeline: {title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
video {{ max-width: 100%; max-height: 50vh; background: #000; display: block; }}
#strip {{ width: 100%; cursor: crosshair; display: block; margin-top: 8px; }}
#tip {{ min-height: 1.4em; color: #555; }}
table {{ border-collapse: collapse; margin-top: 8px; }}
td {{ padding: 2px 10px; border-bottom: 1px solid #eee; }}
tr[data-start] {{ cursor: pointer; }} tr[data-start]:hover {{ background: #eef4ff; }}
</style></head><body>
<h3>{title}</h3><p>{summary}</p>
{player}
<canvas id="strip"></canvas><div id="tip"></div>
<table><tr><th>start</th><th>end</th><th>score</th><th>label</th></tr>
{rows}
</table>
<script type="application/json" id="timeline-data">{data}</script>
<script>
(function () {{
  "use strict";
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var video = document.getElementById("video");
  var canvas = document.getElementById("strip"), tip = document.getElementById("tip");
  var ctx = canvas.getContext("2d");
  var labelWidth = 220, rowHeight = 16, axis = 18;
  var stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var t0 = data.edges.length ? data.edges[0] : 0, t1 = data.edges.length ? data.edges[data.edges.length - 1] : 1;
  function colour(v) {{
    var x = Math.max(0, Math.min(1, v / data.vmax)) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x));
    var f = x - i, a = stops[i], b = stops[i + 1];
    return "rgb(" + [0, 1, 2].map(function (c) {{ return Math.round(a[c] + f * (b[c] - a[c])); }}).join(",") + ")";
  }}
  function fmt(t) {{
    var m = Math.floor(t / 60), s = (t - 60 * m).toFixed(1);
    return m + ":" + (s < 10 ? "0" : "") + s;
  }}
  function xOf(t) {{ return labelWidth + (t - t0) / Math.max(1e-9, t1 - t0) * (canvas.width - labelWidth - 4); }}
  function tOf(x) {{ return t0 + (x - labelWidth) / (canvas.width - labelWidth - 4) * (t1 - t0); }}
  function draw() {{
    canvas.width = canvas.clientWidth || 900;
    canvas.height = data.labels.length * rowHeight + axis;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    data.labels.forEach(function (label, r) {{
      ctx.fillStyle = "#222";
      ctx.fillText(label.length > 34 ? label.slice(0, 32) + "..." : label, 2, r * rowHeight + rowHeight / 2);
      data.scores.forEach(function (column, c) {{
        if (column === null) return;
        ctx.fillStyle = colour(column[r]);
        var x = xOf(data.edges[c]);
        ctx.fillRect(x, r * rowHeight, Math.max(1, xOf(data.edges[c + 1]) - x), rowHeight - 1);
      }});
    }});
    ctx.strokeStyle = "#ff3b30"; ctx.lineWidth = 2;
    data.segments.forEach(function (s) {{
      var r = data.labels.indexOf(s.label);
      if (r >= 0) ctx.strokeRect(xOf(s.start), r * rowHeight + 1, xOf(s.end) - xOf(s.start), rowHeight - 3);
    }});
    ctx.fillStyle = "#555";
    var step = Math.max(1, Math.pow(10, Math.floor(Math.log10((t1 - t0) / 8 || 1))));
    if ((t1 - t0) / step > 16) step *= 5; else if ((t1 - t0) / step > 8) step *= 2;
    for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {{
      ctx.fillText(fmt(t), xOf(t) - 12, canvas.height - axis / 2);
    }}
    if (video) {{
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
      var x = xOf(video.currentTime);
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height - axis); ctx.stroke();
    }}
  }}
  function seek(t) {{
    if (!video) return;
    video.currentTime = Math.max(0, t);
    video.play();
  }}
  canvas.addEventListener("click", function (e) {{
    var x = e.offsetX * canvas.width / canvas.clientWidth;
    if (x >= labelWidth) seek(tOf(x));
  }});
  canvas.addEventListener("mousemove", function (e) {{
    var x = e.offsetX * canvas.width / canvas.clientWidth, r = Math.floor(e.offsetY / rowHeight), t = tOf(x);
    var c = data.edges.findIndex(function (edge, i) {{ return i + 1 < data.edges.length && t < data.edges[i + 1]; }});
    if (x < labelWidth || r < 0 || r >= data.labels.length || c < 0 || data.scores[c] === null) {{
      tip.textContent = ""; return;
    }}
    tip.textContent = fmt(t) + "  " + data.labels[r] + ": " + (100 * data.scores[c][r]).toFixed(1) + " %";
  }});
  document.querySelectorAll("tr[data-start]").forEach(function (row) {{
    row.addEventListener("click", function () {{ seek(parseFloat(row.dataset.start)); }});
  }});
  if (video) video.addEventListener("timeupdate", draw);
  window.addEventListener("resize", draw);
  draw();
}})();
</script></body></html>
"""


__all__ = ["HTML_EMBED_LIMIT", "Timeline", "format_time", "plot_timeline", "timeline_html"]

"""Outputs of every tool on the embedded default model, recorded to JSON and compared bit for bit with a stored file.

    python bench/check_bit_identity.py --record before.json                           # on the 'before' tree
    python bench/check_bit_identity.py --compare bench/bit_identity/before_0a043d2.json  # on this tree

What is recorded (one CPU thread, fixed seeds) on the generated clips of ``bench/bit_identity/videos`` (committed:
x264 does not encode the same frames to the same bytes every time, so the clips are made once, by ``--videos DIR``
when the folder does not exist, and reused):

* ``videos``: SHA-256 of the video files (a comparison on other files is refused);
* ``single_label``: the zero-shot pipeline's labels and scores;
* ``multi_label/<method>``: ``multi_label=True`` with each method (sigmoid, background, negative);
* ``ensemble``: three hypothesis templates ensembled;
* ``timeline``: `video_timeline`'s JSON document of a generated two-action video (wall-clock stats dropped);
* ``index``: `build_index` rows (SHA-256 of each column) and the results of a text search and a video search;
* ``evaluate``: ``hf-xclip evaluate --json`` on a class-per-folder set (timings dropped);
* ``few_shot_lora``: the step losses of a short LoRA run of `train_few_shot`;
* ``few_shot_multi_label_wise``: the losses and the sigmoid head of a short multi-label LoRA run with WiSE-FT.

Floats are compared exactly (JSON keeps every bit of a float64, and float32 values convert exactly). The script
imports only the package's public paths that exist before and after the feature-package layout, so the same file
records the 'before' values on an older checkout (``git worktree add /tmp/before 45ec941``, copy this file there,
run it with that tree first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LABELS_FROM = 4  # synthetic specs used as classes
TEMPLATES = ["a video of {}.", "a clip showing {}.", "{}"]
VOLATILE_KEYS = {"seconds", "forward_seconds", "created", "elapsed", "videos_per_second", "throughput"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _strip(value: Any, paths: dict[str, str]) -> Any:
    """Drop wall-clock fields and replace the run's folder and the checkout's paths by names (the rest is compared
    exactly)."""
    if isinstance(value, dict):
        return {k: _strip(v, paths) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list | tuple):
        return [_strip(v, paths) for v in value]
    if isinstance(value, str):
        for path, name in paths.items():
            value = value.replace(path, name)
    return value


def _synthetic():
    try:
        from hf_xclip.data import synthetic
    except ImportError:  # the flat layout before feature packages
        from hf_xclip import synthetic
    return synthetic


def _videos(folder: Path) -> tuple[Path, list[Path], list[str], Path]:
    """The clips (``clips/<caption>/*.mp4``, two per class), their labels and a two-action video; written when
    `folder` does not exist yet."""
    synthetic = _synthetic()
    specs = synthetic.all_specs()[:LABELS_FROM]
    if not folder.exists():
        from hf_xclip.data import write_video

        synthetic.write_video_folder(folder / "clips", 2, specs=specs, num_frames=16, size=64, seed=7)
        frames, _ = synthetic.render_sequence(specs[:2], [3, 3], fps=8)
        write_video(str(folder / "two_actions.mp4"), frames, fps=8, crf=12)
    videos = sorted((folder / "clips").glob("*/*.mp4"))
    return folder / "clips", videos, [spec.caption for spec in specs], folder / "two_actions.mp4"


def _pipeline_outputs(classifier, videos: list[Path], labels: list[str]) -> dict[str, Any]:
    paths = [str(v) for v in videos]
    out: dict[str, Any] = {"single_label": classifier(paths, candidate_labels=labels)}
    for method in ("sigmoid", "background", "negative"):
        out[f"multi_label/{method}"] = classifier(
            paths, candidate_labels=labels, multi_label=True, multi_label_method=method
        )
    out["ensemble"] = classifier(paths, candidate_labels=labels, hypothesis_template=TEMPLATES)
    return out


def _timeline(classifier, video: Path, labels: list[str]) -> dict[str, Any]:
    from hf_xclip.timeline import video_timeline

    timeline = video_timeline(classifier, str(video), labels[:2], window=1.5, stride=0.5)
    return timeline.to_dict()


def _index(root: Path, videos: list[Path], labels: list[str]) -> dict[str, Any]:
    import numpy as np

    from hf_xclip import VideoIndex, build_index

    output = root / "index"
    build_index([str(v) for v in videos], output, num_workers=0, progress=False)
    index = VideoIndex.open(output)
    table = index.dataset()
    columns: dict[str, Any] = {}
    data = table.with_format("numpy")[:]
    for name in table.column_names:
        values = np.asarray(data[name]) if not isinstance(data[name], list) else np.array(data[name], dtype=object)
        if values.dtype.kind in "OUS":  # strings, or arrays per row
            values = [str(v) for v in values] if values.dtype.kind in "US" else np.stack(list(values))
        columns[name] = _sha(values.tobytes()) if isinstance(values, np.ndarray) else values
    return {
        "rows": len(table),
        "columns": columns,
        "text_search": index.search(labels[0], top_k=5),
        "exhaustive_search": index.search(labels[1], top_k=5, exhaustive=True),
        "video_search": index.search_video(str(videos[0]), top_k=3) if hasattr(index, "search_video") else None,
    }


def _evaluate(clips: Path) -> dict[str, Any]:
    from hf_xclip.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["evaluate", "--data-dir", str(clips), "--json", "--no-progress", "--num-workers", "0"])
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    return {"exit_code": code, "result": json.loads(lines[-1])}  # the JSON line follows the printed table


def _few_shot(clips: Path) -> dict[str, Any]:
    from hf_xclip import (
        FewShotTrainingArguments,
        XClipAdapterConfig,
        XClipModel,
        XClipProcessor,
        default_model_path,
        scan_video_folder,
        train_few_shot,
    )

    path = default_model_path()
    model, processor = XClipModel.from_pretrained(path), XClipProcessor.from_pretrained(path)
    args = FewShotTrainingArguments(epochs=2, batch_size=4, seed=0, num_workers=0, show_progress=False)
    result = train_few_shot(
        model,
        processor,
        scan_video_folder(clips),
        adapter_config=XClipAdapterConfig.for_method("lora"),
        args=args,
        evaluate_before=False,
    )
    return {"step_losses": result.step_losses, "epoch_losses": result.epoch_losses}


def _few_shot_multi_label(root: Path, videos: list[Path], labels: list[str]) -> dict[str, Any]:
    """A multi-label LoRA run with WiSE-FT (head fitted before training, refitted after the interpolation): each clip
    is labelled with its caption and the next class's."""
    from hf_xclip import (
        FewShotTrainingArguments,
        XClipAdapterConfig,
        XClipModel,
        XClipProcessor,
        default_model_path,
        train_few_shot,
    )

    try:
        from hf_xclip.data.folders import read_annotations
    except ImportError:  # the flat layout before feature packages
        from hf_xclip.video_data import read_annotations
    annotations = root / "multi_label.jsonl"
    lines = []
    for video in videos:
        own = labels.index(video.parent.name)
        lines.append(json.dumps({"video": str(video), "labels": [labels[own], labels[(own + 1) % len(labels)]]}))
    annotations.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = default_model_path()
    model, processor = XClipModel.from_pretrained(path), XClipProcessor.from_pretrained(path)
    args = FewShotTrainingArguments(
        epochs=2, batch_size=4, seed=0, num_workers=0, show_progress=False, regularization="wise"
    )
    result = train_few_shot(
        model,
        processor,
        read_annotations(annotations),
        adapter_config=XClipAdapterConfig.for_method("lora"),
        args=args,
        evaluate_before=False,
    )
    return {"step_losses": result.step_losses, "epoch_losses": result.epoch_losses, "sigmoid_head": result.sigmoid_head}


def record(folder: Path) -> dict[str, Any]:
    import torch
    from transformers import pipeline

    import hf_xclip

    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bit-identity-") as tmp:
        root = Path(tmp).resolve()
        folder = folder.resolve()
        clips, videos, labels, long_video = _videos(folder)
        classifier = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
        results: dict[str, Any] = {
            "videos": {str(v.relative_to(folder)): _sha(v.read_bytes()) for v in [*videos, long_video]}
        }
        results.update(_pipeline_outputs(classifier, videos, labels))
        results["timeline"] = _timeline(classifier, long_video, labels)
        results["index"] = _index(root, videos, labels)
        results["evaluate"] = _evaluate(clips)
        results["few_shot_lora"] = _few_shot(clips)
        results["few_shot_multi_label_wise"] = _few_shot_multi_label(root, videos, labels)
        paths = {
            str(root): "<run>",
            str(folder): "<videos>",
            hf_xclip.default_model_path(): "<default model>",
            str(REPO): "<repo>",
        }
        return _strip(json.loads(json.dumps(results, default=float)), paths)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(section, identical, first difference) per recorded section."""
    rows = []
    for section in sorted(set(before) | set(after)):
        a, b = before.get(section), after.get(section)
        rows.append((section, a == b, "" if a == b else _first_difference(a, b, section)))
    return rows


def _first_difference(a: Any, b: Any, where: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}/{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {a!r:.80} != {b!r:.80}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", type=Path, help="write this tree's outputs to the file")
    group.add_argument("--compare", type=Path, help="compute this tree's outputs and compare with the file")
    parser.add_argument("--save-after", type=Path, help="with --compare: also write this tree's outputs there")
    parser.add_argument(
        "--videos",
        type=Path,
        default=REPO / "bench" / "bit_identity" / "videos",
        help="folder of the input videos (written when it does not exist)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    outputs = record(args.videos)
    payload = {"commit": _commit(), "outputs": outputs}
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"recorded {len(outputs)} sections at {payload['commit']} -> {args.record}")
        return 0
    stored = json.loads(args.compare.read_text(encoding="utf-8"))
    if args.save_after:
        args.save_after.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    if stored["outputs"]["videos"] != outputs["videos"]:
        print(f"the videos in {args.videos} are not the ones {args.compare} was recorded on", file=sys.stderr)
        return 2
    rows = compare(stored["outputs"], outputs)
    print(f"| section | before ({stored['commit']}) == after ({payload['commit']}) | first difference |")
    print("| --- | --- | --- |")
    for section, same, diff in rows:
        print(f"| {section} | {'identical' if same else 'DIFFERENT'} | {diff} |")
    return 0 if all(same for _, same, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

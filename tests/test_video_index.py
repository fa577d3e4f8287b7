"""Building a video index: rows as the pipeline sees the videos, compact prompt features, unreadable files listed and
skipped, appending, resuming after a crash or a `kill -9`, refusing another model or other settings, one writer at a
time, shards merged by copying, several processes with accelerate, `hf-xclip index`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")
pytest.importorskip("datasets")

from testing_utils import (  # noqa: E402
    XClipModelTester,
    randomise_,
    save_preprocessor_config,
    save_tiny_xclip,
    save_tokenizer,
)

import hf_xclip.search.build as video_index  # noqa: E402
from hf_xclip import XClipModel  # noqa: E402
from hf_xclip.cli import main  # noqa: E402
from hf_xclip.data.synthetic import all_specs, write_video_folder  # noqa: E402
from hf_xclip.fingerprint import model_fingerprint  # noqa: E402
from hf_xclip.search import (  # noqa: E402
    IndexModelMismatchError,
    build_index,
    dequantize_prompt_features,
    quantize_prompt_features,
    read_info,
    read_manifest,
    shard_paths,
)
from hf_xclip.search.format import TEST_PAUSE_ENV  # noqa: E402
from hf_xclip.search.index import VideoIndex  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Eight synthetic clips (2 s, 64 px), sorted."""
    root = tmp_path_factory.mktemp("index_videos")
    written = write_video_folder(root, 2, specs=all_specs()[:4], num_frames=16, size=64, seed=3)
    return sorted(path for paths in written.values() for path in paths)


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Rows of an uninterrupted one-process run, by video."""
    out = tmp_path_factory.mktemp("reference") / "index"
    build_index(videos, out, batch_size=3)
    return rows_by_video(out)


def rows_by_video(index_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """{video: {"embedding", "prompt_features" (dequantised), "spans"}}; fails on a duplicated video."""
    index = VideoIndex.open(index_dir)
    rows: dict[str, dict[str, list]] = {}
    for row in range(len(index)):
        meta = index.row(row)
        entry = rows.setdefault(meta["video"], {"rows": [], "spans": []})
        entry["rows"].append(row)
        entry["spans"].append((meta["start"], meta["end"]))
    out = {}
    for video, entry in rows.items():
        embeddings, prompts = index.features(entry["rows"])
        out[video] = {"embedding": embeddings.numpy(), "prompt_features": prompts.numpy(), "spans": entry["spans"]}
    return out


def assert_same_rows(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for video in expected:
        assert got[video]["spans"] == expected[video]["spans"], video
        np.testing.assert_allclose(got[video]["embedding"], expected[video]["embedding"], rtol=1e-4, atol=1e-5)
        # int8 prompt features: equal up to one quantisation step where float rounding crossed a boundary
        step = np.abs(expected[video]["prompt_features"]).max(axis=-1, keepdims=True) / 127
        assert (np.abs(got[video]["prompt_features"] - expected[video]["prompt_features"]) <= step * 1.01 + 1e-6).all()


# ------------------------------------------------------------------------------------------------ rows


def test_rows_are_the_videos_as_the_pipeline_samples_them(videos, tmp_path):
    result = build_index(videos[:3], tmp_path / "index", batch_size=2)
    assert (result.indexed, result.rows, result.total_rows, result.failed) == (3, 3, 3, [])
    index = VideoIndex.open(tmp_path / "index")
    processor, model = index.model.video_processor, index.model.model
    pixels = torch.cat([processor(str(v), num_frames=4)["pixel_values"] for v in videos[:3]])
    with torch.no_grad():
        expected = model.get_video_features(pixels, output_prompt_features=True)
    embeddings, prompts = index.features([0, 1, 2])
    assert [index.row(r)["video"] for r in range(3)] == [str(v.resolve()) for v in videos[:3]]
    assert all(index.row(r)["start"] == 0.0 and index.row(r)["end"] == pytest.approx(2.0) for r in range(3))
    torch.testing.assert_close(embeddings, expected.pooler_output, rtol=1e-4, atol=1e-5)
    step = expected.prompt_features.abs().amax(dim=-1, keepdim=True) / 127
    assert ((prompts - expected.prompt_features).abs() <= step / 2 + 1e-6).all()
    info = read_info(tmp_path / "index")
    settings = info.settings
    assert (info.projection_dim, info.num_patches, settings.num_frames, settings.precision) == (64, 16, 4, "int8")
    assert info.video_fingerprint == model_fingerprint(model, "video")


def test_quantisation_error_is_half_a_step():
    features = torch.randn(3, 49, 512) * torch.linspace(0.1, 10, 49)[None, :, None]
    values, scales = quantize_prompt_features(features, "int8")
    assert values.dtype == np.int8 and scales.shape == (3, 49)
    error = np.abs(dequantize_prompt_features(values, scales) - features.numpy())
    assert (error <= scales[..., None] / 2 + 1e-6).all()
    half, none = quantize_prompt_features(features, "float16")
    assert half.dtype == np.float16 and none is None
    zeros, zero_scales = quantize_prompt_features(torch.zeros(1, 2, 4), "int8")
    assert (dequantize_prompt_features(zeros, zero_scales) == 0).all()


@pytest.mark.parametrize("precision", ["float16", "float32"])
def test_precisions_trade_bytes_for_score_error(videos, tmp_path, precision):
    build_index(videos[:4], tmp_path / "int8")
    build_index(videos[:4], tmp_path / precision, precision=precision)
    small, large = VideoIndex.open(tmp_path / "int8"), VideoIndex.open(tmp_path / precision)
    assert large.info.settings.precision == precision
    bytes_small = sum(p.stat().st_size for p in shard_paths(tmp_path / "int8"))
    bytes_large = sum(p.stat().st_size for p in shard_paths(tmp_path / precision))
    assert bytes_large > bytes_small
    text = small.encode_queries(["a red circle moving left"])
    np.testing.assert_allclose(small.exact_scores(text), large.exact_scores(text), atol=0.05)  # logits ~20


def test_a_model_without_prompt_generator(videos, tmp_path):
    """ViFi-CLIP-like models (mean pooling, no prompt generator): rows hold embeddings only, scores are cosines."""
    folder = tmp_path / "model"
    tokenizer = save_tokenizer(folder)
    config = XClipModelTester.pipeline(len(tokenizer)).config(use_prompt_generator=False, video_pooling="mean")
    torch.manual_seed(0)
    randomise_(XClipModel(config).eval(), 0, style="spread").save_pretrained(str(folder))
    save_preprocessor_config(folder, videomae=False)
    build_index(videos[:3], tmp_path / "index", model=str(folder))
    index = VideoIndex.open(tmp_path / "index")
    assert index.info.num_patches == 0 and "prompt_features" not in index.dataset().column_names
    hits = index.search("surfing", top_k=3)
    exact = index.search("surfing", top_k=3, exhaustive=True)
    assert [h["video"] for h in hits] == [h["video"] for h in exact]


# ------------------------------------------------------------------------------------------------ failures


def test_unreadable_files_are_listed_and_skipped(videos, tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    folder.mkdir()
    for number, video in enumerate(videos[:3]):
        shutil.copy(video, folder / f"clip{number}.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "empty.mp4").write_bytes(b"")
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(videos[3].read_bytes()[:300])
    result = build_index([folder, tmp_path / "missing.mp4"], tmp_path / "index")
    failed = dict(result.failed)
    assert sorted(Path(v).name for v in failed) == ["broken.mp4", "empty.mp4", "truncated.mp4"]
    assert all(Path(video).name in reason for video, reason in failed.items())  # reasons name the file
    assert result.missing == [(str(tmp_path / "missing.mp4"), "no such file or folder")]
    assert (result.indexed, result.total_rows) == (3, 3)
    assert VideoIndex.open(tmp_path / "index").failed == failed
    # Not retried by the next run, unless asked; a fixed file is then indexed and no longer listed as failed.
    calls = []
    original = video_index.video_rows
    monkeypatch.setattr(video_index, "video_rows", lambda video, *a: calls.append(video) or original(video, *a))
    again = build_index([folder], tmp_path / "index")
    assert (again.indexed, again.skipped, calls) == (0, 3, [])
    assert sorted(Path(v).name for v in again.previously_failed) == ["broken.mp4", "empty.mp4", "truncated.mp4"]
    shutil.copy(videos[3], folder / "broken.mp4")
    retried = build_index([folder], tmp_path / "index", retry_failed=True)
    assert retried.indexed == 1 and sorted(Path(v).name for v, _ in retried.failed) == ["empty.mp4", "truncated.mp4"]
    assert "broken.mp4" not in {Path(v).name for v in read_manifest(tmp_path / "index").failed}
    assert read_manifest(tmp_path / "index").rows == 4


# ------------------------------------------------------------------------------------------------ append, resume


def test_append_embeds_only_new_videos(videos, tmp_path, reference):
    build_index(videos[:5], tmp_path / "index", shard_size=2)
    before = {p.name: p.read_bytes() for p in shard_paths(tmp_path / "index")}
    result = build_index([videos[0].parent.parent], tmp_path / "index", shard_size=2)  # the whole folder
    assert (result.indexed, result.skipped, result.total_videos) == (3, 5, 8)
    after = {p.name: p.read_bytes() for p in shard_paths(tmp_path / "index")}
    assert all(after[name] == data for name, data in before.items())  # committed shards are never rewritten
    assert_same_rows(rows_by_video(tmp_path / "index"), reference)


def test_resume_after_a_crash(videos, tmp_path, monkeypatch, reference):
    """A run that dies after two committed shards and while writing a third leaves only whole shards; the next run
    does the rest."""
    original = video_index.write_shard
    commits = []

    def crashing(*args, **kwargs):
        if len(commits) == 2:
            partial = tmp_path / "index" / "shards" / ".half-written.arrow.partial"
            partial.write_bytes(b"\x00" * 100)  # what a kill during the write leaves
            raise KeyboardInterrupt("killed")
        commits.append(original(*args, **kwargs))
        return commits[-1]

    monkeypatch.setattr(video_index, "write_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_index(videos, tmp_path / "index", shard_size=2, batch_size=2)
    done = read_manifest(tmp_path / "index")
    assert len(done.shards) == 2 and len(done.files) == 4
    monkeypatch.setattr(video_index, "write_shard", original)
    result = build_index(videos, tmp_path / "index", shard_size=2, batch_size=2)
    assert (result.skipped, result.indexed) == (4, 4)
    assert not list((tmp_path / "index" / "shards").glob(".*"))  # the partial file is cleaned up
    assert_same_rows(rows_by_video(tmp_path / "index"), reference)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_kill_9_and_resume(videos, tmp_path, reference):
    """`hf-xclip index` killed with SIGKILL while a shard is being written (one video per shard, a pause before
    each commit), then started again: every video once, rows equal to an uninterrupted run."""
    out = tmp_path / "index"
    command = [
        sys.executable,
        "-m",
        "hf_xclip.cli",
        "index",
        *map(str, videos),
        "--output",
        str(out),
        "--shard-size",
        "1",
        "--batch-size",
        "1",
        "--workers",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(
        command, env=_environment(**{TEST_PAUSE_ENV: "1.5"}), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    shards = out / "shards"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            committed = shard_paths(out)
            partial = list(shards.glob(".*.partial")) if shards.is_dir() else []
            if len(committed) >= 2 and partial:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    interrupted = read_manifest(out)
    assert 2 <= len(interrupted.files) < len(videos) and list(shards.glob(".*.partial"))
    resumed = subprocess.run(
        [*command[:3], *command[3:]], env=_environment(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(interrupted.files)} already indexed" in resumed.stdout
    manifest = read_manifest(out)
    assert manifest.rows == len(manifest.files) == len(videos) and not manifest.duplicates
    assert not list(shards.glob(".*.partial"))
    assert_same_rows(rows_by_video(out), reference)


@pytest.mark.slow
def test_two_processes_give_the_rows_of_one(videos, tmp_path, reference):
    """`accelerate launch --multi_gpu --num_processes 2` (torchrun underneath; on a machine without GPUs the
    processes run on the CPU, gloo): each process indexes its half into its own shards; same rows as one process."""
    out = tmp_path / "index"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "hf_xclip.cli",
        "index",
        *map(str, videos),
        "--output",
        str(out),
        "--shard-size",
        "2",
        "--batch-size",
        "2",
        "--no-progress",
        "--json",
    ]
    if torch.cuda.is_available():
        pytest.skip("this test runs the processes on the CPU")
    run = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])  # printed once, by the main process
    assert (summary["indexed"], summary["total_rows"], summary["failed"]) == (len(videos), len(videos), [])
    manifest = read_manifest(out)
    assert {shard.rank for shard in manifest.shards} == {0, 1}
    assert not manifest.duplicates
    assert_same_rows(rows_by_video(out), reference)


# ------------------------------------------------------------------------------------------------ refusals


def test_appending_with_another_model_or_settings_is_refused(videos, tmp_path):
    build_index(videos[:2], tmp_path / "index")
    other = save_tiny_xclip(tmp_path / "other")
    with pytest.raises(IndexModelMismatchError, match="made by hf_xclip:default"):
        build_index(videos[2:4], tmp_path / "index", model=str(other))
    with pytest.raises(ValueError, match=r"window=None \(given 2.0\)"):
        build_index(videos[2:4], tmp_path / "index", window=2.0)
    with pytest.raises(ValueError, match=r"precision='int8' \(given 'float16'\)"):
        build_index(videos[2:4], tmp_path / "index", precision="float16")
    assert read_manifest(tmp_path / "index").rows == 2
    (tmp_path / "not_an_index").mkdir()
    (tmp_path / "not_an_index" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an hf_xclip video index"):
        build_index(videos[:1], tmp_path / "not_an_index")


def test_one_writer_at_a_time(videos, tmp_path):
    build_index(videos[:1], tmp_path / "index")
    lock = video_index._IndexLock(tmp_path / "index")
    try:
        with pytest.raises(RuntimeError, match="another run is writing"):
            build_index(videos[1:2], tmp_path / "index")
    finally:
        lock.release()
    assert build_index(videos[1:2], tmp_path / "index").indexed == 1


def test_indexes_merge_by_copying_shards(videos, tmp_path, reference):
    """How an index made on several machines without a shared disk is put together: shards are self-describing."""
    build_index(videos[:3], tmp_path / "a")
    build_index(videos[3:], tmp_path / "b")
    for shard in shard_paths(tmp_path / "b"):
        shutil.copy(shard, tmp_path / "a" / "shards" / shard.name)
    assert_same_rows(rows_by_video(tmp_path / "a"), reference)


# ------------------------------------------------------------------------------------------------ command line


def test_index_command(videos, tmp_path, capsys):
    (tmp_path / "bad.mp4").write_bytes(b"nope")
    argv = [
        "index",
        *map(str, videos[:3]),
        str(tmp_path / "bad.mp4"),
        "--output",
        str(tmp_path / "index"),
        "--no-progress",
        "--json",
    ]
    assert main(argv) == 1  # some videos failed
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "bad.mp4" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert (summary["indexed"], summary["rows"], summary["total_rows"], summary["faiss"]) == (3, 3, 3, "flat")
    assert [Path(f[0]).name for f in summary["failed"]] == ["bad.mp4"]
    assert main(["index", *map(str, videos[:4]), "--output", str(tmp_path / "index"), "--no-progress"]) == 0
    assert "indexed 1 video(s) (1 rows); 3 already indexed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--stride", "1"], "--stride needs --window"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--window", "-1"], "window must be a positive number"),
    ],
)
def test_index_command_usage_errors(videos, tmp_path, capsys, extra, message):
    assert main(["index", str(videos[0]), "--output", str(tmp_path / "index"), *extra]) == 2
    assert message in capsys.readouterr().err

"""Batch inference beyond one process (`hf_xclip.distributed`): `XClipPredictor` gives the local pipeline's results
as Arrow rows, bad files become error rows, jobs commit Parquet parts atomically and resume after a kill without
lost or duplicated rows, index rows made by workers are the index `build_index` makes; on a local Ray
(``ray.init(num_cpus=2)``, skipped when Ray is absent) the same holds through `map_batches`."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("faiss")

from hf_xclip.cli import main  # noqa: E402
from hf_xclip.data.synthetic import all_specs, write_video_folder  # noqa: E402
from hf_xclip.distributed import XClipPredictor  # noqa: E402
from hf_xclip.distributed.jobs import (  # noqa: E402
    TEST_EXIT_AFTER_ENV,
    EngineOptions,
    part_paths,
    read_predictions,
    run_index_job,
    run_job,
)
from hf_xclip.search import VideoIndex, build_index  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
LABELS = [spec.caption for spec in all_specs()[:4]]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    """Six synthetic clips (2 s, 64 px), sorted."""
    root = tmp_path_factory.mktemp("distributed_videos")
    written = write_video_folder(root, 2, specs=all_specs()[:3], num_frames=16, size=64, seed=5)
    return sorted(str(path) for paths in written.values() for path in paths)


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bad") / "broken.mp4"
    path.write_bytes(b"not a video at all")
    return str(path)


@pytest.fixture(scope="module")
def pipeline_scores(videos) -> dict[str, dict[str, dict[str, float]]]:
    """The local pipeline's scores: {"single" | "multi": {video: {label: score}}}."""
    from transformers import pipeline

    import hf_xclip

    classifier = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
    out = {}
    for kind, multi in (("single", False), ("multi", True)):
        results = classifier(videos, candidate_labels=LABELS, multi_label=multi)
        out[kind] = {v: {r["label"]: r["score"] for r in result} for v, result in zip(videos, results)}
    return out


def assert_scores_match(table, pipeline_scores, videos) -> None:
    rows = {row["path"]: row for row in table.to_pylist()}
    for video in videos:
        row = rows[video]
        assert row["error"] is None
        for column, kind in (("scores", "single"), ("probabilities", "multi")):
            got = dict(zip(row["labels"], row[column]))
            for label, score in pipeline_scores[kind][video].items():
                assert abs(got[label] - score) <= 1e-5, (video, column, label)


# ------------------------------------------------------------------------------------------------ the predictor


def test_predictor_rows_are_the_pipelines_and_a_bad_file_is_an_error_row(videos, bad_file, pipeline_scores):
    predictor = XClipPredictor(mode="classify", labels=LABELS, multi_label=True, batch_size=2)
    table = predictor({"path": np.array([videos[0], bad_file, *videos[1:]])})  # numpy columns, as Ray passes them
    assert table.column_names == ["path", "labels", "scores", "probabilities", "video_embeds", "error"]
    assert table.num_rows == len(videos) + 1
    assert_scores_match(table, pipeline_scores, videos)
    bad = table.to_pylist()[1]
    assert bad["path"] == bad_file and "broken.mp4" in bad["error"] and bad["scores"] is None
    embeds = np.asarray(table.column("video_embeds").to_pylist()[0], np.float32)
    from transformers import pipeline

    import hf_xclip

    classifier = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
    pixels = classifier.preprocess(videos[0])["pixel_values"]
    expected = classifier.model.get_video_features(pixels).pooler_output[0].detach().numpy()
    np.testing.assert_allclose(embeds, expected, atol=1e-5)
    clone = pickle.loads(pickle.dumps(predictor))  # what Ray ships: the configuration, the model loaded again
    assert clone({"path": videos[:1]}).column("scores").to_pylist() == table.column("scores").to_pylist()[:1]


def test_timeline_rows_are_the_local_timelines_windows(videos, bad_file):
    from hf_xclip.timeline import video_timeline

    predictor = XClipPredictor(mode="timeline", labels=LABELS, timeline={"window": 1.0, "stride": 0.5})
    table = predictor({"path": [videos[0], bad_file]})
    reference = video_timeline(predictor.classifier, videos[0], LABELS, window=1.0, stride=0.5)
    rows = [r for r in table.to_pylist() if r["error"] is None]
    assert [(r["start"], r["end"]) for r in rows] == [tuple(s) for s in reference.spans.tolist()]
    np.testing.assert_allclose([r["scores"] for r in rows], reference.scores, atol=1e-6)
    assert [r["path"] for r in table.to_pylist() if r["error"]] == [bad_file]


# ------------------------------------------------------------------------------------------------ jobs


def test_a_killed_job_resumes_without_lost_or_duplicated_rows(videos, bad_file, tmp_path, pipeline_scores):
    output = tmp_path / "results.parquet"
    predictor = {"mode": "classify", "labels": LABELS, "multi_label": True}
    script = (
        "import sys, json; from hf_xclip.distributed.jobs import run_job, EngineOptions;"
        "run_job(json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), EngineOptions(videos_per_call=2),"
        " part_rows=2)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), TEST_EXIT_AFTER_ENV: "1", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", script, json.dumps([*videos, bad_file]), str(output), json.dumps(predictor)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == 137, killed.stderr[-2000:]
    kept = read_predictions(output).num_rows
    assert len(part_paths(output)) == 1 and 2 <= kept < 7  # the part committed before the kill survived it
    (output / ".part-stale.parquet.partial").write_bytes(b"half a part")  # as a kill during a write leaves it
    result = run_job([*videos, bad_file], output, predictor, EngineOptions(videos_per_call=2), part_rows=2)
    assert (result.skipped, result.written, [Path(p).name for p, _ in result.failed]) == (
        kept,
        7 - kept,
        ["broken.mp4"],
    )
    table = read_predictions(output)
    assert sorted(table.column("path").to_pylist()) == sorted([*videos, bad_file])  # each once
    assert not list(output.glob(".*.partial"))
    assert_scores_match(table, pipeline_scores, videos)
    again = run_job([*videos, bad_file], output, predictor, EngineOptions())
    assert (again.written, again.skipped, read_predictions(output).num_rows) == (0, 7, 7)
    import pandas as pd

    frame = pd.read_parquet(output)
    assert len(frame) == 7 and frame["error"].notna().sum() == 1
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=str(output / "*.parquet"), split="train")
    assert loaded.num_rows == 7 and "video_embeds" in loaded.column_names


def test_a_job_folder_refuses_another_jobs_options(videos, tmp_path, capsys):
    output = tmp_path / "r.parquet"
    run_job(videos[:1], output, {"mode": "classify", "labels": LABELS})
    with pytest.raises(ValueError, match="labels differ"):
        run_job(videos[:2], output, {"mode": "classify", "labels": LABELS[:2]})
    argv = ["classify", videos[0], "--labels", "a,b", "--output", str(output)]
    assert main(argv) == 2 and "another job" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--engine", "ray"], "give --output"),
        (["--num-workers", "2", "--output", "o"], "--num-workers need --engine ray"),
        (["--engine", "ray", "--num-workers", "0", "--output", "o"], "--num-workers must be >= 1"),
    ],
)
def test_engine_usage_errors(videos, tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["classify", videos[0], "--labels", "a,b", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written


def rows_by_video(index_dir: Path) -> dict[str, dict]:
    index = VideoIndex.open(index_dir)
    out: dict[str, dict] = {}
    for row in range(len(index)):
        meta = index.row(row)
        entry = out.setdefault(meta["video"], {"spans": [], "rows": []})
        entry["spans"].append((meta["start"], meta["end"]))
        entry["rows"].append(row)
    for entry in out.values():
        embeddings, prompts = index.features(entry.pop("rows"))
        entry["embedding"], entry["prompts"] = embeddings.numpy(), prompts.numpy()
    return out


def assert_same_index(got: Path, expected: Path) -> None:
    a, b = rows_by_video(got), rows_by_video(expected)
    assert sorted(a) == sorted(b)
    for video in b:
        assert a[video]["spans"] == b[video]["spans"]
        np.testing.assert_allclose(a[video]["embedding"], b[video]["embedding"], atol=1e-5)
        step = np.abs(b[video]["prompts"]).max(axis=-1, keepdims=True) / 127  # int8: one step where rounding crossed
        assert (np.abs(a[video]["prompts"] - b[video]["prompts"]) <= step * 1.01 + 1e-6).all()
    one, two = VideoIndex.open(got), VideoIndex.open(expected)
    for query in LABELS:
        assert [(r["video"], r["start"]) for r in one.search(query, top_k=5)] == [
            (r["video"], r["start"]) for r in two.search(query, top_k=5)
        ]


@pytest.fixture(scope="module")
def reference_index(videos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "index"
    build_index(videos, out, window=1.0, batch_size=3)
    return out


def test_index_rows_from_workers_are_build_index_rows_and_either_appends(videos, bad_file, reference_index, tmp_path):
    out = tmp_path / "index"
    result = run_index_job([*videos[:3], bad_file], out, EngineOptions(videos_per_call=2), window=1.0, shard_size=4)
    assert (result.indexed, [Path(p).name for p, _ in result.failed]) == (3, ["broken.mp4"])
    build_index(videos, out, batch_size=3)  # a local run appends the rest to the worker-built index
    assert_same_index(out, reference_index)


# ------------------------------------------------------------------------------------------------ on a local Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_job_equals_local_resumes_and_keeps_bad_files_as_rows(
    local_ray, videos, bad_file, tmp_path, pipeline_scores
):
    output = tmp_path / "results.parquet"
    predictor = {"mode": "classify", "labels": LABELS, "multi_label": True}
    ray_options = EngineOptions(engine="ray", num_workers=2, videos_per_call=2)
    # a run stopped after part of the input (what a kill leaves: its committed parts and a partial file), made by
    # the local engine: one Ray execution keeps the test short, and the folder is the same whichever engine wrote it
    first = run_job(videos[:3], output, predictor, EngineOptions(videos_per_call=2), part_rows=2)
    assert first.written == 3 and part_paths(output)
    (output / ".part-stale.parquet.partial").write_bytes(b"half")
    result = run_job([*videos, bad_file], output, predictor, ray_options, part_rows=2)
    assert (result.skipped, result.written, [Path(p).name for p, _ in result.failed]) == (3, 4, ["broken.mp4"])
    table = read_predictions(output)
    assert sorted(table.column("path").to_pylist()) == sorted([*videos, bad_file])  # nothing lost, nothing twice
    assert_scores_match(table, pipeline_scores, videos)
    schemas = {str(__import__("pyarrow.parquet").parquet.read_schema(p)) for p in part_paths(output)}
    assert len(schemas) == 1  # one schema for every part, with its string error column


@pytest.mark.slow
def test_ray_index_is_the_local_index(local_ray, videos, reference_index, tmp_path):
    out = tmp_path / "index"
    run_index_job(videos[3:], out, EngineOptions(engine="ray", num_workers=2, videos_per_call=2), window=1.0)
    build_index(videos[:3], out, batch_size=3)  # appended locally
    assert_same_index(out, reference_index)

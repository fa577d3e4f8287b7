"""`hf-xclip app`: the page served on a free local port and driven through Gradio's Python client (`gradio_client`),
tab by tab, against the library and the commands: classify gives the pipeline's scores, the timeline the segments of
`hf-xclip timeline`, search the results of `hf-xclip search`; bad input is one clear message. One app per module."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file

import hf_xclip
from hf_xclip.app import server
from hf_xclip.app.handlers import AppConfig, AppError, AppState
from hf_xclip.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
WINDOW, STRIDE = 2.0, 0.5


@pytest.fixture(scope="module")
def served(app_server):
    """The app of `app_server` (tests/conftest.py) and a `gradio_client` connected to it."""
    client = Client(app_server["url"], verbose=False, download_files=str(app_server["root"] / "downloads"))
    return {**app_server, "client": client}


# ------------------------------------------------------------------------------------------------ serving


def test_served_on_localhost_only(served):
    assert served["url"].startswith("http://127.0.0.1:")
    assert served["state"].config.share is False


def test_command_defaults_are_local_and_without_share():
    from hf_xclip.cli import build_parser

    args = build_parser().parse_args(["app"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, "off")
    assert server.host_warning("127.0.0.1") is None
    assert "anyone who can reach this machine" in server.host_warning("0.0.0.0")


# ------------------------------------------------------------------------------------------------ Classify


def _classify(
    client, video=None, clip=None, labels="", label_file=None, multi=False, threshold=0.0, top_k=0, bank=False
):
    upload = handle_file(str(video)) if video else None
    label_upload = handle_file(str(label_file)) if label_file else None
    return client.predict(upload, clip, labels, label_upload, bank, multi, threshold, top_k, api_name="/classify")


@pytest.mark.parametrize("multi_label", [False, True])
def test_classify_gives_the_pipelines_scores(served, multi_label):
    """An uploaded clip: the scores shown (exact JSON and the bars) are a fresh pipeline's for that file."""
    from transformers import pipeline

    clip = served["state"].clips[0]
    bars, exact = _classify(served["client"], video=clip.path, labels=", ".join(clip.choices), multi=multi_label)
    reference = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
    expected = reference(str(clip.path), candidate_labels=list(clip.choices), multi_label=multi_label)
    assert [item["label"] for item in exact] == [item["label"] for item in expected]
    assert [item["score"] for item in exact] == pytest.approx([item["score"] for item in expected], abs=1e-6)
    shown = {item["label"]: item["confidence"] for item in bars["value"]["confidences"]}
    assert shown == pytest.approx({item["label"]: item["score"] for item in expected}, abs=1e-6)


def test_classify_a_generated_clip_with_threshold_and_top_k(served):
    state = served["state"]
    clip = state.clips[0]
    _, exact = _classify(
        served["client"], clip=clip.name, labels=", ".join(clip.choices), multi=True, threshold=0.0, top_k=2
    )
    expected = state.classifier(str(clip.path), candidate_labels=list(clip.choices), multi_label=True, top_k=2)
    assert [(item["label"], round(item["score"], 6)) for item in exact] == [
        (item["label"], round(item["score"], 6)) for item in expected
    ]


def test_classify_with_a_label_file(served, tmp_path):
    clip = served["state"].clips[1]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(clip.choices) + "\n")
    _, exact = _classify(served["client"], clip=clip.name, label_file=labels)
    assert sorted(item["label"] for item in exact) == sorted(clip.choices)


def test_classify_against_the_label_bank(served):
    """The bank's labels (all of them when none are typed), scored as the pipeline scores them with that bank."""
    from hf_xclip.labels import LabelBank

    state = served["state"]
    clip = state.clips[1]
    bank = LabelBank.load(served["bank"])
    _, exact = _classify(served["client"], clip=clip.name, bank=True, top_k=5)
    expected = state.classifier(str(clip.path), label_bank=bank, top_k=5)
    assert [(item["label"], round(item["score"], 6)) for item in exact] == [
        (item["label"], round(item["score"], 6)) for item in expected
    ]
    assert len(bank.labels) > 5 and exact[0]["label"] == clip.labels[0]


# ------------------------------------------------------------------------------------------------ errors


def test_a_file_that_is_not_a_video_is_a_clear_error(served, tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(gradio_client.exceptions.AppError) as caught:
        _classify(served["client"], video=bad, labels="a, b")
    message = str(caught.value)
    assert "holiday.mp4" in message and "video" in message.lower()
    assert "Traceback" not in message and "/tmp/" not in message  # the upload's name, not the server's path


def test_an_upload_over_the_limit_is_refused(served, tmp_path):
    """The client is told the limit; the server refuses the bytes itself (HTTP 413); a file over the limit that
    reaches a handler some other way is refused with the limit named."""
    import httpx

    limit = served["state"].config.max_upload_bytes
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * int(limit * 1.5))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        _classify(served["client"], video=big, labels="a, b")
    with open(big, "rb") as handle:
        answer = httpx.post(f"{served['url']}gradio_api/upload", files={"files": ("big.mp4", handle)}, timeout=60)
    assert answer.status_code == 413
    with pytest.raises(AppError, match=r"big.mp4 is 1.5 MiB, over the limit of 1 MiB"):
        served["state"].video_path(str(big))


def test_unknown_label_file_and_missing_labels_are_clear_errors(served, tmp_path):
    clip = served["state"].clips[0]
    empty = tmp_path / "labels.txt"
    empty.write_text("\n\n")
    with pytest.raises(gradio_client.exceptions.AppError, match="labels.txt"):
        _classify(served["client"], clip=clip.name, label_file=empty)
    with pytest.raises(gradio_client.exceptions.AppError, match="type some labels"):
        _classify(served["client"], clip=clip.name)


def test_a_model_that_cannot_load_is_one_message(tmp_path):
    state = AppState(AppConfig(model=str(tmp_path / "no-model"), demo_clips=0, workdir=str(tmp_path)))
    with pytest.raises(AppError, match="no such folder.*no-model"):
        state.warm_up()
    with pytest.raises(AppError, match="no such folder"):  # the failure is remembered, not retried per request
        _ = state.classifier


def test_command_refuses_a_model_that_cannot_load(tmp_path, capsys):
    assert main(["app", "--model", str(tmp_path / "no-model"), "--demo-clips", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hf-xclip app: error: no such folder")


def test_root_app_py_is_hf_xclip_app(tmp_path, monkeypatch, capsys):
    """`python app.py` runs `hf-xclip app` with the same options (a bad model: the same one-line error)."""
    import runpy

    monkeypatch.setattr(sys, "argv", ["app.py", "--model", str(tmp_path / "nope"), "--demo-clips", "0"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    assert done.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("hf-xclip app: error: no such folder")


# ------------------------------------------------------------------------------------------------ Timeline


def test_timeline_segments_equal_the_commands(served, tmp_path):
    state = served["state"]
    sequence = state.clips[-1]
    labels = ", ".join(sequence.choices)
    _, strip, table, files = served["client"].predict(
        handle_file(str(sequence.path)), None, labels, None, False, WINDOW, STRIDE, False, 0, api_name="/timeline"
    )
    downloaded = {Path(path).suffix: Path(path) for path in files}
    ours = json.loads(downloaded[".json"].read_text())
    out = tmp_path / "cli.json"
    assert (
        main(
            [
                "timeline",
                str(sequence.path),
                "--labels",
                labels,
                "--window",
                str(WINDOW),
                "--stride",
                str(STRIDE),
                "--json",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    theirs = json.loads(out.read_text())
    assert ours["segments"] == theirs["segments"] and len(ours["segments"]) >= 4

    def scores(document):
        return [w["scores"][label] for w in document["windows"] for label in document["labels"]]

    assert ours["labels"] == theirs["labels"] and scores(ours) == pytest.approx(scores(theirs), abs=1e-6)
    assert [row[0] for row in table["data"]] == [s["label"] for s in theirs["segments"]]
    assert [row[1] for row in table["data"]] == pytest.approx([s["start"] for s in theirs["segments"]], abs=1e-3)
    assert Path(strip).suffix == ".png" and Path(strip).stat().st_size > 1000
    header = downloaded[".csv"].read_text().splitlines()[0].split(",")
    assert header[:4] == ["start", "end", "top_label", "top_score"] and header[4:] == list(sequence.choices)


def test_timeline_refuses_bad_options(served):
    sequence = served["state"].clips[-1]
    with pytest.raises(gradio_client.exceptions.AppError, match="window"):
        served["client"].predict(None, sequence.name, "a, b", None, False, 0.0, 0.5, False, 0, api_name="/timeline")


# ------------------------------------------------------------------------------------------------ Search


def test_search_gives_the_commands_results(served, capsys):
    if served["index"] is None:
        pytest.skip("the index extra (datasets, faiss) is not installed")
    query = served["state"].clips[2].labels[0]
    gallery, results, window = served["client"].predict(str(served["index"]), query, 3, api_name="/search")
    capsys.readouterr()
    assert main(["search", str(served["index"]), query, "--top-k", "3", "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert [(r["video"], r["start"], r["end"]) for r in results] == [
        (r["video"], r["start"], r["end"]) for r in expected
    ]
    assert [r["score"] for r in results] == pytest.approx([r["score"] for r in expected], abs=1e-4)
    assert Path(expected[0]["video"]).name == served["state"].clips[2].path.name  # the caption finds its clip
    assert len(gallery) == 3 and gallery[0]["caption"].startswith("1. ")
    assert Path(expected[0]["video"]).stem in gallery[0]["caption"]
    assert Path(gallery[0]["image"]).suffix == ".png"
    assert Path(window).suffix == ".mp4"  # the best window plays


def test_search_without_an_index_folder_is_a_clear_error(served, tmp_path):
    with pytest.raises(gradio_client.exceptions.AppError, match="cannot open the index"):
        served["client"].predict(str(tmp_path / "nothing.index"), "a red circle", 3, api_name="/search")

"""Bad input to `hf-xclip` gives one line on stderr naming the file or field and the fix, exit status 2, no traceback,
and nothing written: broken model folders and exports, foreign code, missing paths and offline Hub ids, label files
and banks, and output paths that cannot be created (checked before any work)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from testing_utils import write_synthetic_videos

from hf_xclip.cli import EXIT_USAGE, main


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli_errors")


@pytest.fixture(scope="module")
def video(workdir) -> Path:
    return write_synthetic_videos(workdir / "videos", count=1)[0]


def broken_copy(model_dir: Path, name: str) -> Path:
    folder = model_dir.parent / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(model_dir, folder)
    return folder


def edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def run_cli(capfd, argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of `hf-xclip <argv>` (stdout must stay empty for a refused command)."""
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    assert out == "", out
    return code, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err and "LOAD REPORT" not in err, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def classify(capfd, model: Path | str, video: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    out = tmp_path / "out.json"
    code, err = run_cli(
        capfd,
        ["classify", str(video), "--model", str(model), "--labels", "a,b", "--json", str(out), "--no-progress", *extra],
    )
    assert not out.exists()
    return code, err


def test_wrong_typed_config_field_names_file_and_field(capfd, model_dir, video, tmp_path):
    folder = edit_config(broken_copy(model_dir, "bad_config"), projection_dim="sixty-four")
    assert_one_line_error(*classify(capfd, folder, video, tmp_path), "config.json", "projection_dim", "sixty-four")


def test_missing_weights_file(capfd, model_dir, video, tmp_path):
    folder = broken_copy(model_dir, "no_weights")
    (folder / "model.safetensors").unlink()
    assert_one_line_error(*classify(capfd, folder, video, tmp_path), "no weights file", "model.safetensors")


def test_tensor_of_the_wrong_shape_names_the_tensor_once(capfd, model_dir, video, tmp_path):
    folder = broken_copy(model_dir, "bad_shape")
    weights = load_file(folder / "model.safetensors")
    weights["text_projection.weight"] = torch.zeros(3, 3)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    assert_one_line_error(*classify(capfd, folder, video, tmp_path), "'text_projection.weight'", "[3, 3]")


class _Payload:
    def __reduce__(self):
        return (print, ("UNPICKLED CODE RAN",))


def test_pickle_with_code_is_refused(capfd, model_dir, video, tmp_path):
    folder = broken_copy(model_dir, "pickle_bin")
    (folder / "model.safetensors").unlink()
    torch.save({"weight": _Payload()}, folder / "pytorch_model.bin")
    code, err = classify(capfd, folder, video, tmp_path)
    assert_one_line_error(code, err, "pytorch_model.bin", "refused")
    assert "UNPICKLED CODE RAN" not in err


def test_truncated_safetensors_names_the_file(capfd, model_dir, video, tmp_path):
    folder = broken_copy(model_dir, "truncated")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert_one_line_error(*classify(capfd, folder, video, tmp_path), "model.safetensors", "truncated")


def test_foreign_code_is_refused_without_a_prompt(capfd, model_dir, video, tmp_path, monkeypatch):
    folder = edit_config(broken_copy(model_dir, "custom_code"), model_type="someone_elses_model")
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("asked on stdin"))
    assert_one_line_error(*classify(capfd, folder, video, tmp_path), "auto_map", "trust_remote_code")


def _fake_export(model_dir: Path, name: str) -> Path:
    """An export folder (onnx_config.json + graphs) whose graphs are not valid ONNX: loading must stop at them."""
    folder = broken_copy(model_dir, name)
    (folder / "model.safetensors").unlink()
    graphs = {
        graph: {"file": f"{graph}.onnx", "inputs": {}, "outputs": {}}
        for graph in ("text_encoder", "video_encoder", "scorer")
    }
    manifest = {"format": "hf_xclip-onnx", "manifest_version": 1, "opset": 18, "graphs": graphs}
    (folder / "onnx_config.json").write_text(json.dumps(manifest))
    for graph in graphs:
        (folder / f"{graph}.onnx").write_bytes(b"\x08\x07\x12\x04trunc")
    return folder


def test_export_missing_a_graph(capfd, model_dir, video, tmp_path):
    pytest.importorskip("onnxruntime")
    folder = _fake_export(model_dir, "export_missing")
    (folder / "text_encoder.onnx").unlink()  # the first graph loaded (the others are not valid graphs)
    assert_one_line_error(*classify(capfd, folder, video, tmp_path), "text_encoder.onnx", "missing")


def test_export_with_a_truncated_graph(capfd, model_dir, video, tmp_path):
    pytest.importorskip("onnxruntime")
    folder = _fake_export(model_dir, "export_truncated")
    assert_one_line_error(*classify(capfd, folder, video, tmp_path), ".onnx", "export the model again")


@pytest.mark.parametrize("name", ["./nosuch_model", "some/where/nosuch_model"])
def test_path_like_model_that_does_not_exist(capfd, video, tmp_path, name):
    assert_one_line_error(*classify(capfd, name, video, tmp_path), "no such folder", name)


def test_hub_id_when_offline_is_refused_at_once(capfd, video, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    assert_one_line_error(*classify(capfd, "nosuch_model", video, tmp_path), "nosuch_model", "HF_HUB_OFFLINE")
    assert time.perf_counter() - start < 10


def test_hub_id_without_network_is_refused_at_once(capfd, video, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: as without a network
    start = time.perf_counter()
    assert_one_line_error(*classify(capfd, "nosuch_model", video, tmp_path), "nosuch_model", "cannot be reached")
    assert time.perf_counter() - start < 10


def test_labels_file_not_utf8_names_the_file(capfd, model_dir, video, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("caf\xe9\njuggling\n".encode("latin-1"))
    out = tmp_path / "out.json"
    code, err = run_cli(
        capfd, ["classify", str(video), "--model", str(model_dir), "--labels-file", str(labels), "--json", str(out)]
    )
    assert_one_line_error(code, err, str(labels), "UTF-8")
    assert not out.exists()


def test_label_bank_with_a_wrong_label_count_names_the_file(capfd, model_dir, video, tmp_path):
    from hf_xclip.labels import LabelBank

    bank_file = tmp_path / "bank.safetensors"
    LabelBank(labels=["a", "b"], embeddings=torch.zeros(2, 4), templates=("{}",), fingerprint="x").save(bank_file)
    from safetensors import safe_open

    with safe_open(str(bank_file), framework="pt") as handle:
        header, embeddings = handle.metadata(), handle.get_tensor("embeddings")
    header["labels"] = json.dumps(["a", "b", "c"])
    save_file({"embeddings": embeddings}, bank_file, metadata=header)
    code, err = run_cli(capfd, ["classify", str(video), "--model", str(model_dir), "--label-bank", str(bank_file)])
    assert_one_line_error(code, err, str(bank_file), "3 labels")


@pytest.mark.parametrize(
    "argv",
    [
        ["classify", "{video}", "--labels", "a,b", "--json", "{file}/out.json"],
        ["classify", "{video}", "--labels", "a,b", "--csv", "{file}/sub/out.csv"],
        ["timeline", "{video}", "--labels", "a,b", "--html", "{file}/page.html"],
        ["export", "--output", "{file}/export"],
        ["finetune", "--train-dir", "{workdir}", "--output-dir", "{file}/adapter"],
        ["labels", "encode", "--labels", "a,b", "--output", "{file}/bank.safetensors"],
        ["index", "{video}", "--output", "{file}/index"],
    ],
    ids=lambda argv: argv[0] + " " + next(a for a in argv if a.startswith("--") and a not in ("--labels",)),
)
def test_output_under_a_regular_file_is_refused_before_any_work(capfd, workdir, video, tmp_path, argv):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # the model does not even exist: the output check comes first
    argv = [a.format(video=video, file=blocker, workdir=workdir) for a in argv] + ["--model", "./nosuch_model"]
    code, err = run_cli(capfd, argv)
    assert_one_line_error(code, err, str(blocker), "is a file")
    assert blocker.read_text() == "not a folder"

"""`hf-xclip` against inputs a user gets wrong, and output that must not mislead: every bad input is one line naming
the file and the fix (exit 2, nothing written); labels the model cannot read, thresholds that keep nothing and empty
inputs are said out loud; with ``--json`` stdout holds the JSON alone."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from testing_utils import write_synthetic_videos

from hf_xclip.cli import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, main, unknown_labels


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("adversarial_cli")


@pytest.fixture(scope="module")
def videos(workdir) -> list[Path]:
    return write_synthetic_videos(workdir / "videos", count=2)


def run_cli(capfd, argv: list[str]) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- bad input: one line, exit 2, nothing written --------------------------------------------------------------


def test_model_path_that_is_a_file(capfd, videos, tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    code, _, err = run_cli(capfd, ["classify", videos[0], "--model", weights, "--labels", "a,b"])
    assert code == EXIT_USAGE and "is a file" in one_line(err) and "config.json" in one_line(err)


def test_model_folder_without_config(capfd, videos, tmp_path):
    code, _, err = run_cli(capfd, ["classify", videos[0], "--model", tmp_path, "--labels", "a,b"])
    assert code == EXIT_USAGE and "no config.json" in one_line(err)


def test_config_that_is_not_json(capfd, model_dir, videos, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    (folder / "config.json").write_text('{"projection_dim": 64,')
    code, _, err = run_cli(capfd, ["classify", videos[0], "--model", folder, "--labels", "a,b"])
    assert code == EXIT_USAGE and "config.json" in one_line(err) and "not valid JSON" in one_line(err)


def test_json_output_that_is_a_folder(capfd, model_dir, videos, tmp_path):
    code, _, err = run_cli(capfd, ["classify", videos[0], "--model", model_dir, "--labels", "a,b", "--json", tmp_path])
    assert code == EXIT_USAGE and "is a folder" in one_line(err)


def test_descriptions_not_utf8_names_the_file(capfd, model_dir, videos, tmp_path):
    descriptions = tmp_path / "descriptions.json"
    descriptions.write_bytes('{"a": ["caf\xe9"]}'.encode("latin-1"))
    code, _, err = run_cli(
        capfd, ["classify", videos[0], "--model", model_dir, "--labels", "a,b", "--label-descriptions", descriptions]
    )
    assert code == EXIT_USAGE and str(descriptions) in one_line(err)


def test_adapter_path_that_does_not_exist(capfd, model_dir, videos):
    code, _, err = run_cli(
        capfd, ["classify", videos[0], "--model", model_dir, "--labels", "a,b", "--adapter", "./no/such/adapter"]
    )
    assert code == EXIT_USAGE and "no such folder" in one_line(err) and "adapter" in one_line(err)


def test_index_of_an_empty_folder_writes_nothing(capfd, model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "index"
    code, _, err = run_cli(capfd, ["index", tmp_path / "empty", "--model", model_dir, "--output", out])
    assert code == EXIT_USAGE and "no video files" in one_line(err)
    assert not out.exists()
    code, _, err = run_cli(capfd, ["index", tmp_path / "missing", "--model", model_dir, "--output", out])
    assert code == EXIT_USAGE and "missing" in one_line(err)
    assert not out.exists()


def test_finetune_refuses_a_non_empty_output_dir(capfd, model_dir, tmp_path):
    train = tmp_path / "train"
    for name in ("a", "b"):
        write_synthetic_videos(train / name, count=1)
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(capfd, ["finetune", "--model", model_dir, "--train-dir", train, "--output-dir", out])
    assert code == EXIT_USAGE and "--overwrite" in one_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# -- honest output ----------------------------------------------------------------------------------------------


def test_labels_the_tokenizer_does_not_know_are_named():
    from transformers import AutoTokenizer

    from hf_xclip.embedded_model.location import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    found = unknown_labels(tokenizer, ["surfing", "a red square moving left", "juggling balls"])
    assert [label for label, _, _ in found] == ["surfing", "juggling balls"]


def test_classify_warns_on_unknown_labels(capfd, videos):
    code, out, err = run_cli(capfd, ["classify", videos[0], "--labels", "surfing,a red square", "--no-progress"])
    assert code == EXIT_OK
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "'surfing'" in warnings[0]


def test_threshold_that_keeps_nothing_says_so_with_the_top_score(capfd, model_dir, videos, tmp_path):
    out = tmp_path / "out.json"
    code, stdout, err = run_cli(
        capfd,
        [
            "classify",
            videos[0],
            "--model",
            model_dir,
            "--labels",
            "a,b",
            "--multi-label",
            "--threshold",
            "0.999",
            "--no-progress",
        ],
    )
    assert code == EXIT_OK
    assert "no label reached the threshold" in stdout
    message = next(line for line in err.splitlines() if "no label reached" in line)
    assert "--threshold 0.999" in message and "top:" in message
    # the kept labels are the scores at or above the threshold: 0 keeps every label
    code, _, _ = run_cli(
        capfd,
        [
            "classify",
            videos[0],
            "--model",
            model_dir,
            "--labels",
            "a,b",
            "--multi-label",
            "--threshold",
            "0",
            "--json",
            out,
            "--no-progress",
        ],
    )
    assert code == EXIT_OK and len(json.loads(out.read_text())[0]["predictions"]) == 2


def test_timeline_threshold_that_keeps_nothing(capfd, model_dir, videos):
    code, stdout, err = run_cli(
        capfd,
        [
            "timeline",
            videos[0],
            "--model",
            model_dir,
            "--labels",
            "a,b",
            "--multi-label",
            "--threshold",
            "0.999",
            "--window",
            "0.4",
            "--no-progress",
        ],
    )
    assert code == EXIT_OK and "(no segments)" in stdout
    assert "no label reached --threshold 0.999" in err and "top:" in err


def test_json_flag_keeps_stdout_to_the_json(capfd, model_dir, videos, tmp_path):
    code, stdout, err = run_cli(
        capfd, ["index", *videos, "--model", model_dir, "--output", tmp_path / "index", "--json", "--no-progress"]
    )
    assert code == EXIT_OK
    summary = json.loads(stdout)  # the whole of stdout is one JSON document
    assert summary["indexed"] == 2
    assert "indexed 2 video(s)" in err
    code, stdout, err = run_cli(capfd, ["search", tmp_path / "index", "a red square", "--json"])
    assert code == EXIT_OK and isinstance(json.loads(stdout), list)


def test_an_unreadable_video_is_reported_once(capfd, model_dir, videos, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    code, _, err = run_cli(
        capfd, ["index", broken, videos[0], "--model", model_dir, "--output", tmp_path / "index", "--no-progress"]
    )
    assert code == EXIT_FAILURES
    assert len([line for line in err.splitlines() if str(broken) in line]) == 1, err


def test_no_progress_and_no_peft_warning_with_an_adapter(capfd, model_dir, videos, tmp_path):
    from hf_xclip import XClipAdapterConfig, XClipModel, get_xclip_peft_model

    adapter = tmp_path / "adapter"
    get_xclip_peft_model(
        XClipModel.from_pretrained(model_dir), XClipAdapterConfig.for_method(["lora"])
    ).save_pretrained(adapter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, stdout, err = run_cli(
            capfd,
            ["classify", videos[0], "--model", model_dir, "--adapter", adapter, "--labels", "a,b", "--no-progress"],
        )
    assert code == EXIT_OK and stdout
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    assert "Loading weights" not in err and "%|" not in err, err


def test_a_truncated_shard_is_refused_by_search_and_redone_by_index(capfd, model_dir, videos, tmp_path):
    index = tmp_path / "index"
    assert run_cli(capfd, ["index", *videos, "--model", model_dir, "--output", index, "--no-progress"])[0] == EXIT_OK
    (shard,) = (index / "shards").glob("*.arrow")
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) * 2 // 3])
    code, out, err = run_cli(capfd, ["search", index, "a red square", "--model", model_dir, "--json"])
    assert code == EXIT_USAGE and out == ""
    assert shard.name in err and "truncated" in err and "hf-xclip index" in err
    code, out, _ = run_cli(capfd, ["index", *videos, "--model", model_dir, "--output", index, "--no-progress"])
    assert code == EXIT_OK and "indexed 2 video(s)" in out  # the damaged shard's videos are redone
    assert (index / "shards" / f".{shard.name}.broken").is_file()
    code, out, _ = run_cli(capfd, ["search", index, "a red square", "--model", model_dir, "--json"])
    assert code == EXIT_OK and len(json.loads(out)) == 2

"""`hf-xclip classify`: folders, label files, outputs (table / JSON / CSV / plots), failures and exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from testing_utils import save_tiny_transformers_xclip, write_synthetic_videos
from transformers import pipeline

import hf_xclip.embedded_model.location
from hf_xclip.cli import COMMANDS, main
from hf_xclip.pipeline_zero_shot_video_classification import TASK

REPO = Path(__file__).resolve().parents[1]
LABELS = ["surfing", "juggling", "cooking", "dancing"]


@pytest.fixture(scope="module")
def video_tree(workdir) -> Path:
    """root/a/video_{0,1}.mp4, root/b/nested/video_0.mp4, plus files that must be ignored."""
    root = workdir / "videos"
    write_synthetic_videos(root / "a", count=2)
    nested = write_synthetic_videos(root / "b" / "nested", count=1, seed=5)
    nested[0].rename(nested[0].with_suffix(".MP4"))  # extensions are case-insensitive
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden.mp4").write_bytes(b"ignored")
    return root


def expected_videos(root: Path) -> list[str]:
    return [
        str(root / "a" / "video_0.mp4"),
        str(root / "a" / "video_1.mp4"),
        str(root / "b" / "nested" / "video_0.MP4"),
    ]


def test_every_command_is_registered_with_help():
    """Every module of `hf_xclip.commands` is a sub-command of `hf-xclip` and answers `--help`."""
    import pkgutil

    import hf_xclip.commands

    modules = sorted(m.name for m in pkgutil.iter_modules(hf_xclip.commands.__path__) if not m.name.startswith("_"))
    assert sorted(COMMANDS) == modules
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0


def test_table_output_walks_folders(model_dir, video_tree, capsys):
    code = main(["classify", str(video_tree), "--model", str(model_dir), "--labels", ",".join(LABELS), "--top-k", "2"])
    out = capsys.readouterr().out
    assert code == 0
    headers = [line for line in out.splitlines() if not line.startswith(" ")]
    assert headers == expected_videos(video_tree)
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 2 * 3
    assert "notes.txt" not in out and ".hidden" not in out


def test_json_matches_pipeline(model_dir, video_tree, workdir):
    out = workdir / "results.json"
    code = main(
        [
            "classify",
            str(video_tree),
            "--model",
            str(model_dir),
            "--labels",
            ",".join(LABELS),
            "--top-k",
            "0",
            "--json",
            str(out),
            "--no-progress",
            "--batch-size",
            "2",
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    assert [item["video"] for item in payload] == expected_videos(video_tree)
    clf = pipeline(TASK, model=str(model_dir))
    for item in payload:
        direct = clf(item["video"], candidate_labels=LABELS)
        assert [p["label"] for p in item["predictions"]] == [p["label"] for p in direct]
        assert [p["score"] for p in item["predictions"]] == pytest.approx([p["score"] for p in direct], abs=1e-5)


def test_csv_and_labels_files(model_dir, video_tree, workdir, capsys):
    labels_csv = workdir / "labels.csv"
    labels_csv.write_text("id,name\n" + "".join(f"{i},{label}\n" for i, label in enumerate(LABELS)))
    labels_txt = workdir / "labels.txt"
    labels_txt.write_text("# classes\n" + "\n".join(LABELS) + "\n\n")
    outputs = []
    for labels_file in (labels_csv, labels_txt):
        code = main(
            [
                "classify",
                str(video_tree / "a"),
                "--model",
                str(model_dir),
                "--labels-file",
                str(labels_file),
                "--top-k",
                "3",
                "--csv",
                "-",
                "--no-progress",
            ]
        )
        assert code == 0
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert len(rows) == 2 * 3
        assert {row["label"] for row in rows} <= set(LABELS)
        assert [row["rank"] for row in rows[:3]] == ["1", "2", "3"]
        scores = [float(row["score"]) for row in rows[:3]]
        assert scores == sorted(scores, reverse=True)
        outputs.append(rows)
    assert outputs[0] == outputs[1]


def test_unreadable_files_are_skipped(model_dir, video_tree, workdir, capsys):
    broken = workdir / "broken"
    broken.mkdir()
    (broken / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    (broken / "empty.avi").write_bytes(b"")
    out = workdir / "partial.json"
    code = main(
        [
            "classify",
            str(video_tree / "a"),
            str(broken),
            str(workdir / "missing.mp4"),
            "--model",
            str(model_dir),
            "--labels",
            ",".join(LABELS),
            "--json",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "garbage.mp4" in err and "empty.avi" in err and "missing.mp4" in err
    assert "3 of 5 video(s) failed" in err
    assert [item["video"] for item in json.loads(out.read_text())] == expected_videos(video_tree)[:2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--labels", "a,,b"], "empty label"),
        (["--labels", "a,b,a"], "duplicate label"),
        (["--labels-file", "/nonexistent/labels.txt"], "not found"),
        (["--labels", "a,b", "--top-k", "-1"], "--top-k"),
        (["--labels", "a,b", "--template", "no placeholder"], "template"),
    ],
)
def test_usage_errors(model_dir, video_tree, capsys, extra, message):
    code = main(["classify", str(video_tree / "a"), "--model", str(model_dir), "--no-progress", *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_model_defaults_to_default_model_path(model_dir, video_tree, monkeypatch, capsys):
    def missing():
        raise FileNotFoundError("the embedded default model is missing")

    monkeypatch.setattr(hf_xclip.embedded_model.location, "default_model_path", missing)
    assert main(["classify", str(video_tree / "a"), "--labels", "a,b"]) == 2
    assert "no --model given and the embedded default model is missing" in capsys.readouterr().err
    monkeypatch.setattr(hf_xclip.embedded_model.location, "default_model_path", lambda: str(model_dir))
    assert main(["classify", str(video_tree / "a"), "--labels", "a,b", "--json", "-", "--no-progress"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_plot(model_dir, video_tree, workdir):
    single = workdir / "plots" / "one.png"
    code = main(
        [
            "classify",
            str(video_tree / "a" / "video_0.mp4"),
            "--model",
            str(model_dir),
            "--labels",
            ",".join(LABELS),
            "--plot",
            str(single),
            "--no-progress",
        ]
    )
    assert code == 0 and single.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = main(
        [
            "classify",
            str(video_tree / "a"),
            "--model",
            str(model_dir),
            "--labels",
            ",".join(LABELS),
            "--plot",
            str(workdir / "plots" / "many.png"),
            "--top-k",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in (workdir / "plots").glob("many-*.png")) == [
        "many-000-video_0.png",
        "many-001-video_1.png",
    ]


def test_plot_without_matplotlib(model_dir, video_tree, workdir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(
        [
            "classify",
            str(video_tree / "a"),
            "--model",
            str(model_dir),
            "--labels",
            "a,b",
            "--plot",
            str(workdir / "never.png"),
        ]
    )
    assert code == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not (workdir / "never.png").exists()


def test_transformers_format_model_and_entry_point(workdir, video_tree):
    directory, _ = save_tiny_transformers_xclip(workdir / "transformers-model")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_xclip.cli",
            "classify",
            str(video_tree / "a" / "video_1.mp4"),
            "--model",
            str(directory),
            "--labels",
            ",".join(LABELS),
            "--json",
            "-",
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload[0]["video"].endswith("video_1.mp4")
    assert sum(p["score"] for p in payload[0]["predictions"]) == pytest.approx(1.0, abs=1e-4)


def test_multi_label_threshold_and_method(model_dir, video_tree, capsys):
    video = str(video_tree / "a" / "video_0.mp4")
    common = [
        "classify",
        video,
        "--model",
        str(model_dir),
        "--labels",
        ",".join(LABELS),
        "--multi-label",
        "--top-k",
        "0",
        "--json",
        "-",
        "--no-progress",
    ]
    assert main(common) == 0
    every = json.loads(capsys.readouterr().out)[0]["predictions"]
    assert len(every) == len(LABELS) and all(0 <= p["score"] <= 1 for p in every)
    cut = every[1]["score"]
    assert main([*common, "--threshold", str(cut)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["predictions"] == [p for p in every if p["score"] >= cut]
    assert main([*common, "--multi-label-method", "negative"]) == 0
    negative = json.loads(capsys.readouterr().out)[0]["predictions"]
    assert {p["label"] for p in negative} == set(LABELS) and negative != every
    assert main([*common, "--multi-label-method", "sigmoid"]) == 2
    assert "sigmoid head" in capsys.readouterr().err
    assert main(["classify", video, "--model", str(model_dir), "--labels", "a,b", "--threshold", "2"]) == 2
    assert "--threshold" in capsys.readouterr().err

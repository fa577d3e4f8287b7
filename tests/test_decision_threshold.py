"""The sigmoid head's decision threshold: fitted for the best F1 (global, and per label with enough positives), stored
in the config next to the head, and used by default by the pipeline and `classify --multi-label`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from testing_utils import save_tiny_xclip, write_synthetic_videos
from transformers import pipeline

from hf_xclip import XClipModel
from hf_xclip.cli import main
from hf_xclip.multilabel import (
    decision_thresholds,
    fit_decision_threshold,
    set_decision_threshold,
    set_sigmoid_head,
)


def _f1(probs: torch.Tensor, targets: torch.Tensor, cut: float) -> float:
    predicted, targets = probs >= cut, targets > 0.5
    hits = int((predicted & targets).sum())
    return 2 * hits / (int(predicted.sum()) + int(targets.sum()))


def test_the_fitted_threshold_has_the_best_f1_of_every_cut():
    generator = torch.Generator().manual_seed(0)
    targets = (torch.rand(40, 3, generator=generator) < 0.1).float()
    # an honest head for rare labels: every probability well below 0.5, positives a bit higher
    probs = 0.02 + 0.1 * torch.rand(40, 3, generator=generator) + 0.08 * targets
    threshold, per_label = fit_decision_threshold(probs, targets, ["a", "b", "c"], min_positives=100)
    best = max(_f1(probs, targets, float(cut)) for cut in probs.flatten())
    assert _f1(probs, targets, threshold) == pytest.approx(best)
    assert _f1(probs, targets, threshold) > _f1(probs, targets, 0.5) == 0.0
    assert per_label == {}  # no label has 100 positives


def test_labels_with_enough_positives_get_their_own_threshold():
    targets = torch.tensor([[1, 0]] * 6 + [[0, 1]] * 2 + [[0, 0]] * 6, dtype=torch.float32)
    probs = torch.where(targets[:, :1] > 0, 0.9, 0.1).repeat(1, 2)  # label a separable at any cut in (0.1, 0.9)
    probs[:, 1] = torch.where(targets[:, 1] > 0, 0.3, 0.2)
    threshold, per_label = fit_decision_threshold(probs, targets, ["a", "b"], min_positives=5)
    assert list(per_label) == ["a"] and 0.1 < per_label["a"] <= 0.9
    assert 0.0 < threshold <= 0.9


def test_thresholds_travel_with_the_config_and_a_new_head_drops_them(tmp_path):
    model = XClipModel.from_pretrained(save_tiny_xclip(tmp_path / "model"))
    set_sigmoid_head(model, 10.0, -5.0)
    set_decision_threshold(model, 0.2, {"b": 0.7})
    model.save_pretrained(tmp_path / "saved")
    loaded = XClipModel.from_pretrained(tmp_path / "saved")
    assert decision_thresholds(loaded, ["a", "b"]) == [0.2, 0.7]
    set_sigmoid_head(loaded, 3.0, 0.0)
    assert decision_thresholds(loaded, ["a", "b"]) is None


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model with a head and thresholds that keep label 'a' only (cut 0 for a, 1 for b)."""
    root = tmp_path_factory.mktemp("threshold")
    model = XClipModel.from_pretrained(save_tiny_xclip(root / "model"))
    set_sigmoid_head(model, 5.0, 0.0)
    set_decision_threshold(model, 1.0, {"a": 0.0})
    model.save_pretrained(root / "calibrated")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "preprocessor_config.json"):
        if (root / "model" / name).is_file():
            (root / "calibrated" / name).write_bytes((root / "model" / name).read_bytes())
    return root / "calibrated", write_synthetic_videos(root / "videos", count=1)[0]


def test_the_pipeline_uses_the_fitted_thresholds_unless_one_is_given(calibrated):
    folder, video = calibrated
    classifier = pipeline("zero-shot-video-classification", model=str(folder))
    default = classifier(str(video), candidate_labels=["a", "b"], multi_label=True)
    assert [item["label"] for item in default] == ["a"]
    given = classifier(str(video), candidate_labels=["a", "b"], multi_label=True, threshold=0.0)
    assert sorted(item["label"] for item in given) == ["a", "b"]
    single = classifier(str(video), candidate_labels=["a", "b"])  # single-label: no head, no threshold
    assert len(single) == 2


def test_classify_multi_label_uses_them_and_says_when_nothing_reaches_them(calibrated, tmp_path, capsys):
    folder, video = calibrated
    out = tmp_path / "out.json"
    assert (
        main(
            [
                "classify",
                str(video),
                "--model",
                str(folder),
                "--labels",
                "a,b",
                "--multi-label",
                "--json",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert [p["label"] for p in json.loads(out.read_text())[0]["predictions"]] == ["a"]
    assert (
        main(["classify", str(video), "--model", str(folder), "--labels", "b", "--multi-label", "--no-progress"]) == 0
    )
    err = capsys.readouterr().err
    assert "no label reached the calibrated threshold" in err and "'b'" in err

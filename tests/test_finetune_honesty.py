"""`hf-xclip finetune` says what a user must know: labels naming a left/right direction turn the default random flip
off (a flip swaps them), and a run that made held-out mAP worse than the training-free model says so in its summary
and model card."""

from __future__ import annotations

from types import SimpleNamespace

from hf_xclip.commands.finetune import _direction_aware_flip
from hf_xclip.finetuning.training import FewShotTrainingArguments
from hf_xclip.hub.model_cards import _worse_than_training_free


def test_direction_labels_turn_the_default_flip_off_with_a_notice(capsys):
    args = FewShotTrainingArguments()
    assert args.hflip_prob == 0.5
    flipped = _direction_aware_flip(args, ["a red square moving left", "a blue circle growing"], False)
    assert flipped.hflip_prob == 0.0
    assert "'a red square moving left'" in capsys.readouterr().err
    # no direction, or a flip probability the user chose: unchanged, silent
    assert _direction_aware_flip(args, ["a red square", "a leftover sandwich"], False).hflip_prob == 0.5
    assert _direction_aware_flip(args, ["moving right"], True) is args
    assert capsys.readouterr().err == ""


def _result(before: float, after: float):
    metrics = lambda value: SimpleNamespace(metrics={"mAP": value})  # noqa: E731
    return SimpleNamespace(eval_before=metrics(before), eval_after=metrics(after))


def test_the_card_warns_when_training_made_map_worse():
    lines = _worse_than_training_free(_result(0.70, 0.59))
    assert any("worse" in line and "0.7000 -> 0.5900" in line for line in lines)
    assert _worse_than_training_free(_result(0.70, 0.95)) == []

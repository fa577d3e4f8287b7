"""Multi-label scoring (`hf_xclip.multilabel`), the sigmoid head in the config, and the multi-label metrics
(`hf_xclip.evaluation.evaluate`): definitions checked against scikit-learn and hand-computed values, heads fitted to
known parameters, WiSE interpolation exact for the low-rank families."""

from __future__ import annotations

import math

import pytest
import torch
from testing_utils import XClipModelTester

from hf_xclip import XClipConfig, XClipModel
from hf_xclip.evaluation.evaluate import average_precision, multi_label_metrics
from hf_xclip.finetuning.training import wise_interpolate
from hf_xclip.multilabel import (
    SigmoidHead,
    asymmetric_loss,
    fit_sigmoid_head,
    resolve_method,
    scores_from_logits,
    set_sigmoid_head,
    sigmoid_head_of,
    video_label_scores,
)

# ---------------------------------------------------------------------------------------------------------------
# Metrics


def test_average_precision_by_hand():
    # ranking: pos, neg, pos, neg -> precision at the positives 1 and 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision(torch.tensor([0.9, 0.8, 0.7, 0.1]), torch.tensor([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert average_precision(torch.tensor([0.9, 0.8]), torch.tensor([1, 1])) == pytest.approx(1.0)
    # ties form one threshold: a positive tied with a negative at the top counts precision 1/2
    assert average_precision(torch.tensor([0.5, 0.5, 0.1]), torch.tensor([1, 0, 0])) == pytest.approx(0.5)
    assert average_precision(torch.tensor([0.3, 0.2]), torch.tensor([0, 0])) is None


def test_average_precision_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    for trial in range(20):
        size = int(torch.randint(2, 60, (1,), generator=generator))
        targets = (torch.rand(size, generator=generator) < 0.3).long()
        targets[0] = 1
        scores = torch.rand(size, generator=generator)
        if trial % 3 == 0:
            scores = (scores * 4).round() / 4  # many ties
        expected = metrics.average_precision_score(targets.numpy(), scores.numpy())
        assert average_precision(scores, targets) == pytest.approx(expected, abs=1e-12)


def test_multi_label_metrics():
    labels = ["a", "b", "c"]
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    # a ranked perfectly, b with one negative above a positive, c never present; z = logit(p)
    probs = torch.tensor([[0.9, 0.6, 0.2], [0.1, 0.8, 0.3], [0.7, 0.4, 0.6], [0.2, 0.5, 0.1]])
    result = multi_label_metrics(torch.logit(probs), targets, labels, novel_labels=["b", "c"], threshold=0.5)
    ap_b = (1 + 2 / 4) / 2  # b: 0.8 (pos), 0.6 (neg), 0.5 (neg), 0.4 (pos) -> precision 1 then 2/4
    assert result["per_class_ap"] == pytest.approx({"a": 1.0, "b": ap_b, "c": None})
    assert result["mAP"] == pytest.approx((1.0 + ap_b) / 2)
    assert result["base_mAP"] == pytest.approx(1.0) and result["novel_mAP"] == pytest.approx(ap_b)
    # at 0.5: predicted a@0, b@0, b@1, a@2, c@2, b@3 (0.5 >= 0.5) -> 3 hits of 6 predicted, 4 positives
    assert result["precision"] == pytest.approx(3 / 6) and result["recall"] == pytest.approx(3 / 4)
    assert result["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert result["num_videos"] == 4 and result["num_labels"] == 3
    assert "novel_mAP" not in multi_label_metrics(torch.logit(probs), targets, labels)
    with pytest.raises(ValueError, match="must both be"):
        multi_label_metrics(probs[:, :2], targets, labels)


# ---------------------------------------------------------------------------------------------------------------
# The sigmoid head


def test_fit_sigmoid_head_recovers_known_parameters():
    generator = torch.Generator().manual_seed(0)
    cosine = torch.rand(4000, 5, generator=generator) * 0.6 - 0.1
    scale, bias = 20.0, -5.0
    targets = (torch.rand(cosine.shape, generator=generator) < torch.sigmoid(scale * cosine + bias)).float()
    fitted_scale, fitted_bias = fit_sigmoid_head(cosine, targets)
    assert fitted_scale == pytest.approx(scale, rel=0.08) and fitted_bias == pytest.approx(bias, rel=0.08)
    # separable data give finite values, ordered the right way
    separable_scale, _ = fit_sigmoid_head(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1]))
    assert 0 < separable_scale < 1e5
    with pytest.raises(ValueError, match="both present and absent"):
        fit_sigmoid_head(torch.rand(4), torch.ones(4))
    with pytest.raises(ValueError, match="cannot tell them apart"):
        fit_sigmoid_head(torch.tensor([0.9, 0.8, 0.2, 0.1] * 5), torch.tensor([0, 0, 1, 1] * 5))


def test_sigmoid_head_module_and_asymmetric_loss():
    head = SigmoidHead(10.0, -2.0)
    assert head.values() == pytest.approx((10.0, -2.0))
    torch.testing.assert_close(head(torch.tensor([0.5])), torch.tensor([3.0]))
    logits, targets = torch.randn(6, 4), (torch.rand(6, 4) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(asymmetric_loss(logits, targets, gamma_neg=0, gamma_pos=0, clip=0), bce)
    # focusing and the margin only lower the negatives' part
    assert asymmetric_loss(logits, targets) < bce
    easy_negative = asymmetric_loss(torch.tensor([[-6.0]]), torch.tensor([[0.0]]))
    assert easy_negative == 0.0  # p = 0.0025 < clip 0.05: discarded


@pytest.fixture(scope="module")
def tester() -> XClipModelTester:
    return XClipModelTester()


def test_config_head_defaults_leave_outputs_unchanged_and_round_trip(tester, tmp_path):
    torch.manual_seed(0)
    model = XClipModel(tester.config()).eval()
    assert model.config.multi_label_scale is None and sigmoid_head_of(model) is None
    input_ids, pixel_values = tester.input_ids(3), tester.pixel_values(2)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, labels=labels)
        plain = torch.nn.functional.binary_cross_entropy_with_logits(out.logits_per_video, labels)
        torch.testing.assert_close(out.loss, plain)  # no head: BCE on the logits, as before
        torch.testing.assert_close(model.multi_label_logits(out.logits_per_video), out.logits_per_video)
        set_sigmoid_head(model, 12.5, -3.25)
        headed = model(input_ids=input_ids, pixel_values=pixel_values, labels=labels)
        torch.testing.assert_close(headed.logits_per_video, out.logits_per_video)  # logits unchanged
        cosine = out.logits_per_video / model.logit_scale.exp()
        torch.testing.assert_close(model.multi_label_logits(out.logits_per_video), 12.5 * cosine - 3.25)
        expected = torch.nn.functional.binary_cross_entropy_with_logits(12.5 * cosine - 3.25, labels)
        torch.testing.assert_close(headed.loss, expected)
    model.save_pretrained(tmp_path)
    loaded = XClipModel.from_pretrained(tmp_path)
    assert sigmoid_head_of(loaded) == {"scale": 12.5, "bias": -3.25}
    with pytest.raises(ValueError, match="multi_label_scale"):
        XClipConfig(multi_label_scale=-1.0)


def test_scores_of_each_method_depend_only_on_their_label(tester):
    torch.manual_seed(1)
    model = XClipModel(tester.config()).eval()
    set_sigmoid_head(model, 10.0, -1.0)
    with torch.no_grad():
        video = model.get_video_features(tester.pixel_values(2), output_prompt_features=True)
        labels = model.get_text_features(input_ids=tester.input_ids(4)).pooler_output
        background = model.get_text_features(input_ids=tester.input_ids(3, seed=5)).pooler_output
        for method, reference in (("sigmoid", None), ("background", background), ("negative", labels.flip(0))):
            full = video_label_scores(model, video.pooler_output, video.prompt_features, labels, method, reference)
            for k in range(4):
                own = None if reference is None else (reference if method == "background" else reference[k : k + 1])
                alone = video_label_scores(
                    model, video.pooler_output, video.prompt_features, labels[k : k + 1], method, own
                )
                torch.testing.assert_close(alone[:, 0], full[:, k], atol=1e-5, rtol=1e-5)
    logits = torch.tensor([[2.0, 0.0]])
    torch.testing.assert_close(
        scores_from_logits(model, logits, "negative", torch.tensor([[1.0, 1.0]])), torch.tensor([[1.0, -1.0]])
    )
    background = torch.tensor([[0.0, math.log(3.0)]])  # log(mean(exp)) = log(2)
    torch.testing.assert_close(scores_from_logits(model, logits, "background", background), logits - math.log(2.0))


def test_resolve_method(tester):
    model = XClipModel(tester.config())
    assert resolve_method("auto", model) == "background"
    with pytest.raises(ValueError, match="needs a model with a sigmoid head"):
        resolve_method("sigmoid", model)
    set_sigmoid_head(model, 5.0, 0.0)
    assert resolve_method("auto", model) == "sigmoid" and resolve_method("negative", model) == "negative"
    with pytest.raises(ValueError, match="unknown multi-label method"):
        resolve_method("max", model)


# ---------------------------------------------------------------------------------------------------------------
# WiSE-FT


@pytest.mark.parametrize("kind", ["lora", "rslora", "loha", "lokr", "full"])
def test_wise_interpolates_the_weights_exactly(kind):
    from peft import LoHaConfig, LoKrConfig, LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    original = {name: p.detach().clone() for name, p in base.named_parameters()}
    configs = {
        "lora": LoraConfig(r=2, target_modules=["0", "2"]),
        "rslora": LoraConfig(r=2, target_modules=["0", "2"], use_rslora=True),
        "loha": LoHaConfig(r=2, target_modules=["0", "2"]),
        "lokr": LoKrConfig(r=2, target_modules=["0", "2"]),
    }
    model = base if kind == "full" else get_peft_model(base, configs[kind])
    start = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.3)  # "training"
    merged = _merged(model)
    wise_interpolate(model, start, 0.3)
    for name, weight in _merged(model).items():
        expected = original[name] + 0.3 * (merged[name] - original[name])
        torch.testing.assert_close(weight, expected, atol=1e-6, rtol=1e-5)


def _merged(model) -> dict[str, torch.Tensor]:
    """Effective weights of the model (adapters merged into a copy)."""
    import copy

    clone = copy.deepcopy(model)
    if hasattr(clone, "merge_and_unload"):
        clone = clone.merge_and_unload()
    return {name: p.detach().clone() for name, p in clone.named_parameters()}

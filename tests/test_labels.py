"""The label core (`hf_xclip.labels`): one template rule everywhere, label files, the encoder (cache, groups,
ensembling, class-specific contexts) and label banks (round trip, append, refusal of another model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from testing_utils import XClipModelTester, randomise_
from transformers import AutoTokenizer, pipeline

from hf_xclip import XClipModel
from hf_xclip.cli import main as cli_main
from hf_xclip.data import write_video
from hf_xclip.data.folders import find_videos, scan_video_folder
from hf_xclip.finetuning.training import FewShotTrainingArguments
from hf_xclip.fingerprint import model_fingerprint
from hf_xclip.labels import (
    LabelBank,
    LabelBankMismatchError,
    LabelEncoder,
    ensemble_text_embeddings,
    read_label_descriptions,
    read_label_file,
    tokenize_labels,
    validate_template,
)
from hf_xclip.modeling_prompts import XClipPromptContext
from hf_xclip.pipeline_zero_shot_video_classification import TASK

LABELS = ["playing guitar", "surfing", "eating spaghetti", "walking the dog", "juggling"]


@pytest.fixture(scope="module")
def model(model_dir):
    return XClipModel.from_pretrained(model_dir).eval()


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)


# ------------------------------------------------------------------------------------------------ templates


@pytest.mark.parametrize("template", ["no placeholder", "{} and {}", "{0} {1}", "{name}", "{", 3])
def test_one_template_rule_everywhere(model_dir, template, tmp_path, capsys):
    with pytest.raises(ValueError, match="template"):
        validate_template(template)
    with pytest.raises(ValueError, match="template"):
        FewShotTrainingArguments(template=template)
    classifier = pipeline(TASK, model=str(model_dir))
    with pytest.raises(ValueError, match="template"):
        classifier(np.zeros((4, 32, 32, 3), np.uint8), candidate_labels=LABELS, hypothesis_template=template)
    if isinstance(template, str):
        data = tmp_path / "data" / "surfing"
        data.mkdir(parents=True)
        write_video(data / "v.mp4", np.zeros((4, 32, 32, 3), np.uint8), fps=4)
        code = cli_main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--data-dir",
                str(tmp_path / "data"),
                "--template",
                template,
                "--no-progress",
            ]
        )
        assert code == 2 and "template" in capsys.readouterr().err


def test_valid_templates_pass():
    assert validate_template("a video of {}.") == "a video of {}."
    assert validate_template("{}") == "{}"


# ------------------------------------------------------------------------------------------------ label files


def test_read_label_file_lines_and_csv(tmp_path):
    lines = tmp_path / "labels.txt"
    lines.write_text("# comment\nsurfing\n\n  juggling  \n", encoding="utf-8")
    assert read_label_file(lines) == ["surfing", "juggling"]
    table = tmp_path / "labels.csv"
    table.write_text("id,name\n0,abseiling\n1,air drumming\n", encoding="utf-8")
    assert read_label_file(table) == ["abseiling", "air drumming"]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("dup.txt", "a\nb\na\n", "line 3: duplicate label 'a' (first on line 1)"),
        ("empty.csv", "id,name\n0,a\n1,\n", "line 3: empty label"),
        ("nothing.txt", "# only a comment\n", "no labels found"),
    ],
)
def test_read_label_file_errors_name_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_label_file(path)
    assert str(path) in str(info.value) and message in str(info.value)


# ------------------------------------------------------------------------------------------------ encoder


def test_encoder_equals_the_text_tower_on_padded_batch(model, tokenizer):
    encoder = LabelEncoder(model, tokenizer, batch_size=2)
    batch = tokenize_labels(tokenizer, LABELS, "{}", model.config.text_config.max_position_embeddings)
    with torch.no_grad():
        direct = model.get_text_features(**batch).pooler_output
    torch.testing.assert_close(encoder.encode_labels(LABELS), direct, atol=1e-6, rtol=1e-5)


def test_encoder_caches_each_text_once(model, tokenizer):
    encoder = LabelEncoder(model, tokenizer)
    encoder.encode_labels(LABELS)
    assert encoder.cache.misses == len(LABELS) and encoder.cache.hits == 0
    again = encoder.encode_labels(LABELS[::-1])
    assert encoder.cache.misses == len(LABELS) and encoder.cache.hits == len(LABELS)
    assert torch.equal(again, encoder.encode_labels(LABELS).flip(0))


def test_class_specific_context_is_encoded_in_class_order_and_not_cached(model, tokenizer):
    torch.manual_seed(0)
    prompted = XClipModel(model.config).eval()
    prompted.load_state_dict(model.state_dict())
    context: XClipPromptContext = prompted.text_model.prompt_context
    context.set_context(torch.randn(len(LABELS), 2, model.config.text_config.hidden_size))
    encoder = LabelEncoder(prompted, tokenizer)
    batch = tokenize_labels(tokenizer, LABELS, "{}", model.config.text_config.max_position_embeddings)
    with torch.no_grad():
        direct = prompted.get_text_features(**batch).pooler_output
    torch.testing.assert_close(encoder.encode_labels(LABELS), direct, atol=1e-6, rtol=1e-5)
    assert len(encoder.cache) == 0
    with pytest.raises(ValueError, match="5 classes but 2 texts"):
        encoder.encode_labels(LABELS[:2])


# ------------------------------------------------------------------------------------------------ banks


def test_bank_round_trip_gives_bit_identical_scores(model, tokenizer, tmp_path):
    encoder = LabelEncoder(model, tokenizer)
    templates = ("{}", "a video of {}.")
    bank = encoder.bank(LABELS, templates, model="tiny")
    path = bank.save(tmp_path / "labels.safetensors")
    loaded = LabelBank.load(path)
    assert (
        loaded.labels == LABELS
        and loaded.templates == templates
        and loaded.metadata == {"model_family": "xclip", "model": "tiny"}
    )
    loaded.check_model(model)
    pixel_values = XClipModelTester.pipeline(model.config.text_config.vocab_size).pixel_values(batch_size=2)
    with torch.no_grad():
        video = model.get_video_features(pixel_values, output_prompt_features=True)
        fresh, _ = model.get_logits(
            video.pooler_output, encoder.encode_labels(LABELS, templates), video.prompt_features
        )
        banked, _ = model.get_logits(video.pooler_output, loaded.embeddings_for(LABELS), video.prompt_features)
    assert torch.equal(fresh, banked)
    subset = ["juggling", "surfing"]
    assert torch.equal(loaded.embeddings_for(subset), encoder.encode_labels(subset, templates))


def test_bank_append_keeps_existing_rows(model, tokenizer, tmp_path):
    encoder = LabelEncoder(model, tokenizer)
    bank = encoder.bank(LABELS[:3])
    before = bank.embeddings.clone()
    added = bank.append(encoder, [LABELS[1], *LABELS[3:]])
    assert added == LABELS[3:] and bank.labels == LABELS
    assert torch.equal(bank.embeddings[:3], before)
    assert torch.equal(bank.embeddings, encoder.encode_labels(LABELS).float())


def test_bank_refuses_another_model(model, tokenizer, tmp_path):
    bank = LabelEncoder(model, tokenizer).bank(LABELS, model="tiny-0")
    other = randomise_(XClipModel(model.config).eval(), seed=5)
    with pytest.raises(LabelBankMismatchError, match="tiny-0"):
        bank.check_model(other)
    with pytest.raises(LabelBankMismatchError):
        bank.append(LabelEncoder(other, tokenizer), ["new label"])


def test_bank_file_errors(tmp_path, model, tokenizer):
    with pytest.raises(FileNotFoundError):
        LabelBank.load(tmp_path / "missing.safetensors")
    not_a_bank = tmp_path / "weights.safetensors"
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").rename(not_a_bank)
    with pytest.raises(ValueError, match="not an hf_xclip label bank"):
        LabelBank.load(not_a_bank)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match=str(garbage.name)):
        LabelBank.load(garbage)


def test_text_fingerprint_follows_text_weights_only(model):
    from peft import LoraConfig, get_peft_model

    text = model_fingerprint(model, "text")
    base = XClipModel(model.config).eval()
    base.load_state_dict(model.state_dict())
    vision_lora = get_peft_model(base, LoraConfig(target_modules=r".*vision_model.*\.q_proj", init_lora_weights=False))
    assert model_fingerprint(vision_lora, "text") == text  # adapters elsewhere leave the text side as it was
    assert model_fingerprint(vision_lora, "video") != model_fingerprint(model, "video")
    base = XClipModel(model.config).eval()
    base.load_state_dict(model.state_dict())
    text_lora = get_peft_model(base, LoraConfig(target_modules=r".*text_model.*\.q_proj", init_lora_weights=False))
    assert model_fingerprint(text_lora, "text") != text
    assert model_fingerprint(model.to(torch.bfloat16), "text") == text  # the same weights in bf16
    model.float()


def test_bank_keeps_descriptions_and_refuses_changed_ones(model, tokenizer, tmp_path):
    encoder = LabelEncoder(model, tokenizer)
    bank = encoder.bank(LABELS[:2], descriptions=DESCRIPTIONS)
    loaded = LabelBank.load(bank.save(tmp_path / "bank.safetensors"))
    assert loaded.descriptions == {"surfing": tuple(DESCRIPTIONS["surfing"])}
    assert torch.equal(loaded.embeddings, encoder.encode_labels(LABELS[:2], descriptions=DESCRIPTIONS).float())
    loaded.append(encoder, LABELS, DESCRIPTIONS)
    assert "juggling" in loaded.descriptions and torch.equal(loaded.embeddings[:2], bank.embeddings)
    with pytest.raises(ValueError, match="other descriptions"):
        loaded.append(encoder, ["surfing"], {"surfing": ["something else"]})


# ------------------------------------------------------------------------------------------------ descriptions

DESCRIPTIONS = {
    "surfing": ["a person rides a wave on a board", "the sea and a surfboard"],
    "juggling": ["balls thrown up and caught in turn"],
    "not a candidate": ["ignored"],
}


def test_descriptions_join_the_template_ensemble(model, tokenizer):
    encoder = LabelEncoder(model, tokenizer)
    templates = ["{}", "a video of {}."]
    got = encoder.encode_labels(LABELS, templates, DESCRIPTIONS)
    plain = encoder.encode_labels(LABELS, templates)
    for row, label in enumerate(LABELS):
        texts = [t.format(label) for t in templates] + DESCRIPTIONS.get(label, [])
        expected = ensemble_text_embeddings(encoder.encode_texts(texts)[None])[0]
        torch.testing.assert_close(got[row], expected, atol=1e-6, rtol=1e-5)
        if label not in DESCRIPTIONS:
            assert torch.equal(got[row], plain[row])  # a label without descriptions keeps its plain embedding
    assert not torch.allclose(got[1], plain[1])


def test_descriptions_with_a_class_specific_context_are_refused(model, tokenizer):
    prompted = XClipModel(model.config).eval()
    prompted.load_state_dict(model.state_dict())
    prompted.text_model.prompt_context.set_context(torch.randn(len(LABELS), 2, model.config.text_config.hidden_size))
    with pytest.raises(ValueError, match="class-specific"):
        LabelEncoder(prompted, tokenizer).encode_labels(LABELS, descriptions=DESCRIPTIONS)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "JSON object"),
        ('{"surfing": 3}', "label 'surfing' must be a list"),
        ('{"surfing": ["ok", ""]}', "description 1 of label 'surfing' is empty"),
        ('{"surfing": ["same", "same"]}', "label 'surfing' has the same description twice"),
    ],
)
def test_description_file_errors_name_file_and_label(tmp_path, text, message):
    path = tmp_path / "descriptions.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_label_descriptions(path)
    assert str(path) in str(info.value) and message in str(info.value)


# ------------------------------------------------------------------------------------------------ banks in the pipeline


def test_pipeline_scores_with_a_bank_exactly_as_on_the_fly(model_dir, tmp_path):
    video = (np.random.default_rng(3).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    classifier = pipeline(TASK, model=str(model_dir))
    templates = ["{}", "a video of {}."]
    path = classifier.label_encoder.bank(LABELS[:4], templates, DESCRIPTIONS).save(tmp_path / "bank.safetensors")
    fly = classifier(video, candidate_labels=LABELS, hypothesis_template=templates, label_descriptions=DESCRIPTIONS)
    fresh = pipeline(TASK, model=str(model_dir), label_bank=str(path))  # a new process would do the same
    banked = fresh(video, candidate_labels=LABELS, label_descriptions=DESCRIPTIONS)  # 'juggling' is not in the bank
    assert banked == fly
    every = fresh(video)  # without candidate labels: every label of the bank
    assert sorted(item["label"] for item in every) == sorted(LABELS[:4])
    with pytest.raises(ValueError, match="templates"):
        fresh(video, candidate_labels=LABELS, hypothesis_template="{}")
    with pytest.raises(ValueError, match="other descriptions"):
        fresh(video, candidate_labels=LABELS, label_descriptions={"surfing": ["changed"]})
    other = XClipModel.from_pretrained(model_dir)
    randomise_(other, seed=9, style="spread")
    with pytest.raises(LabelBankMismatchError):
        pipeline(
            TASK,
            model=other,
            tokenizer=classifier.tokenizer,
            video_processor=classifier.video_processor,
            label_bank=str(path),
        )


def test_adding_labels_leaves_the_other_labels_scores_unchanged(model_dir, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS[:3]) + "\n", encoding="utf-8")
    bank = tmp_path / "bank.safetensors"
    argv = [
        "labels",
        "encode",
        "--model",
        str(model_dir),
        "--labels-file",
        str(labels),
        "--output",
        str(bank),
        "--json",
    ]
    assert cli_main(argv) == 0
    before = LabelBank.load(bank)
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    assert cli_main(argv) == 0
    after = LabelBank.load(bank)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["added"] == 2 and summary["already_there"] == 3 and after.labels == LABELS
    assert torch.equal(after.embeddings[:3], before.embeddings)
    video = (np.random.default_rng(4).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    classifier = pipeline(TASK, model=str(model_dir))
    old = classifier(video, label_bank=before, multi_label=True)
    new = classifier(video, label_bank=after, multi_label=True)  # independent per-label scores
    # Same rows, same scores; only float rounding of the batched prompt generator differs with the label count.
    assert {item["label"]: item["score"] for item in old} == pytest.approx(
        {item["label"]: item["score"] for item in new if item["label"] in LABELS[:3]}, rel=1e-5, abs=1e-6
    )
    assert cli_main([*argv, "--template", "a video of {}."]) == 2
    assert "encoded with templates" in capsys.readouterr().err


def test_classify_and_evaluate_accept_banks_and_descriptions(model_dir, tmp_path, capsys):
    frames = (np.random.default_rng(5).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    for label in LABELS[:3]:
        (tmp_path / "data" / label).mkdir(parents=True)
        write_video(tmp_path / "data" / label / "v.mp4", frames, fps=6)
    descriptions = tmp_path / "descriptions.json"
    descriptions.write_text(json.dumps(DESCRIPTIONS), encoding="utf-8")
    labels = ",".join(LABELS[:3])
    bank = tmp_path / "bank.safetensors"
    assert (
        cli_main(
            [
                "labels",
                "encode",
                "--model",
                str(model_dir),
                "--labels",
                labels,
                "--output",
                str(bank),
                "--label-descriptions",
                str(descriptions),
            ]
        )
        == 0
    )
    runs = {}
    for name, extra in (
        ("fly", ["--labels", labels, "--label-descriptions", str(descriptions)]),
        ("bank", ["--label-bank", str(bank)]),
    ):
        out = tmp_path / f"{name}.json"
        code = cli_main(
            [
                "classify",
                str(tmp_path / "data"),
                "--model",
                str(model_dir),
                "--top-k",
                "0",
                "--no-progress",
                "--json",
                str(out),
                *extra,
            ]
        )
        assert code == 0, capsys.readouterr().err
        runs[name] = json.loads(out.read_text())
    assert runs["fly"] == runs["bank"]
    reports = {}
    for name, extra in (
        ("fly", ["--label-descriptions", str(descriptions)]),
        ("bank", ["--label-bank", str(bank)]),
        ("plain", []),
    ):
        code = cli_main(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--data-dir",
                str(tmp_path / "data"),
                "--num-workers",
                "0",
                "--no-progress",
                "--json",
                *extra,
            ]
        )
        assert code == 0
        reports[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert reports["fly"]["per_class"] == reports["bank"]["per_class"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"surfing": [1]}', encoding="utf-8")
    assert (
        cli_main(
            [
                "classify",
                str(tmp_path / "data"),
                "--model",
                str(model_dir),
                "--labels",
                labels,
                "--label-descriptions",
                str(bad),
            ]
        )
        == 2
    )
    assert "bad.json" in capsys.readouterr().err
    assert cli_main(["classify", str(tmp_path / "data"), "--model", str(model_dir)]) == 2
    assert "--label-bank" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ video files


def test_evaluate_and_classify_accept_the_same_files(tmp_path):
    frames = (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    root = tmp_path / "data"
    for label, suffix in (("surfing", ".mp4"), ("surfing", ".GIF"), ("juggling", ".gif"), ("juggling", ".mkv")):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        codec = {"gif": dict(codec="gif", pix_fmt="rgb8")}.get(suffix.lower().lstrip("."), {})
        write_video(folder / f"clip{len(list(folder.iterdir()))}{suffix}", frames, fps=6, **codec)
    (root / "juggling" / "notes.txt").write_text("not a video")
    (root / "surfing" / ".hidden.mp4").write_bytes(b"")
    classified, missing = find_videos([root])
    evaluated = [str(item.path) for item in scan_video_folder(root).items]
    assert not missing and sorted(classified) == sorted(evaluated) and len(evaluated) == 4
    assert json.dumps(sorted(classified)).count(".gif") + json.dumps(sorted(classified)).count(".GIF") == 2

"""The language-model label prompter (`hf_xclip.language.prompter`, `--method llm-prompts`) and language-model label
descriptions (`hf-xclip labels describe`), on tiny random causal language models built from configs (no download).

Spec: soft tokens come from any `AutoModelForCausalLM`; the prompter starts at the hand-written prompt; gradients
reach only the prompter (and the adapters chosen with it); the language model and the CLIP text encoder are
bit-identical after training; an adapter reloads to identical scores; a label bank made with the prompter scores
identically without loading the language model, and is refused by another model or adapter.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from testing_utils import few_shot_specs, save_tiny_causal_lm

from hf_xclip import XClipModel, XClipProcessor
from hf_xclip.cli import main as cli_main
from hf_xclip.data.clip_dataset import VideoClassificationDataset, collate_videos
from hf_xclip.data.folders import scan_video_folder
from hf_xclip.data.synthetic import write_video_folder
from hf_xclip.finetuning.adapters import load_model_with_adapter, save_adapter
from hf_xclip.finetuning.peft_config import XClipAdapterConfig
from hf_xclip.finetuning.peft_model import get_xclip_peft_model, parameter_groups
from hf_xclip.finetuning.training import FewShotTrainingArguments, train_few_shot
from hf_xclip.fingerprint import model_fingerprint
from hf_xclip.labels import LabelBank, LabelEncoder, find_label_prompter
from hf_xclip.language.causal_lm import first_sentence, language_model_signature, load_language_model
from hf_xclip.language.prompter import (
    PROMPTER_CONFIG_FILE,
    PROMPTER_WEIGHTS_FILE,
    LLMPrompterConfig,
    XClipLLMPrompter,
    attach_label_prompter,
    detach_label_prompter,
)

SPECS = few_shot_specs()
CLASSES = sorted(spec.caption for spec in SPECS)

MODEL_DIR = "synthetic"  # the conftest `model_dir` fixture


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("llama"), kind="llama")[0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_video_folder(root / "train", 4, specs=SPECS, seed=1, num_frames=8, size=32, background="plain")
    write_video_folder(root / "eval", 2, specs=SPECS, seed=2, num_frames=8, size=32, background="plain")
    (root / "labels.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    return root


def _model(model_dir):
    return XClipModel.from_pretrained(model_dir).eval()


def _prompter(model, tokenizer, lm_dir, **settings) -> XClipLLMPrompter:
    torch.manual_seed(0)
    return XClipLLMPrompter.for_model(model, tokenizer, LLMPrompterConfig(language_model=str(lm_dir), **settings))


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ the language model


def test_signature_ignores_paths_and_dtypes_but_not_the_architecture(lm_dir, tmp_path):
    model, lm_tokenizer = load_language_model(str(lm_dir))
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    half, _ = load_language_model(str(lm_dir), dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    model.save_pretrained(tmp_path / "elsewhere")
    lm_tokenizer.save_pretrained(tmp_path / "elsewhere")
    moved, _ = load_language_model(str(tmp_path / "elsewhere"))
    signature = language_model_signature(model.config)
    assert signature == language_model_signature(half.config) == language_model_signature(moved.config)
    other = save_tiny_causal_lm(tmp_path / "wider", hidden_size=48)[1]
    assert language_model_signature(other.config) != signature


def test_8bit_needs_a_gpu(lm_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="8-bit.*CUDA"):
        load_language_model(str(lm_dir), load_in_8bit=True)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_soft_tokens_from_any_causal_lm_do_not_depend_on_the_batch(kind, model_dir, tokenizer, tmp_path):
    lm_dir = save_tiny_causal_lm(tmp_path / kind, kind=kind)[0]
    prompter = _prompter(_model(model_dir), tokenizer, lm_dir, num_prompt_tokens=5).eval()
    labels = ["a red circle growing", "surfing", "a green square moving left and right"]
    with torch.no_grad():
        together = prompter.soft_tokens(labels)
        alone = torch.cat([prompter.soft_tokens([label]) for label in labels])
        states = prompter.language_model_states(labels)
    assert together.shape == (3, 5, 32) and states.shape == (3, 5, prompter.lm_hidden_size)
    # right padding: a causal model's states at the prompt tokens never see another label's padding
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])  # the soft tokens depend on the label


# ------------------------------------------------------------------------------------------------ in the label core


def test_prompter_starts_at_the_hand_written_prompt(model_dir, tokenizer, lm_dir):
    plain = _model(model_dir)
    expected = LabelEncoder(plain, tokenizer).encode_labels(CLASSES, "a video of a {}")
    prompted = _model(model_dir)
    attach_label_prompter(prompted, _prompter(prompted, tokenizer, lm_dir, output_init_std=0.0))
    got = LabelEncoder(prompted, tokenizer).encode_labels(CLASSES)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_without_class_tokens_the_soft_tokens_stand_for_the_label(model_dir, tokenizer, lm_dir):
    model = _model(model_dir)
    attach_label_prompter(model, _prompter(model, tokenizer, lm_dir, output_init_std=0.0, include_class_tokens=False))
    same = LabelEncoder(model, tokenizer).encode_labels(CLASSES)
    assert torch.allclose(same[0], same[1]) and torch.allclose(same[1], same[2])  # no class tokens, no LM signal yet
    model = _model(model_dir)
    attach_label_prompter(model, _prompter(model, tokenizer, lm_dir, include_class_tokens=False))
    different = LabelEncoder(model, tokenizer).encode_labels(CLASSES)
    assert not torch.allclose(different[0], different[1], atol=1e-6)  # only the language model tells them apart


def test_language_model_runs_once_per_label_and_is_cached(model_dir, tokenizer, lm_dir):
    model = _model(model_dir)
    attach_label_prompter(model, _prompter(model, tokenizer, lm_dir))
    encoder = LabelEncoder(model, tokenizer)
    encoder.encode_labels(CLASSES, ["{}", "a video of {}"], {CLASSES[0]: ["a red round shape gets bigger"]})
    assert encoder.soft_token_cache.misses == 3 and len(encoder.cache) == 7
    encoder.encode_labels(CLASSES, "a clip of {}")
    assert encoder.soft_token_cache.misses == 3 and encoder.soft_token_cache.hits == 3


def test_fingerprint_covers_the_prompter_and_its_settings(model_dir, tokenizer, lm_dir):
    model = _model(model_dir)
    plain = model_fingerprint(model, "text")
    video = model_fingerprint(model, "video")
    prompter = _prompter(model, tokenizer, lm_dir)
    attach_label_prompter(model, prompter)
    with_prompter = model_fingerprint(model, "text")
    assert with_prompter != plain and model_fingerprint(model, "video") == video
    other = XClipLLMPrompter(
        LLMPrompterConfig(language_model=str(lm_dir), lm_template="a video of {}"),
        num_prompt_tokens=prompter.num_prompt_tokens,
        text_hidden_size=32,
        lm_hidden_size=prompter.lm_hidden_size,
        lm_signature=prompter.lm_signature,
    )
    other.load_state_dict(prompter.state_dict())
    attach_label_prompter(model, other)  # same weights, another template for the language model
    assert model_fingerprint(model, "text") not in (plain, with_prompter)
    detach_label_prompter(model)
    assert model_fingerprint(model, "text") == plain and find_label_prompter(model) is None


def test_model_save_leaves_the_prompter_out(model_dir, tokenizer, lm_dir, tmp_path):
    model = _model(model_dir)
    attach_label_prompter(model, _prompter(model, tokenizer, lm_dir))
    model.save_pretrained(tmp_path / "saved")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "saved" / "model.safetensors"), "pt") as handle:
        assert not [key for key in handle.keys() if "label_prompter" in key]
    assert model_fingerprint(XClipModel.from_pretrained(tmp_path / "saved"), "text") == model_fingerprint(
        _model(model_dir), "text"
    )


# ------------------------------------------------------------------------------------------------ training


def test_gradients_reach_only_the_prompter_and_the_chosen_adapters(model_dir, tokenizer, lm_dir, data_dir):
    model = _model(model_dir)
    config = XClipAdapterConfig.for_method(
        ["llm-prompts", "lora"], lora_text=True, llm_prompter=LLMPrompterConfig(language_model=str(lm_dir))
    )
    peft_model = get_xclip_peft_model(model, config, tokenizer=tokenizer, class_names=CLASSES)
    prompter = _prompter(model, tokenizer, lm_dir)
    attach_label_prompter(peft_model, prompter)
    prompter.requires_grad_(True)
    language_model = prompter.language_model()[0]
    dataset = VideoClassificationDataset(
        scan_video_folder(data_dir / "train"), XClipProcessor.from_pretrained(model_dir)
    )
    batch = collate_videos([dataset[0], dataset[5]])
    text = LabelEncoder(peft_model, tokenizer).label_features(CLASSES)
    logits = peft_model(pixel_values=batch["pixel_values"], text_embeds=text).logits_per_video
    torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
    with_grad = {name for name, p in peft_model.named_parameters() if p.grad is not None}
    assert with_grad == {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert all(p.grad.abs().sum() > 0 for p in prompter.parameters())  # every prompter weight learns at once
    assert {n.split(".label_prompter.")[-1] for n in with_grad if ".label_prompter." in n} == {
        n for n, _ in prompter.named_parameters()
    }
    assert all("lora_" in n or ".label_prompter." in n for n in with_grad)
    assert any("text_model" in n and "lora_" in n for n in with_grad)
    assert all(p.grad is None for p in language_model.parameters())
    groups = {g["name"] for g in parameter_groups(peft_model, {"lora": 1e-3, "llm-prompts": 1e-3}, 0.01)}
    assert groups == {"lora", "llm-prompts"}


@pytest.fixture(scope="module")
def trained(model_dir, tokenizer, lm_dir, data_dir, tmp_path_factory):
    """llm-prompts trained with train_few_shot; the language model and the base weights as they were before."""
    model = _model(model_dir)
    processor = XClipProcessor.from_pretrained(model_dir)
    prompter = _prompter(model, tokenizer, lm_dir)
    lm_before = {k: v.clone() for k, v in prompter.language_model()[0].state_dict().items()}
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    prompter_before = {k: v.clone() for k, v in prompter.state_dict().items()}
    args = FewShotTrainingArguments(
        epochs=6, batch_size=4, learning_rate=3e-3, augment=False, show_progress=False, mixed_precision="no"
    )
    config = XClipAdapterConfig.for_method("llm-prompts", llm_prompter=prompter.config)
    result = train_few_shot(
        model,
        processor,
        scan_video_folder(data_dir / "train"),
        adapter_config=config,
        args=args,
        eval_folder=scan_video_folder(data_dir / "eval"),
        label_prompter=prompter,
    )
    out = tmp_path_factory.mktemp("adapter") / "llm-prompts"
    save_adapter(result, out, base_model=str(model_dir))
    return result, out, lm_before, base_before, prompter_before


def test_training_changes_only_the_prompter(trained):
    result, _, lm_before, base_before, prompter_before = trained
    assert all(math.isfinite(x) for x in result.step_losses)
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    prompter = find_label_prompter(result.model)
    language_model = prompter.language_model()[0]
    assert all(torch.equal(v, lm_before[k]) for k, v in language_model.state_dict().items())
    base = result.model.get_base_model().state_dict()
    assert all(torch.equal(base[k], v) for k, v in base_before.items())  # text encoder (and everything else) as before
    changed = [k for k, v in prompter.state_dict().items() if not torch.equal(v, prompter_before[k])]
    assert "prompt_tokens" in changed and "output_proj.weight" in changed
    assert result.adapter_config.methods == ["llm-prompts"] and result.trainable_parameters == sum(
        p.numel() for p in prompter.parameters()
    )


def test_adapter_reloads_to_identical_scores(trained, model_dir, tokenizer, data_dir, capsys):
    result, out, *_ = trained
    assert (out / PROMPTER_CONFIG_FILE).is_file() and (out / PROMPTER_WEIGHTS_FILE).is_file()
    saved = json.loads((out / "xclip_adapter.json").read_text())
    assert saved["methods"] == ["llm-prompts"] and saved["adapter_config"]["llm_prompter"]["language_model"]
    reloaded, processor, _ = load_model_with_adapter(model_dir, out)
    prompter = find_label_prompter(reloaded)
    assert prompter is not None and not prompter.language_model_loaded  # loaded on first use only
    trained_embeds = LabelEncoder(result.model, tokenizer).encode_labels(CLASSES)
    reloaded_embeds = LabelEncoder(reloaded, processor.tokenizer).encode_labels(CLASSES)
    assert torch.equal(trained_embeds, reloaded_embeds)
    assert model_fingerprint(reloaded, "text") == model_fingerprint(result.model, "text")
    code, stdout, err = _cli(
        [
            "evaluate",
            "--model",
            model_dir,
            "--adapter",
            out,
            "--data-dir",
            data_dir / "eval",
            "--num-workers",
            "0",
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert _last_json(stdout)["top1"] == pytest.approx(result.eval_after.top1)


def test_bank_from_the_adapter_scores_identically_without_the_language_model(
    trained, model_dir, data_dir, tmp_path, capsys
):
    _, out, *_ = trained
    bank_path = tmp_path / "classes.bank"
    code, stdout, err = _cli(
        [
            "labels",
            "encode",
            "--model",
            model_dir,
            "--adapter",
            out,
            "--labels-file",
            data_dir / "labels.txt",
            "--output",
            bank_path,
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert _last_json(stdout)["labels"] == 3 and LabelBank.load(bank_path).metadata["language_model"]
    common = ["classify", data_dir / "eval", "--model", model_dir, "--adapter", out, "--top-k", "0", "--no-progress"]
    code, _, err = _cli([*common, "--labels-file", data_dir / "labels.txt", "--json", tmp_path / "fly.json"], capsys)
    assert code == 0, err
    # with the bank, the language model is never loaded: a wrong path for it does not matter
    code, _, err = _cli(
        [
            *common,
            "--label-bank",
            bank_path,
            "--language-model",
            tmp_path / "nowhere",
            "--json",
            tmp_path / "bank.json",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "fly.json").read_text()) == json.loads((tmp_path / "bank.json").read_text())
    code, _, err = _cli(
        [*common, "--labels-file", data_dir / "labels.txt", "--language-model", tmp_path / "nowhere"], capsys
    )
    assert code == 2 and "language model" in err
    # the same bank with the base model alone (another text side) is refused
    code, _, err = _cli(["classify", data_dir / "eval", "--model", model_dir, "--label-bank", bank_path], capsys)
    assert code == 2 and "adapter" in err and "labels encode" in err
    code, _, err = _cli(
        ["evaluate", "--model", model_dir, "--data-dir", data_dir / "eval", "--label-bank", bank_path, "--no-progress"],
        capsys,
    )
    assert code == 2 and "fingerprint" in err


def test_cli_llm_prompts_with_lora(model_dir, lm_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "adapter"
    code, stdout, err = _cli(
        [
            "finetune",
            "--model",
            model_dir,
            "--train-dir",
            data_dir / "train",
            "--eval-dir",
            data_dir / "eval",
            "--method",
            "llm-prompts",
            "lora",
            "--language-model",
            lm_dir,
            "--llm-prompt-tokens",
            "6",
            "--llm-hidden-size",
            "64",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--num-workers",
            "0",
            "--output-dir",
            out,
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    summary = _last_json(stdout)
    assert summary["methods"] == ["lora", "llm-prompts"]
    config = json.loads((out / PROMPTER_CONFIG_FILE).read_text())
    assert config["num_prompt_tokens"] == 6 and config["config"]["hidden_size"] == 64
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [([], "needs --language-model"), (["--language-model", "/does/not/exist"], "error")],
)
def test_cli_llm_prompts_bad_language_model(model_dir, data_dir, tmp_path, capsys, extra, message):
    code, _, err = _cli(
        [
            "finetune",
            "--model",
            model_dir,
            "--train-dir",
            data_dir / "train",
            "--method",
            "llm-prompts",
            "--output-dir",
            tmp_path / "out",
            "--no-progress",
            *extra,
        ],
        capsys,
    )
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ descriptions


def test_first_sentence():
    assert first_sentence(' "A person rides a wave. Then falls."\nQ: next') == "A person rides a wave."
    assert first_sentence("\n\n") == ""


def test_describe_is_deterministic_resumes_and_feeds_the_label_core(lm_dir, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("playing guitar\nsurfing\njuggling\n", encoding="utf-8")
    out = tmp_path / "descriptions.json"
    argv = [
        "labels",
        "describe",
        "--generator",
        lm_dir,
        "--labels-file",
        labels,
        "--output",
        out,
        "--max-new-tokens",
        "8",
        "--prompt",
        "Describe {}:",
        "--prompt",
        "A video of {} shows",
    ]
    code, stdout, err = _cli(argv, capsys)
    assert code == 0, err
    first = json.loads(out.read_text())
    assert list(first) == ["playing guitar", "surfing", "juggling"]
    assert all(isinstance(v, list) and len(v) <= 2 for v in first.values())
    assert sum(len(v) for v in first.values()) > 0  # a random model still writes words
    # an interrupted run: one label missing -> only that label is generated, with the same text as before
    partial = dict(first)
    partial.pop("surfing")
    out.write_text(json.dumps(partial), encoding="utf-8")
    code, stdout, _ = _cli(argv, capsys)
    assert code == 0 and "1 labels described now, 2 kept" in stdout
    assert json.loads(out.read_text()) == first
    code, _, _ = _cli([*argv, "--overwrite"], capsys)
    assert code == 0 and json.loads(out.read_text()) == first  # greedy: deterministic


def test_describe_bad_input(lm_dir, tmp_path, capsys):
    code, _, err = _cli(
        ["labels", "describe", "--generator", tmp_path / "nothing", "--labels", "a,b", "--output", tmp_path / "d.json"],
        capsys,
    )
    assert code == 2 and "generator" in err
    code, _, err = _cli(
        [
            "labels",
            "describe",
            "--generator",
            lm_dir,
            "--labels",
            "a,b",
            "--output",
            tmp_path / "d.json",
            "--prompt",
            "no placeholder",
        ],
        capsys,
    )
    assert code == 2 and "prompts" in err
    code, _, err = _cli(["labels"], capsys)
    assert code == 2 and "encode or describe" in err

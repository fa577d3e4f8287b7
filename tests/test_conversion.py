"""Conversion of original X-CLIP / ViFi-CLIP / CLIP checkpoints (hf_xclip.conversion, `hf-xclip convert`)."""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import reference_file
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from hf_xclip import XClipConfig, XClipModel, XClipProcessor
from hf_xclip.cli import main as cli_main
from hf_xclip.configuration_xclip import heads_for_width
from hf_xclip.conversion import (
    RELEASED_CHECKPOINTS,
    ConversionError,
    UnsafeCheckpointError,
    convert_clip_to_xclip,
    convert_vificlip_checkpoint,
    convert_xclip_checkpoint,
    hf_to_original,
    infer_sizes,
    original_forward,
    original_to_hf,
    read_original_checkpoint,
)
from hf_xclip.conversion import export as export_module
from hf_xclip.conversion.checkpoint import OriginalCheckpoint
from hf_xclip.conversion.vificlip import prompted_template, round_prompts_like_original, vificlip_to_clip_naming
from hf_xclip.hub import push as hf_hub_module
from hf_xclip.hub.model_cards import converted_model_card

TINY = ("xclip-original-tiny", "checkpoint.pth")
EXPECTED = ("xclip-original-tiny", "expected.pt")
BPE = ("clip-tokenizer", "bpe_simple_vocab_16e6.txt.gz")


# ----------------------------------------------------------------------------------------------- helpers
def tiny_bpe(tmp_path: Path, vocab_size: int) -> Path:
    """The CLIP BPE file cut to `vocab_size - 514` merges: the same layout with a small vocabulary."""
    lines = gzip.decompress(reference_file(*BPE).read_bytes()).decode("utf-8").split("\n")
    path = tmp_path / f"bpe_{vocab_size}.txt.gz"
    path.write_bytes(gzip.compress("\n".join(lines[: vocab_size - 514 + 1]).encode("utf-8")))
    return path


def synthetic_bpe(tmp_path: Path, vocab_size: int) -> Path:
    """A made-up merges file (pairs of letters) giving `vocab_size` tokens, for tests without the reference."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    pairs = [f"{a} {b}" for a in letters for b in letters][: vocab_size - 514]
    path = tmp_path / f"synthetic_bpe_{vocab_size}.txt"
    path.write_text("\n".join(["#version: 0.2", *pairs]), encoding="utf-8")
    return path


def random_hf_weights(config: XClipConfig, tmp_path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """Checkpoint-key weights of a random hf_xclip model whose every tensor (LayerNorms and biases included) is
    random, so that any mix-up of keys changes the outputs."""
    directory = tmp_path / f"random-hf-{seed}"
    XClipModel(config).save_pretrained(directory)
    weights = load_file(str(directory / "model.safetensors"))
    generator = torch.Generator().manual_seed(seed)
    randomized = {}
    for key, value in weights.items():
        noise = torch.randn(value.shape, generator=generator) * 0.1
        randomized[key] = noise + 1.0 if "norm" in key and key.endswith("weight") else noise
    randomized["logit_scale"] = torch.tensor(math.log(100.0))
    return randomized


def write_original(tmp_path: Path, weights: dict[str, torch.Tensor], name: str, layout: str = "training") -> Path:
    """Save original-naming weights as the original training does, bare, or with a DDP prefix."""
    original = hf_to_original(weights)
    if layout == "training":
        payload = {
            "model": original,
            "optimizer": {},
            "lr_scheduler": {},
            "max_accuracy": 0.0,
            "epoch": 3,
            "config": {"DATA": {"NUM_FRAMES": 0, "DATASET": "synthetic"}},
        }
    elif layout == "module":
        payload = {f"module.{key}": value for key, value in original.items()}
    else:
        payload = original
    path = tmp_path / name
    torch.save(payload, path)
    return path


def unusual_config(**overrides) -> XClipConfig:
    """Odd widths (heads = width // 64 = 1), patch 8, 24 px, 6 frames, 2 MIT layers, 1 prompt layer, short text."""
    text = dict(
        vocab_size=300,
        hidden_size=80,
        intermediate_size=160,
        num_hidden_layers=1,
        num_attention_heads=1,
        max_position_embeddings=20,
        bos_token_id=298,
        eos_token_id=299,
        pad_token_id=0,
    )
    vision = dict(
        hidden_size=96,
        intermediate_size=200,
        num_hidden_layers=2,
        num_attention_heads=1,
        image_size=24,
        patch_size=8,
        num_frames=6,
        mit_hidden_size=72,
        mit_intermediate_size=288,
        mit_num_hidden_layers=2,
    )
    kwargs = dict(projection_dim=72, prompt_layers=1)
    text.update(overrides.pop("text", {}))
    vision.update(overrides.pop("vision", {}))
    kwargs.update(overrides)
    return XClipConfig(text_config=text, vision_config=vision, **kwargs)


def assert_no_leftovers(directory: Path) -> None:
    leftovers = [path.name for path in directory.iterdir() if ".partial-" in path.name or ".previous-" in path.name]
    assert leftovers == []


@pytest.fixture(scope="module")
def tiny_converted(tmp_path_factory) -> tuple[Path, object]:
    """The reference tiny checkpoint converted once, with a tokenizer of its vocabulary (1000 tokens)."""
    tmp_path = tmp_path_factory.mktemp("tiny")
    result = convert_xclip_checkpoint(reference_file(*TINY), tmp_path / "out", bpe_vocab=tiny_bpe(tmp_path, 1000))
    return tmp_path / "out", result


# ----------------------------------------------------------------------------------------------- parity
def test_reference_forward_reproduces_the_original_outputs():
    checkpoint = read_original_checkpoint(reference_file(*TINY))
    expected = torch.load(reference_file(*EXPECTED), weights_only=True)
    outputs = original_forward(checkpoint.state_dict, expected["pixel_values"], expected["input_ids"])
    for name in ("logits_per_video", "video_features", "text_features_before_prompts"):
        torch.testing.assert_close(outputs[name], expected[name], rtol=1e-4, atol=1e-4)


def test_converted_tiny_checkpoint_reproduces_original_logits(tiny_converted):
    output_dir, result = tiny_converted
    expected = torch.load(reference_file(*EXPECTED), weights_only=True)
    model = XClipModel.from_pretrained(output_dir).eval()
    with torch.no_grad():
        outputs = model(input_ids=expected["input_ids"], pixel_values=expected["pixel_values"])
        video = model.get_video_features(expected["pixel_values"]).pooler_output
        text = model.get_text_features(input_ids=expected["input_ids"]).pooler_output
    torch.testing.assert_close(outputs.logits_per_video, expected["logits_per_video"], rtol=0, atol=1e-4)
    torch.testing.assert_close(video, expected["video_features"], rtol=0, atol=1e-4)
    torch.testing.assert_close(text, expected["text_features_before_prompts"], rtol=0, atol=1e-4)
    assert set(result.max_abs_errors) == {"logits_per_video", "video_features", "text_features_before_prompts"}
    assert max(result.max_abs_errors.values()) < 1e-4


def test_tiny_config_is_inferred_from_the_weights(tiny_converted):
    output_dir, _ = tiny_converted
    config = XClipConfig.from_pretrained(output_dir)
    vision, text = config.vision_config, config.text_config
    assert (config.projection_dim, vision.hidden_size) == (128, 128)
    assert (vision.num_hidden_layers, vision.num_attention_heads) == (2, 2)
    assert (vision.patch_size, vision.image_size, vision.num_frames) == (16, 32, 4)
    assert (vision.mit_num_hidden_layers, vision.mit_num_attention_heads, config.prompt_layers) == (1, 2, 2)
    assert config.prompt_num_attention_heads == 2
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.vocab_size) == (64, 2, 1, 1000)
    assert (text.bos_token_id, text.eos_token_id) == (998, 999)
    assert config.logit_scale_init_value == pytest.approx(4.6052, abs=1e-3)


def test_tiny_output_directory_is_complete(tiny_converted):
    output_dir, result = tiny_converted
    from transformers import AutoTokenizer

    names = {path.name for path in output_dir.iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= names
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    ids = tokenizer("playing guitar", padding="max_length", max_length=77)["input_ids"]
    assert ids[0] == 998 and 999 in ids and ids[-1] == 0 and len(ids) == 77
    from hf_xclip import XClipProcessor

    processor = XClipProcessor.from_pretrained(output_dir).video_processor
    assert processor.num_frames == 4
    assert list(processor.image_mean) == pytest.approx([0.485, 0.456, 0.406])
    assert list(processor.image_std) == pytest.approx([0.229, 0.224, 0.225])
    assert processor.crop_size in (32, {"height": 32, "width": 32})
    assert_no_leftovers(output_dir.parent)


def test_usage_snippet_of_the_card_runs(tiny_converted):
    import numpy as np
    from transformers import pipeline

    output_dir, _ = tiny_converted
    classifier = pipeline("zero-shot-video-classification", model=str(output_dir))
    video = np.random.default_rng(0).integers(0, 255, (12, 40, 48, 3), dtype=np.uint8)
    result = classifier(video, candidate_labels=["playing guitar", "cooking"])
    assert sorted(item["label"] for item in result) == ["cooking", "playing guitar"]
    assert sum(item["score"] for item in result) == pytest.approx(1.0, abs=1e-5)


def test_model_card(tiny_converted):
    output_dir, result = tiny_converted
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.license == "mit"
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "video-classification"
    assert "zero-shot-video-classification" in card.data.tags
    assert result.source_sha256 in card.text and "checkpoint.pth" in card.text
    assert "frames per video: 4" in card.text and "image size: 32 px, patch 16" in card.text
    assert 'pipeline("zero-shot-video-classification"' in card.text
    # an unknown file claims no accuracy
    assert "Reported accuracy" not in card.text


@pytest.mark.parametrize("file", sorted(RELEASED_CHECKPOINTS))
def test_model_card_reports_paper_accuracy_for_released_files(file):
    release = RELEASED_CHECKPOINTS[file]
    config = XClipConfig(
        vision_config={
            "num_frames": release.num_frames,
            "image_size": release.image_size,
            "patch_size": release.patch_size,
        }
    )
    card = converted_model_card(
        title="t", summary="s", source_file=file, source_sha256="0" * 64, config=config, release=release
    )
    assert "Reported accuracy" in card.text
    for top1 in release.top1.values():
        assert f"| {top1} |" in card.text


def test_released_table_matches_the_paper():
    top1 = {file: release.top1 for file, release in RELEASED_CHECKPOINTS.items()}
    assert top1["k400_32_8.pth"] == {"Kinetics-400": 80.4}
    assert top1["k400_16_8.pth"] == {"Kinetics-400": 83.8}
    assert top1["k400_14_16_336.pth"] == {"Kinetics-400": 87.7}
    assert top1["zero.pth"] == {"HMDB-51": 44.6, "UCF-101": 72.0, "Kinetics-600": 65.2}
    assert [top1[f"few_hmdb_{k}.pth"]["HMDB-51"] for k in (2, 4, 8, 16)] == [53.0, 57.3, 62.8, 64.0]
    assert [top1[f"few_ucf_{k}.pth"]["UCF-101"] for k in (2, 4, 8, 16)] == [76.4, 83.4, 88.3, 91.4]


def test_misnamed_file_does_not_claim_release_accuracy(tmp_path):
    misnamed = tmp_path / "k400_32_8.pth"
    shutil.copy(reference_file(*TINY), misnamed)
    convert_xclip_checkpoint(misnamed, tmp_path / "out", verify=False)
    assert "80.4" not in (tmp_path / "out" / "README.md").read_text()


# ----------------------------------------------------------------------------------------------- key mapping and sizes
def test_key_mapping_round_trips_exactly():
    original = read_original_checkpoint(reference_file(*TINY)).state_dict
    converted = original_to_hf(original)
    assert "vision_model.encoder.layers.0.message_attn.q_proj.weight" in converted
    assert "prompts_visual_projection" in converted and converted["prompts_visual_projection"].shape == (128, 128)
    torch.testing.assert_close(converted["visual_projection.weight"], original["visual.proj"].t())
    torch.testing.assert_close(
        converted["text_model.encoder.layers.1.self_attn.k_proj.bias"],
        original["transformer.resblocks.1.attn.in_proj_bias"][64:128],
    )
    back = hf_to_original(converted)
    assert set(back) == set(original)
    for key, value in original.items():
        assert torch.equal(back[key], value), key


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # odd widths: 96 / 80 / 72, 1 head each, patch 8, 6 frames, 2 MIT layers, 1 prompt layer
        {
            "projection_dim": 256,
            "prompt_layers": 0,
            "vision": dict(
                hidden_size=192,
                intermediate_size=768,
                num_attention_heads=3,
                num_hidden_layers=1,
                image_size=48,
                patch_size=16,
                num_frames=3,
                mit_hidden_size=256,
                mit_intermediate_size=1024,
                mit_num_hidden_layers=1,
            ),
            "text": dict(hidden_size=128, intermediate_size=512, num_attention_heads=2, num_hidden_layers=3),
        },
    ],
    ids=["odd-widths-patch8-6frames", "three-heads-no-prompt-layers"],
)
def test_hyperparameters_inferred_from_unusual_shapes(tmp_path, overrides):
    config = unusual_config(**overrides)
    weights = random_hf_weights(config, tmp_path)
    path = write_original(tmp_path, weights, "odd.pth")
    result = convert_xclip_checkpoint(path, tmp_path / "out")
    inferred = result.config
    for section in ("text_config", "vision_config"):
        source, got = getattr(config, section).to_dict(), getattr(inferred, section).to_dict()
        for key in (
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "image_size",
            "patch_size",
            "num_frames",
            "mit_intermediate_size",
            "mit_num_hidden_layers",
            "mit_num_attention_heads",
            "vocab_size",
            "max_position_embeddings",
            "eos_token_id",
        ):
            if key in source:
                assert got[key] == source[key], (section, key)
    assert (inferred.projection_dim, inferred.prompt_layers) == (config.projection_dim, config.prompt_layers)
    assert inferred.prompt_num_attention_heads == heads_for_width(config.projection_dim)
    # the converted model computes what the source model computes
    source = XClipModel(config).eval()
    source.load_state_dict(_module_state_dict(source, weights))
    converted = XClipModel.from_pretrained(tmp_path / "out").eval()
    pixel_values = torch.randn(
        2, config.vision_config.num_frames, 3, config.vision_config.image_size, config.vision_config.image_size
    )
    input_ids = torch.tensor([[298, 5, 17, 299] + [0] * 16, [298, 40, 299] + [0] * 17])
    with torch.no_grad():
        torch.testing.assert_close(
            converted(input_ids=input_ids, pixel_values=pixel_values).logits_per_video,
            source(input_ids=input_ids, pixel_values=pixel_values).logits_per_video,
        )
    assert max(result.max_abs_errors.values()) < 1e-4


def _module_state_dict(model: XClipModel, checkpoint_weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint keys -> the model's module keys (two parameters live in small modules)."""
    names = {"prompts_visual_projection": "prompts_visual_proj.weight", "logit_scale": "logit_scale_module.logit_scale"}
    state = {names.get(key, key): value for key, value in checkpoint_weights.items()}
    assert set(state) == set(model.state_dict())
    return state


@pytest.mark.parametrize("layout", ["training", "bare", "module"])
def test_checkpoint_layouts(tmp_path, layout):
    config = unusual_config()
    weights = random_hf_weights(config, tmp_path)
    path = write_original(tmp_path, weights, f"{layout}.pth", layout)
    result = convert_xclip_checkpoint(path, tmp_path / "out", verify=False)
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert set(written) == set(weights)
    for key, value in weights.items():
        assert torch.equal(written[key], value), key
    assert result.config.vision_config.num_frames == 6


def test_num_frames_option_must_match_the_weights(tmp_path):
    with pytest.raises(ConversionError, match="trained for 4 frames"):
        convert_xclip_checkpoint(reference_file(*TINY), tmp_path / "out", num_frames=8)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------- bad input
def _assert_fails_cleanly(tmp_path: Path, path: Path, match: str, error=ConversionError) -> None:
    with pytest.raises(error, match=match):
        convert_xclip_checkpoint(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert_no_leftovers(tmp_path)


def test_random_bytes_file(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(os.urandom(4096))
    _assert_fails_cleanly(tmp_path, path, "expected a file written by torch.save")


def test_text_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("this is not a checkpoint\n")
    _assert_fails_cleanly(tmp_path, path, "not a PyTorch checkpoint|expected a file written by torch.save")


def test_truncated_checkpoint(tmp_path):
    data = reference_file(*TINY).read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    _assert_fails_cleanly(tmp_path, path, "corrupt, truncated")


def test_empty_file_and_missing_file(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    _assert_fails_cleanly(tmp_path, tmp_path / "empty.pth", "is empty")
    with pytest.raises(FileNotFoundError):
        convert_xclip_checkpoint(tmp_path / "absent.pth", tmp_path / "out")


def test_random_state_dict_is_not_xclip(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.randn(8, 3, 3, 3), "fc.bias": torch.randn(10)}, path)
    _assert_fails_cleanly(tmp_path, path, "not an X-CLIP checkpoint: expected keys such as")


def test_tensor_file_is_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.randn(3), path)
    _assert_fails_cleanly(tmp_path, path, "not a state dict")


def test_clip_checkpoint_points_to_clip_init(tmp_path):
    config = unusual_config(
        video_pooling="mean", use_prompt_generator=False, vision=dict(use_cross_frame_attention=False)
    )
    path = write_original(tmp_path, random_hf_weights(config, tmp_path), "clip.pth", "bare")
    _assert_fails_cleanly(tmp_path, path, "plain CLIP state dict.*--from clip")


def test_incomplete_xclip_checkpoint(tmp_path):
    state = read_original_checkpoint(reference_file(*TINY)).state_dict
    path = tmp_path / "incomplete.pth"
    torch.save({key: value for key, value in state.items() if not key.startswith("mit.")}, path)
    _assert_fails_cleanly(tmp_path, path, "incomplete X-CLIP checkpoint.*mit.positional_embedding")


def test_inconsistent_shapes_are_named(tmp_path):
    state = read_original_checkpoint(reference_file(*TINY)).state_dict
    state["visual.transformer.resblocks.1.mlp.c_proj.weight"] = torch.randn(128, 100)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    _assert_fails_cleanly(tmp_path, path, r"visual\.transformer\.resblocks\.1\.mlp\.c_proj\.weight.*\(128, 100\)")


def test_pickled_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pth"
    torch.save({"model": {"logit_scale": torch.zeros(())}, "config": Payload()}, path)
    _assert_fails_cleanly(tmp_path, path, r"refusing to unpickle `posix\.mkdir`", UnsafeCheckpointError)
    assert not marker.exists()


def test_vificlip_checkpoint_given_to_xclip(tmp_path):
    path = tmp_path / "vifi.pth"
    torch.save({"model": {"module.image_encoder.conv1.weight": torch.zeros(8, 3, 4, 4)}}, path)
    _assert_fails_cleanly(tmp_path, path, "ViFi-CLIP checkpoint.*--from vificlip")


def test_tokenizer_vocabulary_must_match_the_model(tmp_path):
    with pytest.raises(ConversionError, match="49408 tokens but the model's token embedding has 1000 rows"):
        convert_xclip_checkpoint(reference_file(*TINY), tmp_path / "out", bpe_vocab=reference_file(*BPE))
    assert not (tmp_path / "out").exists()


def test_failure_after_writing_started_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ConversionError("simulated mismatch")

    monkeypatch.setattr(export_module, "verify_against_reference", broken)
    (tmp_path / "out").mkdir()
    with pytest.raises(ConversionError, match="simulated mismatch"):
        convert_xclip_checkpoint(reference_file(*TINY), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    assert_no_leftovers(tmp_path)


def test_non_empty_output_needs_overwrite(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "old.txt").write_text("old")
    with pytest.raises(ConversionError, match="not empty"):
        convert_xclip_checkpoint(reference_file(*TINY), output, verify=False)
    assert (output / "old.txt").exists()
    convert_xclip_checkpoint(reference_file(*TINY), output, verify=False, overwrite=True)
    assert not (output / "old.txt").exists() and (output / "model.safetensors").exists()
    assert_no_leftovers(tmp_path)


# ----------------------------------------------------------------------------------------------- push
class FakeHfApi:
    calls: list[tuple[str, dict]] = []

    def __init__(self, token=None, **kwargs):
        FakeHfApi.calls.append(("init", {"token": token, **kwargs}))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(os.listdir(folder))
        readme = (folder / "README.md").read_text() if "README.md" in files else ""
        FakeHfApi.calls.append(("upload_folder", {**kwargs, "files": files, "readme": readme}))
        return type("CommitInfo", (), {"commit_url": "https://hub.example/commit/1"})()


def test_push_to_hub_uploads_one_commit_with_code_and_card(tmp_path, monkeypatch):
    FakeHfApi.calls = []
    monkeypatch.setattr(hf_hub_module, "HfApi", FakeHfApi)
    result = convert_xclip_checkpoint(
        reference_file(*TINY),
        tmp_path / "out",
        verify=False,
        bpe_vocab=tiny_bpe(tmp_path, 1000),
        push_to_hub="someone/xclip-tiny",
        token="hf_x",
        private=True,
    )
    assert result.hub_url == "https://hub.example/commit/1"
    kinds = [kind for kind, _ in FakeHfApi.calls]
    assert kinds == ["init", "create_repo", "upload_folder"]
    assert FakeHfApi.calls[0][1]["token"] == "hf_x"
    create = FakeHfApi.calls[1][1]
    assert (create["repo_id"], create["exist_ok"], create["private"]) == ("someone/xclip-tiny", True, True)
    upload = FakeHfApi.calls[2][1]
    assert upload["repo_id"] == "someone/xclip-tiny"
    assert {
        "README.md",
        "config.json",
        "model.safetensors",
        "modeling_xclip.py",
        "pipeline_zero_shot_video_classification.py",
    } <= set(upload["files"])
    assert "someone/xclip-tiny" in upload["readme"] and "trust_remote_code=True" in upload["readme"]
    # The converted directory itself is left as written.
    assert "someone/xclip-tiny" in (tmp_path / "out" / "README.md").read_text()
    assert not (tmp_path / "out" / "pipeline_zero_shot_video_classification.py").exists()


def test_push_without_tokenizer_ships_the_model_code_only(tmp_path, monkeypatch):
    FakeHfApi.calls = []
    monkeypatch.setattr(hf_hub_module, "HfApi", FakeHfApi)
    convert_xclip_checkpoint(reference_file(*TINY), tmp_path / "out", verify=False, push_to_hub="someone/x")
    upload = FakeHfApi.calls[-1][1]
    assert "modeling_xclip.py" in upload["files"]
    assert "pipeline_zero_shot_video_classification.py" not in upload["files"]
    assert "trust_remote_code=True" in upload["readme"]


def test_failed_conversion_pushes_nothing(tmp_path, monkeypatch):
    FakeHfApi.calls = []
    monkeypatch.setattr(hf_hub_module, "HfApi", FakeHfApi)
    path = tmp_path / "random.pth"
    path.write_bytes(os.urandom(512))
    with pytest.raises(ConversionError):
        convert_xclip_checkpoint(path, tmp_path / "out", push_to_hub="someone/x")
    assert FakeHfApi.calls == []


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_convert(tmp_path, capsys):
    code = cli_main(
        [
            "convert",
            "--checkpoint",
            str(reference_file(*TINY)),
            "--output-dir",
            str(tmp_path / "out"),
            "--bpe-vocab",
            str(tiny_bpe(tmp_path, 1000)),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "frames 4, image 32 px, patch 16" in out and "max |converted - original forward|" in out
    assert (tmp_path / "out" / "tokenizer.json").exists() or (tmp_path / "out" / "tokenizer_config.json").exists()


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert cli_main(["convert", "--checkpoint", str(path), "--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "torch.save" in err and "Traceback" not in err


def test_conversion_scripts_are_thin_entry_points():
    from hf_xclip.commands.convert import script_main

    root = Path(__file__).resolve().parents[1] / "conversion"
    for name, family in (
        ("convert_xclip_original.py", "xclip"),
        ("convert_vificlip.py", "vificlip"),
        ("convert_clip_to_xclip.py", "clip"),
    ):
        text = (root / name).read_text()
        assert f'script_main("{family}")' in text and len(text.splitlines()) < 30
    with pytest.raises(SystemExit):
        script_main("xclip", ["--help"])


# ----------------------------------------------------------------------------------------------- ViFi-CLIP and CLIP
def clip_like_config(**overrides) -> XClipConfig:
    return unusual_config(
        video_pooling="mean",
        use_prompt_generator=False,
        vision=dict(use_cross_frame_attention=False, num_frames=4),
        **overrides,
    )


def write_vificlip(tmp_path: Path, original: dict[str, torch.Tensor], *, extra: dict | None = None) -> Path:
    """A ViFi-CLIP checkpoint: DDP keys, image_encoder / text_encoder, no token embedding, prompt-learner buffers."""
    model = {}
    for key, value in original.items():
        if key == "token_embedding.weight":
            continue
        if key.startswith("visual."):
            key = "image_encoder." + key[len("visual.") :]
        elif key != "logit_scale":
            key = "text_encoder." + key
        model["module." + key] = value
    sot, eot = original["token_embedding.weight"].shape[0] - 2, original["token_embedding.weight"].shape[0] - 1
    ids = torch.tensor([[sot, 7, eot] + [0] * 17, [sot, 9, 12, eot] + [0] * 16])
    model["module.prompt_learner.complete_text_embeddings"] = original["token_embedding.weight"][ids]
    model.update(extra or {})
    path = tmp_path / "vifi_clip.pth"
    torch.save({"model": model, "epoch": 10, "config": {"DATA": {"NUM_FRAMES": 4}}}, path)
    return path


@pytest.fixture()
def clip_weights(tmp_path) -> dict[str, torch.Tensor]:
    return hf_to_original(random_hf_weights(clip_like_config(), tmp_path, seed=3))


def test_vificlip_conversion_matches_clip_frame_mean(tmp_path, clip_weights):
    path = write_vificlip(tmp_path, clip_weights)
    torch.save(clip_weights, tmp_path / "clip.pth")  # OpenAI-format CLIP: source of the token embedding
    result = convert_vificlip_checkpoint(path, tmp_path / "out", clip=tmp_path / "clip.pth")
    config = result.config
    assert config.video_pooling == "mean" and not config.use_prompt_generator
    assert not config.vision_config.use_cross_frame_attention and config.vision_config.num_frames == 4
    model = XClipModel.from_pretrained(tmp_path / "out").eval()
    pixel_values = torch.randn(2, 4, 3, 24, 24)
    input_ids = torch.tensor([[298, 5, 299] + [0] * 17, [298, 44, 45, 299] + [0] * 16])
    # ViFi-CLIP by hand with transformers' CLIP on the same weights: CLIP image features averaged over frames
    from transformers import CLIPConfig, CLIPModel

    clip = CLIPModel(
        CLIPConfig(
            text_config=dict(
                vocab_size=300,
                hidden_size=80,
                intermediate_size=160,
                num_hidden_layers=1,
                num_attention_heads=1,
                max_position_embeddings=20,
                eos_token_id=299,
            ),
            vision_config=dict(
                hidden_size=96,
                intermediate_size=200,
                num_hidden_layers=2,
                num_attention_heads=1,
                image_size=24,
                patch_size=8,
            ),
            projection_dim=72,
        )
    ).eval()
    hf = original_to_hf(clip_weights)
    hf = {key.replace("pre_layernorm", "pre_layrnorm"): value for key, value in hf.items()}
    missing, unexpected = clip.load_state_dict(hf, strict=False)
    assert unexpected == [] and all("position_ids" in key for key in missing)
    with torch.no_grad():
        frames = clip.get_image_features(pixel_values=pixel_values.flatten(0, 1))
        frames = getattr(frames, "pooler_output", frames).view(2, 4, -1).mean(1)
        texts = clip.get_text_features(input_ids=input_ids)
        texts = getattr(texts, "pooler_output", texts)
        normalize = torch.nn.functional.normalize
        expected = 100.0 * normalize(frames, dim=-1) @ normalize(texts, dim=-1).T
        got = model(input_ids=input_ids, pixel_values=pixel_values).logits_per_video
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert "a photo of a {}." in card.text and card.data.pipeline_tag == "video-classification"


def test_converted_vificlip_pipeline_uses_the_models_template(tmp_path):
    """The converted model's processor records "a photo of a {}."; the pipeline (and every command through the label
    core) uses it when no template is given."""
    from transformers import pipeline

    from hf_xclip.data import write_video
    from hf_xclip.labels import model_template

    config = clip_like_config(text=dict(vocab_size=1000, bos_token_id=998, eos_token_id=999))
    clip_weights = hf_to_original(random_hf_weights(config, tmp_path, seed=4))
    path = write_vificlip(tmp_path, clip_weights)
    torch.save(clip_weights, tmp_path / "clip.pth")
    convert_vificlip_checkpoint(
        path, tmp_path / "out", clip=tmp_path / "clip.pth", bpe_vocab=synthetic_bpe(tmp_path, 1000)
    )
    assert XClipProcessor.from_pretrained(tmp_path / "out").hypothesis_template == "a photo of a {}."
    assert model_template(source=tmp_path / "out") == "a photo of a {}."
    frames = (torch.rand(8, 24, 24, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    video = write_video(tmp_path / "clip.mp4", frames, fps=8)
    classifier = pipeline("zero-shot-video-classification", model=str(tmp_path / "out"))
    labels = ["ab", "cd ef", "gh"]
    default = classifier(str(video), candidate_labels=labels)
    explicit = classifier(str(video), candidate_labels=labels, hypothesis_template="a photo of a {}.")
    bare = classifier(str(video), candidate_labels=labels, hypothesis_template="{}")
    assert default == explicit and default != bare


def test_vificlip_needs_the_clip_it_was_trained_from(tmp_path, clip_weights):
    path = write_vificlip(tmp_path, clip_weights)
    other = dict(clip_weights)
    other["token_embedding.weight"] = torch.randn_like(other["token_embedding.weight"])
    torch.save(other, tmp_path / "other_clip.pth")
    with pytest.raises(ConversionError, match="token embedding .* differs"):
        convert_vificlip_checkpoint(path, tmp_path / "out", clip=tmp_path / "other_clip.pth")
    assert not (tmp_path / "out").exists()


VIFI_TINY = "vificlip-original-tiny"
PROMPTED_DATA = Path(__file__).resolve().parent / "data" / "vificlip-prompted-tiny"


def test_vificlip_original_fixture_converts_to_the_original_logits(tmp_path):
    """The fine-tuned ViFi-CLIP written by the original code (shared reference) keeps converting exactly."""
    expected = torch.load(reference_file(VIFI_TINY, "expected.pt"), weights_only=True)
    result = convert_vificlip_checkpoint(
        reference_file(VIFI_TINY, "checkpoint.pth"),
        tmp_path / "out",
        clip=reference_file(VIFI_TINY, "clip.pth"),
        bpe_vocab=reference_file(*BPE),
    )
    assert result.config.text_config.num_prompt_tokens == 0 and result.config.vision_config.num_prompt_tokens == 0
    processor = XClipProcessor.from_pretrained(tmp_path / "out")
    assert processor.hypothesis_template == "a photo of a {}."
    texts = [processor.hypothesis_template.format(name) for name in expected["class_names"]]
    input_ids = processor(text=texts, padding="max_length", max_length=77)["input_ids"]
    assert torch.equal(input_ids, expected["input_ids"])
    model = XClipModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        logits = model(input_ids=input_ids, pixel_values=expected["pixel_values"]).logits_per_video
    torch.testing.assert_close(logits, expected["logits_per_video"], rtol=0, atol=1e-4)


def write_prompted_fixture(tmp_path: Path, variant: str) -> tuple[Path, dict, dict[str, torch.Tensor]]:
    """The prompted checkpoint the original code wrote (tests/data/vificlip-prompted-tiny, README.md there): the
    fine-tuned fixture's weights (frozen while prompting) plus the prompt tensors the prompting stage added, in the
    original's training-checkpoint layout."""
    info = json.loads((PROMPTED_DATA / variant / "checkpoint_info.json").read_text())
    base = read_original_checkpoint(reference_file(VIFI_TINY, "checkpoint.pth")).state_dict
    model = {f"module.{key}": value for key, value in base.items() if "complete_text_embeddings" not in key}
    model.update(load_file(str(PROMPTED_DATA / variant / "prompt_weights.safetensors")))
    assert sorted(model) == info["original_checkpoint_keys"]
    path = tmp_path / f"prompted_{variant}.pth"
    torch.save({"model": model, "optimizer": {}, "lr_scheduler": {}, **info["checkpoint"]}, path)
    return path, info, load_file(str(PROMPTED_DATA / variant / "expected.safetensors"))


@pytest.mark.parametrize("variant", ["deep", "shallow"])
def test_prompted_vificlip_converts_to_the_original_logits(tmp_path, variant):
    path, info, expected = write_prompted_fixture(tmp_path, variant)
    trainer = info["trainer"]
    result = convert_vificlip_checkpoint(
        path, tmp_path / "out", clip=reference_file(VIFI_TINY, "clip.pth"), bpe_vocab=reference_file(*BPE)
    )
    text, vision = result.config.text_config, result.config.vision_config
    assert (text.num_prompt_tokens, text.prompt_depth) == (trainer["N_CTX_TEXT"], trainer["PROMPT_DEPTH_TEXT"])
    assert (vision.num_prompt_tokens, vision.prompt_depth) == (trainer["N_CTX_VISION"], trainer["PROMPT_DEPTH_VISION"])

    processor = XClipProcessor.from_pretrained(tmp_path / "out")
    assert processor.hypothesis_template == "{}."
    texts = [processor.hypothesis_template.format(name) for name in info["class_names"]]
    input_ids = processor(text=texts, padding="max_length", max_length=77)["input_ids"]
    # the original tokenised "X X ... X name." (or "a photo of a name."); hf_xclip inserts the context after SOT
    assert torch.equal(input_ids, without_placeholders(expected["input_ids"], text.num_prompt_tokens))

    model = XClipModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        logits = model(input_ids=input_ids, pixel_values=expected["pixel_values"]).logits_per_video
        video = model.get_video_features(expected["pixel_values"]).pooler_output
        text_features = model.get_text_features(input_ids=input_ids).pooler_output
    torch.testing.assert_close(logits, expected["logits_per_video"], rtol=0, atol=1e-4)
    torch.testing.assert_close(video, expected["video_features"], rtol=0, atol=1e-5)
    torch.testing.assert_close(text_features, expected["text_features"], rtol=0, atol=1e-5)
    # the independent functional forward used to verify conversions agrees with the original too
    weights = round_prompts_like_original(vificlip_to_clip_naming(read_original_checkpoint(path).state_dict)[0])
    weights["token_embedding.weight"] = torch.load(reference_file(VIFI_TINY, "clip.pth"), weights_only=True)[
        "token_embedding.weight"
    ].float()
    reference = original_forward(weights, expected["pixel_values"], input_ids)
    torch.testing.assert_close(reference["logits_per_video"], expected["logits_per_video"], rtol=0, atol=1e-4)

    card = (tmp_path / "out" / "README.md").read_text()
    assert "ViFi-CLIP (prompted)" in card and "`{}.`" in card and 'hypothesis_template="{}."' in card


def test_prompted_vificlip_needs_the_original_fp16_rounding(tmp_path):
    """The original casts its vision and deep prompts to fp16 in the forward; without that the logits move."""
    path, info, expected = write_prompted_fixture(tmp_path, "deep")
    convert_vificlip_checkpoint(path, tmp_path / "out", clip=reference_file(VIFI_TINY, "clip.pth"))
    model = XClipModel.from_pretrained(tmp_path / "out").eval()
    raw = load_file(str(PROMPTED_DATA / "deep" / "prompt_weights.safetensors"))
    input_ids = without_placeholders(expected["input_ids"], info["trainer"]["N_CTX_TEXT"])
    with torch.no_grad():
        rounded = model(input_ids=input_ids, pixel_values=expected["pixel_values"]).logits_per_video
        model.vision_model.prompt_tokens.tokens.copy_(raw["module.image_encoder.VPT"])
        model.vision_model.deep_prompts.tokens[0].copy_(raw["module.image_encoder.transformer.resblocks.1.VPT_shallow"])
        model.text_model.deep_prompts.tokens[0].copy_(raw["module.text_encoder.transformer.resblocks.1.VPT_shallow"])
        unrounded = model(input_ids=input_ids, pixel_values=expected["pixel_values"]).logits_per_video
    assert (rounded - expected["logits_per_video"]).abs().max() < 1e-4
    assert (unrounded - expected["logits_per_video"]).abs().max() > 1e-4


def without_placeholders(original_ids: torch.Tensor, num_context: int) -> torch.Tensor:
    """The ids hf_xclip takes for the original's "X..X name." prompts: the placeholders removed, zero padded."""
    padding = original_ids.new_zeros(original_ids.shape[0], num_context)
    return torch.cat([original_ids[:, :1], original_ids[:, 1 + num_context :], padding], dim=1)


def prompted_vificlip_weights(
    clip_weights: dict[str, torch.Tensor], vision_tokens: int, text_tokens: int, depth: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """ViFi-CLIP keys of a prompted model (`module.` prefix): context, VPT and per-layer VPT_shallow."""
    generator = torch.Generator().manual_seed(seed)
    vision_width = clip_weights["visual.conv1.weight"].shape[0]
    text_width = clip_weights["ln_final.weight"].shape[0]
    extra = {
        "module.prompt_learner.ctx": torch.randn(text_tokens, text_width, generator=generator) * 0.1,
        "module.image_encoder.VPT": torch.randn(vision_tokens, vision_width, generator=generator),
    }
    for layer in range(1, depth):
        extra[f"module.image_encoder.transformer.resblocks.{layer}.VPT_shallow"] = torch.randn(
            vision_tokens, vision_width, generator=generator
        )
        extra[f"module.text_encoder.transformer.resblocks.{layer}.VPT_shallow"] = (
            torch.randn(text_tokens, text_width, generator=generator) * 0.1
        )
    return extra


@pytest.mark.parametrize("tokens, depth", [(10, 12), (16, 9)])
def test_prompted_vificlip_published_sizes(tmp_path, tokens, depth):
    """The released prompting configs: 10 tokens at depth 12 (few-shot), 16 at depth 9 (base-to-novel), 12 layers."""
    config = unusual_config(
        video_pooling="mean",
        use_prompt_generator=False,
        text=dict(num_hidden_layers=12, max_position_embeddings=40),
        vision=dict(use_cross_frame_attention=False, num_frames=4, num_hidden_layers=12),
    )
    clip = hf_to_original(random_hf_weights(config, tmp_path, seed=5))
    path = write_vificlip(tmp_path, clip, extra=prompted_vificlip_weights(clip, tokens, tokens, depth))
    torch.save(clip, tmp_path / "clip.pth")
    result = convert_vificlip_checkpoint(path, tmp_path / "out", clip=tmp_path / "clip.pth")
    assert result.max_abs_errors["logits_per_video"] < 1e-4  # checked against the functional original forward
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert weights["text_model.prompt_context.context"].shape == (1, tokens, 80)
    assert weights["vision_model.prompt_tokens.tokens"].shape == (tokens, 96)
    assert weights["vision_model.deep_prompts.tokens"].shape == (depth - 1, tokens, 96)
    assert weights["text_model.deep_prompts.tokens"].shape == (depth - 1, tokens, 80)
    last_layer = torch.load(path, weights_only=True)["model"][
        f"module.image_encoder.transformer.resblocks.{depth - 1}.VPT_shallow"
    ]
    assert torch.equal(weights["vision_model.deep_prompts.tokens"][depth - 2], last_layer.half().float())
    back = hf_to_original(
        original_to_hf(
            round_prompts_like_original(vificlip_to_clip_naming(read_original_checkpoint(path).state_dict)[0])
        )
    )
    assert f"visual.transformer.resblocks.{depth - 1}.VPT_shallow" in back and "prompt_learner.ctx" in back


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"module.image_encoder.transformer.resblocks.1.VPT_shallow": torch.zeros(2, 96)}, "without the first layer"),
        (
            {
                "module.image_encoder.VPT": torch.zeros(2, 96),
                "module.image_encoder.transformer.resblocks.0.VPT_shallow": torch.zeros(2, 96),
            },
            r"layers \[0\]",
        ),
        ({"module.image_encoder.VPT": torch.zeros(2, 90)}, "visual.VPT"),
        (
            {
                "module.image_encoder.VPT": torch.zeros(2, 96),
                "module.image_encoder.transformer.resblocks.1.VPT_shallow": torch.zeros(3, 96),
            },
            r"resblocks.1.VPT_shallow",
        ),
        ({"module.prompt_learner.ctx": torch.zeros(19, 80)}, "no room"),
        ({"module.prompt_learner.something": torch.zeros(3)}, "not part of a ViFi-CLIP model"),
    ],
)
def test_malformed_prompted_vificlip_is_refused(tmp_path, clip_weights, extra, message):
    clip = clip_weights
    path = write_vificlip(tmp_path, clip, extra=extra)
    torch.save(clip, tmp_path / "clip.pth")
    with pytest.raises(ConversionError, match=message):
        convert_vificlip_checkpoint(path, tmp_path / "out", clip=tmp_path / "clip.pth")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "ctx_init, num_context, template",
    [("a photo of a", 4, "{}."), ("a photo of a", 16, "{}."), ("a photo of a", 2, "of a {}."), ("", 3, "{}.")],
)
def test_prompted_template_follows_the_original_prompt_prefix(ctx_init, num_context, template):
    checkpoint = OriginalCheckpoint(state_dict={}, config={"TRAINER": {"ViFi_CLIP": {"CTX_INIT": ctx_init}}})
    assert prompted_template(checkpoint, num_context) == template


def test_prompted_template_refuses_a_context_longer_than_its_init_phrase():
    checkpoint = OriginalCheckpoint(state_dict={}, config={"TRAINER": {"ViFi_CLIP": {"CTX_INIT": "a video"}}})
    with pytest.raises(ConversionError, match="fewer words"):
        prompted_template(checkpoint, 3)
    assert prompted_template(OriginalCheckpoint(state_dict={}), 4) == "{}."  # no config: ViFi-CLIP's default


def test_vificlip_cli(tmp_path, clip_weights, capsys):
    path = write_vificlip(tmp_path, clip_weights)
    torch.save(clip_weights, tmp_path / "clip.pth")
    assert (
        cli_main(["convert", "--from", "vificlip", "--checkpoint", str(path), "--output-dir", str(tmp_path / "out")])
        == 1
    )
    assert "--clip" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "convert",
                "--from",
                "vificlip",
                "--checkpoint",
                str(path),
                "--clip",
                str(tmp_path / "clip.pth"),
                "--output-dir",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )


@pytest.fixture()
def transformers_clip_dir(tmp_path) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(
        CLIPConfig(
            text_config=dict(
                vocab_size=1000,
                hidden_size=64,
                intermediate_size=256,
                num_hidden_layers=2,
                num_attention_heads=1,
                max_position_embeddings=77,
                bos_token_id=998,
                eos_token_id=999,
                pad_token_id=0,
            ),
            vision_config=dict(
                hidden_size=128,
                intermediate_size=512,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                patch_size=16,
            ),
            projection_dim=96,
        )
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    directory = tmp_path / "clip-tiny"
    model.save_pretrained(directory)
    from hf_xclip.conversion import build_clip_tokenizer

    build_clip_tokenizer(synthetic_bpe(tmp_path, 1000)).save_pretrained(directory)
    return directory


def test_clip_to_xclip_from_transformers_directory(tmp_path, transformers_clip_dir):
    from transformers import CLIPModel

    result = convert_clip_to_xclip(transformers_clip_dir, tmp_path / "out", num_frames=6)
    config = result.config
    assert config.vision_config.num_frames == 6 and config.vision_config.mit_num_hidden_layers == 1
    assert config.prompt_layers == 2 and config.prompt_alpha == pytest.approx(0.1)
    assert config.prompt_num_attention_heads == 1 and config.vision_config.mit_num_attention_heads == 1
    assert (tmp_path / "out" / "tokenizer_config.json").exists()  # taken from the CLIP directory
    model = XClipModel.from_pretrained(tmp_path / "out").eval()
    clip = CLIPModel.from_pretrained(transformers_clip_dir).eval()
    input_ids = torch.tensor([[998, 12, 13, 999] + [0] * 73])
    with torch.no_grad():
        expected = clip.get_text_features(input_ids=input_ids)
        expected = getattr(expected, "pooler_output", expected)
        got = model.get_text_features(input_ids=input_ids).pooler_output
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    clip_state = clip.state_dict()
    for key, value in model.state_dict().items():
        source = key.replace("pre_layernorm", "pre_layrnorm")
        if source in clip_state and key != "logit_scale_module.logit_scale":
            assert torch.equal(value, clip_state[source]), key
    # new modules, initialised like the original
    layer = model.vision_model.encoder.layers[0]
    assert torch.equal(layer.message_ln.weight, torch.ones(128))
    assert torch.equal(layer.message_ln.bias, torch.zeros(128))
    assert torch.equal(layer.message_attn.q_proj.bias, torch.zeros(128))
    assert torch.equal(model.prompts_generator.alpha, torch.full((96,), 0.1))
    assert torch.equal(model.mit.encoder.layers[0].mlp.fc1.bias, torch.zeros(384))
    assert 0.01 < model.mit.position_embedding.std().item() < 0.03
    assert 0.8 < model.prompts_visual_projection.std().item() < 1.2  # torch.randn in the original
    assert model.logit_scale.item() == pytest.approx(clip.logit_scale.item())


def test_clip_to_xclip_from_openai_state_dict_is_the_same(tmp_path, transformers_clip_dir):
    from hf_xclip.conversion.clip_weights import load_clip_state_dict

    openai = load_clip_state_dict(transformers_clip_dir)
    assert "visual.proj" in openai and "transformer.resblocks.0.attn.in_proj_weight" in openai
    torch.save(openai, tmp_path / "ViT-tiny.pt")
    convert_clip_to_xclip(transformers_clip_dir, tmp_path / "a", seed=1)
    convert_clip_to_xclip(tmp_path / "ViT-tiny.pt", tmp_path / "b", seed=1)
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("a", "b"))
    assert set(a) == set(b) and all(torch.equal(a[key], b[key]) for key in a)


class _TorchScriptHolder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def write_torchscript_clip(weights: dict[str, torch.Tensor], path: Path) -> Path:
    """A TorchScript archive holding `weights` under their names, like OpenAI's released `ViT-*.pt` files."""
    root = _TorchScriptHolder()
    for key, value in {**weights, "input_resolution": torch.tensor(32), "vocab_size": torch.tensor(1000)}.items():
        *path_parts, name = key.split(".")
        module = root
        for part in path_parts:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if value.is_floating_point():
            module.register_parameter(name, torch.nn.Parameter(value.clone()))
        else:
            module.register_buffer(name, value)
    torch.jit.script(root).save(str(path))
    return path


def test_clip_to_xclip_from_openai_torchscript_release(tmp_path, transformers_clip_dir):
    from hf_xclip.conversion.clip_weights import load_clip_state_dict

    archive = write_torchscript_clip(load_clip_state_dict(transformers_clip_dir), tmp_path / "ViT-tiny.pt")
    convert_clip_to_xclip(transformers_clip_dir, tmp_path / "a", seed=2, verify=False)
    convert_clip_to_xclip(archive, tmp_path / "b", seed=2, verify=False)
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("a", "b"))
    assert set(a) == set(b) and all(torch.equal(a[key], b[key]) for key in a)
    # the X-CLIP converter does not take TorchScript archives and says where they go
    with pytest.raises(ConversionError, match="TorchScript archive"):
        convert_xclip_checkpoint(archive, tmp_path / "c")


def test_clip_to_xclip_refuses_an_xclip_checkpoint(tmp_path):
    with pytest.raises(ConversionError, match="not a plain CLIP checkpoint"):
        convert_clip_to_xclip(reference_file(*TINY), tmp_path / "out")


def test_infer_sizes_names_missing_keys():
    with pytest.raises(ConversionError, match="missing visual.conv1.weight"):
        infer_sizes({"foo": torch.zeros(1)})

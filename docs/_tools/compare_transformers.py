"""Measure what docs/comparison.md says about hf_xclip versus transformers' X-CLIP (same weights, same run).

    python docs/_tools/compare_transformers.py              # prints a markdown report, writes JSON next to it
    python docs/_tools/compare_transformers.py --json out.json

Random weights throughout (the differences are structural, not about trained values). Parity and the label-reuse
timing use B/32's sizes, the structural checks a small model (widths 128, 64 px). Speed is measured properly by
bench/bench_model.py (see docs/benchmarks.md); the one timing here
is the label-reuse case the comparison page explains.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import hf_xclip  # noqa: E402
from hf_xclip import XClipConfig, XClipModel, XClipProcessor, XClipVideoProcessor  # noqa: E402

REFERENCE = REPO.parent / "shared" / "reference"
B32_TEXT = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8)
B32_VISION = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    image_size=224,
    patch_size=32,
    num_frames=8,
    mit_hidden_size=512,
    mit_intermediate_size=2048,
)
# For the structural checks: small widths, 64 px, CLIP's vocabulary.
SMALL_TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2)
SMALL_VISION = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=64,
    patch_size=16,
    num_frames=8,
    mit_hidden_size=128,
    mit_intermediate_size=256,
    mit_num_attention_heads=2,
)  # width // 64 in both libraries (see wide_heads for the default)
SMALL_SIZE = 64


def _randomise_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "logit_scale" in name:
                param.fill_(math.log(100.0))
            elif param.ndim < 2:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model.eval()


def pair(text: dict, vision: dict, projection_dim: int, tmp: Path, seed: int = 0):
    """A random transformers XCLIPModel and hf_xclip's XClipModel loaded from its saved directory."""
    config = transformers.XCLIPConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=projection_dim,
        prompt_num_attention_heads=projection_dim // 64,
    )
    torch.manual_seed(seed)
    reference = _randomise_(transformers.XCLIPModel(config), seed)
    reference.save_pretrained(tmp)
    return reference, XClipModel.from_pretrained(tmp).eval()


def _error(fn) -> str:
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - we report what transformers raises
        return f"{type(err).__name__}: {str(err).splitlines()[0][:110]}"
    return "no error"


@torch.no_grad()
def parity(reference, ours, report: dict) -> None:
    ids = torch.randint(1, 49000, (4, 12))
    ids[:, 0], ids[:, -1] = 49406, 49407
    pixels = torch.randn(2, 8, 3, 224, 224)
    theirs = reference(input_ids=ids, pixel_values=pixels).logits_per_video
    mine = ours(input_ids=ids, pixel_values=pixels).logits_per_video
    report["parity_max_abs_logit_diff_b32"] = (theirs - mine).abs().max().item()
    report["parity_max_abs_prob_diff_b32"] = (theirs.softmax(-1) - mine.softmax(-1)).abs().max().item()
    if (REFERENCE / "xclip-original-tiny" / "checkpoint.pth").is_file():
        from hf_xclip.conversion import convert_xclip_checkpoint

        with tempfile.TemporaryDirectory() as out:
            result = convert_xclip_checkpoint(REFERENCE / "xclip-original-tiny" / "checkpoint.pth", Path(out) / "m")
            model = XClipModel.from_pretrained(Path(out) / "m").eval()
        expected = torch.load(REFERENCE / "xclip-original-tiny" / "expected.pt", weights_only=True)
        logits = model(input_ids=expected["input_ids"], pixel_values=expected["pixel_values"]).logits_per_video
        report["original_max_abs_logit_diff_tiny"] = (logits - expected["logits_per_video"]).abs().max().item()
        report["conversion_check_errors"] = result.max_abs_errors


@torch.no_grad()
def frame_counts(reference, ours, report: dict) -> None:
    ids = torch.randint(1, 49000, (3, 8))
    ids[:, 0], ids[:, -1] = 49406, 49407
    rows = {}
    for frames, batch in ((8, 2), (4, 2), (16, 1), (6, 1)):
        pixels = torch.randn(batch, frames, 3, SMALL_SIZE, SMALL_SIZE, generator=torch.Generator().manual_seed(frames))
        alone = torch.cat([ours(input_ids=ids, pixel_values=pixels[i : i + 1]).logits_per_video for i in range(batch)])
        batched = ours(input_ids=ids, pixel_values=pixels).logits_per_video
        row = {"ours_batch_vs_alone_max_abs": (alone - batched).abs().max().item()}
        try:
            theirs = reference(input_ids=ids, pixel_values=pixels).logits_per_video
            theirs_alone = None
            if batch > 1:
                theirs_alone = torch.cat(
                    [reference(input_ids=ids, pixel_values=pixels[i : i + 1]).logits_per_video for i in range(batch)]
                )
            row["transformers"] = "runs"
            row["transformers_vs_ours_max_abs"] = (theirs - batched).abs().max().item()
            if theirs_alone is not None:
                row["transformers_batch_vs_alone_max_abs"] = (theirs - theirs_alone).abs().max().item()
        except Exception as err:  # noqa: BLE001
            row["transformers"] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
        rows[f"T={frames}, B={batch}"] = row
    # transformers' vision tower alone runs on T != num_frames, grouping frames by config.num_frames: two 4-frame
    # videos become one 8-frame group, so each video's frames attend to the other's.
    pixels = torch.randn(2, 4, 3, SMALL_SIZE, SMALL_SIZE, generator=torch.Generator().manual_seed(0))
    together = reference.vision_model(pixel_values=pixels.flatten(0, 1)).pooler_output
    apart = torch.cat([reference.vision_model(pixel_values=torch.cat([v, v])).pooler_output[:4] for v in pixels])
    ours_together = ours.vision_model(pixel_values=pixels).pooler_output
    ours_apart = torch.cat([ours.vision_model(pixel_values=v[None]).pooler_output for v in pixels])
    rows["vision tower, 2 videos x 4 frames"] = {
        "transformers_frames_changed_by_the_other_video_max_abs": (together - apart).abs().max().item(),
        "ours_batch_vs_alone_max_abs": (ours_together - ours_apart).abs().max().item(),
    }
    report["frame_counts"] = rows


def _max_leaf_diff(a, b) -> float:
    """Largest difference between two nested tuples of tensors of the same structure (inf if they differ)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return (a - b).abs().max().item() if a.shape == b.shape else math.inf
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return max((_max_leaf_diff(x, y) for x, y in zip(a, b)), default=0.0)
    return math.inf


@torch.no_grad()
def dropin(reference, ours, report: dict) -> None:
    """What code written against transformers' X-CLIP sees: tuples, flat frames, state dicts, init, bad input."""
    import copy
    import dataclasses

    from transformers.models.x_clip.modeling_x_clip import XCLIPOutput

    from hf_xclip import XClipOutput, XClipTextConfig

    ids = torch.randint(1, 49000, (2, 8))
    ids[:, 0], ids[:, -1] = 49406, 49407
    pixels = torch.randn(2, 8, 3, SMALL_SIZE, SMALL_SIZE)
    inputs = dict(input_ids=ids, pixel_values=pixels, return_loss=True, return_dict=False)
    rows = {
        "output_fields_same_order": [f.name for f in dataclasses.fields(XClipOutput)]
        == [f.name for f in dataclasses.fields(XCLIPOutput)],
        "return_dict_false_tuple_max_abs_diff": _max_leaf_diff(ours(**inputs), reference(**inputs)),
    }
    fresh = XClipModel(ours.config)
    keys = fresh.load_state_dict(reference.state_dict(), strict=False)
    rows["load_state_dict_of_transformers_model"] = {"missing": keys.missing_keys, "unexpected": keys.unexpected_keys}
    flat = pixels.flatten(0, 1)
    rows["flat_frames_vision_pooler_max_abs_diff"] = (
        (ours.vision_model(flat).pooler_output - reference.vision_model(pixel_values=flat).pooler_output)
        .abs()
        .max()
        .item()
    )
    odd = torch.randn(6, 3, SMALL_SIZE, SMALL_SIZE)
    rows["flat_frames_6_on_8_frame_model"] = {
        "transformers": _error(lambda: reference.vision_model(pixel_values=odd)),
        "ours": _error(lambda: ours.vision_model(odd)),
    }
    zero = copy.deepcopy(ours.config)
    for config in (zero, zero.text_config, zero.vision_config):
        config.initializer_range, config.initializer_factor = 1e-10, 1e-10
    theirs_zero = copy.deepcopy(reference.config)
    for config in (theirs_zero, theirs_zero.text_config, theirs_zero.vision_config):
        config.initializer_factor = 1e-10
        if hasattr(config, "initializer_range"):
            config.initializer_range = 1e-10

    def largest_weight(model):
        return max((p.abs().max().item(), n) for n, p in model.named_parameters() if p.ndim >= 2)

    torch.manual_seed(0)
    rows["zero_init_config_largest_weight_matrix_entry"] = {
        "transformers": list(largest_weight(transformers.XCLIPModel(theirs_zero))),
        "ours": list(largest_weight(XClipModel(zero))),
    }
    text = dict(vocab_size=100, hidden_size=37, num_attention_heads=8, intermediate_size=37, num_hidden_layers=1)
    rows["text_hidden_size_37_with_8_heads"] = {
        "transformers": _error(lambda: transformers.XCLIPTextModel(transformers.XCLIPTextConfig(**text))(ids % 100)),
        "ours": _error(lambda: XClipTextConfig(**text)),
    }
    tokenizer = _tokenizer()
    if tokenizer is not None:
        import numpy as np

        video = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
        still = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        theirs = transformers.XCLIPProcessor(image_processor=transformers.VideoMAEImageProcessor(), tokenizer=tokenizer)
        mine = XClipProcessor(video_processor=XClipVideoProcessor(num_frames=8, crop_size=64), tokenizer=tokenizer)
        shape = list(theirs(images=[still], videos=[list(video)], return_tensors="pt")["pixel_values"].shape)
        rows["processor_images_and_videos_together"] = {
            "transformers": f"pixel_values {shape}",
            "ours": _error(lambda: mine(images=[still], videos=[video])),
        }
    report["dropin"] = rows


def losses(reference, ours, report: dict) -> None:
    ids = torch.randint(1, 49000, (5, 8))
    ids[:, 0], ids[:, -1] = 49406, 49407
    pixels = torch.randn(2, 8, 3, SMALL_SIZE, SMALL_SIZE)
    report["loss_5_texts_2_videos"] = {
        "transformers return_loss": _error(lambda: reference(input_ids=ids, pixel_values=pixels, return_loss=True)),
        "ours labels=(B,)": round(ours(input_ids=ids, pixel_values=pixels, labels=torch.tensor([1, 3])).loss.item(), 4),
    }
    with torch.no_grad():
        theirs = reference(input_ids=ids[:2], pixel_values=pixels, return_loss=True).loss
        mine = ours(input_ids=ids[:2], pixel_values=pixels, return_loss=True).loss
    report["contrastive_loss_same_pairs_abs_diff"] = (theirs - mine).abs().item()


@torch.no_grad()
def label_reuse(reference, ours, report: dict, num_labels: int = 64, num_videos: int = 3) -> None:
    ids = torch.randint(1, 49000, (num_labels, 10))
    ids[:, 0], ids[:, -1] = 49406, 49407
    videos = [torch.randn(1, 8, 3, 224, 224) for _ in range(num_videos)]
    for model in (reference, ours):  # warm-up
        model(input_ids=ids[:4], pixel_values=videos[0])
    # Video after video, the two libraries in turn, so that both see the same load on a shared machine.
    start = time.perf_counter()
    text_embeds = ours.get_text_features(input_ids=ids).pooler_output
    ours_s, transformers_s, theirs, mine = time.perf_counter() - start, 0.0, [], []
    for video in videos:
        start = time.perf_counter()
        theirs.append(reference(input_ids=ids, pixel_values=video).logits_per_video)
        transformers_s += time.perf_counter() - start
        start = time.perf_counter()
        mine.append(ours(text_embeds=text_embeds, pixel_values=video).logits_per_video)
        ours_s += time.perf_counter() - start
    report["label_reuse"] = {
        "labels": num_labels,
        "videos": num_videos,
        "transformers_s": round(transformers_s, 2),
        "ours_s": round(ours_s, 2),
        "speedup": round(transformers_s / ours_s, 2),
        "text_encodings_transformers": num_labels * num_videos,
        "text_encodings_ours": num_labels,
        "max_abs_logit_diff": max((a - b).abs().max().item() for a, b in zip(theirs, mine)),
    }


def peft_reach(reference, ours, report: dict) -> None:
    import copy

    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    ids = torch.randint(1, 49000, (3, 8))
    ids[:, 0], ids[:, -1] = 49406, 49407
    pixels = torch.randn(1, 8, 3, SMALL_SIZE, SMALL_SIZE)
    rows = {}

    def lora(model, task_type, modules_to_save=None):
        config = LoraConfig(target_modules=["q_proj", "v_proj"], task_type=task_type, modules_to_save=modules_to_save)
        peft_model = get_peft_model(copy.deepcopy(model), config)
        peft_model(input_ids=ids, pixel_values=pixels)
        return f"works ({sum(p.numel() for p in peft_model.parameters() if p.requires_grad):,} trainable)"

    for name, model, module in (
        ("transformers", reference, "prompts_visual_projection"),
        ("ours", ours, "prompts_visual_proj"),
    ):
        rows[name] = {
            "LoRA task_type=None": _error_or(lambda: lora(model, None)),
            "LoRA task_type=FEATURE_EXTRACTION": _error_or(lambda: lora(model, "FEATURE_EXTRACTION")),
            f"modules_to_save=['{module}']": _error_or(lambda: lora(model, None, [module])),
            "PromptTuning (8 virtual tokens)": _error_or(
                lambda: _prompt_tuning(model, PromptTuningConfig, get_peft_model, ids, pixels)
            ),
        }
    report["peft"] = rows


def _prompt_tuning(model, config_class, get_peft_model, ids, pixels) -> str:
    import copy

    config = config_class(
        task_type="FEATURE_EXTRACTION",
        num_virtual_tokens=8,
        token_dim=model.config.text_config.hidden_size,
        num_layers=1,
        num_attention_heads=1,
    )
    peft_model = get_peft_model(copy.deepcopy(model), config)
    peft_model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels)
    return "works"


def _error_or(fn) -> str:
    try:
        return fn()
    except Exception as err:  # noqa: BLE001
        return f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"


@torch.no_grad()
def wide_heads(report: dict) -> None:
    """L/14-width MIT and prompt generator (D = 768): transformers' default 8 heads against the original's 12."""
    tconfig = transformers.XCLIPConfig(
        text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1),
        vision_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=1,
            image_size=56,
            patch_size=14,
            num_frames=8,
            mit_hidden_size=768,
            mit_intermediate_size=3072,
        ),
        projection_dim=768,
    )
    ours_config = XClipConfig.from_dict(tconfig.to_dict())
    report["l14_heads"] = {
        "transformers_config": [tconfig.vision_config.mit_num_attention_heads, tconfig.prompt_num_attention_heads],
        "ours_config": [ours_config.vision_config.mit_num_attention_heads, ours_config.prompt_num_attention_heads],
    }
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        reference = _randomise_(transformers.XCLIPModel(tconfig))
        reference.save_pretrained(tmp)
        ours = XClipModel.from_pretrained(tmp).eval()
    ids = torch.randint(1, 49000, (5, 8))
    ids[:, 0], ids[:, -1] = 49406, 49407
    pixels = torch.randn(2, 8, 3, 56, 56)
    theirs = reference(input_ids=ids, pixel_values=pixels).logits_per_video.softmax(-1)
    mine = ours(input_ids=ids, pixel_values=pixels).logits_per_video.softmax(-1)
    report["l14_heads"]["max_abs_prob_diff_8_vs_12_heads"] = (theirs - mine).abs().max().item()


@torch.no_grad()
def eos_pooling(reference, ours, report: dict) -> None:
    """A text with a token added after training (id above EOT): where each model pools."""
    vocab = reference.config.text_config.vocab_size  # 49408: `tokenizer.add_tokens` gives the next id, above EOT
    ours.resize_token_embeddings(vocab + 1)
    old = reference.text_model.embeddings.token_embedding  # XCLIPModel has no resize_token_embeddings
    new = torch.nn.Embedding(vocab + 1, old.embedding_dim)
    new.weight[:vocab] = old.weight
    new.weight[vocab] = ours.get_input_embeddings().weight[vocab]
    reference.text_model.embeddings.token_embedding = new
    ids = torch.tensor([[49406, 320, vocab, 1929, 49407, 0, 0, 0], [49406, 320, 1929, 49407, 0, 0, 0, 0]])
    mask = (torch.arange(8) <= torch.tensor([[4], [3]])).long()
    theirs = reference.get_text_features(input_ids=ids, attention_mask=mask)
    theirs = theirs.pooler_output if hasattr(theirs, "pooler_output") else theirs
    mine = ours.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
    cosine = torch.nn.functional.cosine_similarity(theirs, mine, dim=-1)
    report["eos_pooling_added_token"] = {
        "cosine_transformers_vs_ours_with_added_token": round(cosine[0].item(), 4),
        "cosine_without_added_token": round(cosine[1].item(), 6),
        "transformers_pools_at": int(ids[0].argmax()),
        "ours_pools_at": int((ids[0] == 49407).nonzero()[0]),
    }


def processor_layout(report: dict) -> None:
    import numpy as np

    frames = list(np.random.default_rng(0).integers(0, 255, (8, 240, 320, 3), dtype=np.uint8))
    rows = {}
    for name, image_processor in (
        ("transformers XCLIPProcessor + CLIPImageProcessor", transformers.CLIPImageProcessor()),
        ("transformers XCLIPProcessor + VideoMAEImageProcessor", transformers.VideoMAEImageProcessor()),
    ):
        tokenizer = _tokenizer()
        if tokenizer is None:
            break
        processor = transformers.XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
        try:
            rows[name] = list(processor(videos=[frames], return_tensors="pt")["pixel_values"].shape)
        except Exception as err:  # noqa: BLE001
            rows[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
    tokenizer = _tokenizer()
    if tokenizer is not None:
        ours = XClipProcessor(video_processor=XClipVideoProcessor(num_frames=8), tokenizer=tokenizer)
        rows["hf_xclip XClipProcessor"] = list(ours(videos=np.stack(frames))["pixel_values"].shape)
    report["processor_pixel_values"] = rows


def _tokenizer():
    directory = REFERENCE / "clip-tokenizer"
    if not (directory / "vocab.json").is_file():
        return None
    return transformers.CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))


def bench_results(report: dict) -> None:
    results = REPO / "bench" / "results"
    found = {}
    for path in sorted(results.glob("*.json")) if results.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        rows = data.get("rows") or []
        found[path.name] = [
            {k: row.get(k) for k in ("section", "case", "ours", "transformers", "unit", "ratio")} for row in rows
        ]
    report["bench_results"] = found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("comparison_results.json"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads(),
            "hf_xclip": hf_xclip.__version__,
            "load_average_1min_at_start": os.getloadavg()[0],
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        b32 = pair(B32_TEXT, B32_VISION, 512, Path(tmp) / "b32")
        small = pair(SMALL_TEXT, SMALL_VISION, 128, Path(tmp) / "small")
    for step, models in (
        (parity, b32),
        (label_reuse, b32),
        (frame_counts, small),
        (dropin, small),
        (losses, small),
        (peft_reach, small),
        (eos_pooling, small),
    ):
        start = time.perf_counter()
        step(*models, report)
        print(f"{step.__name__}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    wide_heads(report)
    processor_layout(report)
    bench_results(report)
    report["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "bench_results"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

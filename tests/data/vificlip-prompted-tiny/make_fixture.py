"""Regenerate this folder from the ORIGINAL ViFi-CLIP code (not part of the test suite; see README.md).

    python make_fixture.py --original PATH/TO/ViFi-CLIP --site PATH/WITH/yacs+timm --reference ../shared/reference

`--original` is a checkout of github.com/muzairkhattak/ViFi-CLIP (commit e2d1948307f582052078eb8a4afbeb50247166f1);
`--site` a folder holding `yacs` (0.1.8) and `timm` (1.0.31), e.g. `pip install --no-deps --target SITE yacs timm`.
The original code runs unchanged; only what it downloads or needs a GPU for is replaced (listed in README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import types
from pathlib import Path

import torch

VARIANTS = {
    # vision: 3 tokens in both layers; text: 5 random context vectors ("X X X X X"), a deep prompt in layer 1
    "deep": {"N_CTX_VISION": 3, "N_CTX_TEXT": 5, "PROMPT_DEPTH_VISION": 2, "PROMPT_DEPTH_TEXT": 2},
    # vision: 2 tokens before the first layer only; text: 4 context vectors initialised from "a photo of a"
    "shallow": {"N_CTX_VISION": 2, "N_CTX_TEXT": 4, "PROMPT_DEPTH_VISION": 1, "PROMPT_DEPTH_TEXT": 1},
}
CLASS_NAMES = ["abseiling", "ApplyEyeMakeup", "brush hair"]
SEED = 20240619


def _stub_imports(original: Path, site: Path, clip_path: Path) -> None:
    sys.path[:0] = [str(original), str(site)]
    # clip/clip.py imports torchvision transforms (used only by clip.load's preprocessing, which is not run)
    transforms = types.ModuleType("torchvision.transforms")
    for name in ("Compose", "Resize", "CenterCrop", "ToTensor", "Normalize"):
        setattr(transforms, name, object)
    transforms.InterpolationMode = types.SimpleNamespace(BICUBIC=3)
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms
    sys.modules.update({"torchvision": torchvision, "torchvision.transforms": transforms})
    # timm's package __init__ imports its models (and torchvision); the scheduler module alone needs neither
    for package in ("timm", "timm.scheduler"):
        module = types.ModuleType(package)
        module.__path__ = [str(site.joinpath(*package.split(".")))]
        sys.modules[package] = module
    import clip.clip as clip_module

    clip_module._download = lambda url, root=None: str(clip_path)  # the tiny "pretrained CLIP" instead of ViT-B/16


def _config(original: Path, base_checkpoint: Path, trainer: dict):
    from utils.config import get_config

    opts = ["DATA.NUM_FRAMES", "4", "DATA.NUM_CLASSES", "3", "DATA.INPUT_SIZE", "32", "TRAIN.BATCH_SIZE", "2"]
    for key, value in trainer.items():
        opts += [f"TRAINER.ViFi_CLIP.{key}", str(value)]
    args = argparse.Namespace(
        config=str(original / "configs/few_shot/prompting_few_shot/hmdb51/16_32_prompting_2_shot.yaml"),
        opts=opts,
        batch_size=None,
        pretrained=None,
        resume=str(base_checkpoint),
        accumulation_steps=None,
        output="",
        only_test=False,
        local_rank=-1,
    )
    return get_config(args)


def _build(config, logger):
    """returnCLIP + DDP as in main.py; the float32 `dtype` attributes as in the fine-tuned fixture (see README)."""
    from trainers import vificlip

    model = vificlip.returnCLIP(config, logger=logger, class_names=CLASS_NAMES)
    model.dtype = torch.float32
    model.text_encoder.dtype = torch.float32
    return torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False, find_unused_parameters=False)


def _features(model, pixel_values):
    """Logits of the DDP model's forward, with the video and text features captured on the way."""
    captured = {}
    inner = model.module
    hooks = [
        inner.image_encoder.register_forward_hook(lambda m, i, o: captured.__setitem__("frames", o)),
        inner.text_encoder.register_forward_hook(lambda m, i, o: captured.__setitem__("text", o)),
    ]
    with torch.no_grad():
        logits = model(pixel_values)
    for hook in hooks:
        hook.remove()
    video = captured["frames"].view(pixel_values.shape[0], pixel_values.shape[1], -1).mean(dim=1)
    return logits, video, captured["text"]


def make_variant(name: str, trainer: dict, args, out_dir: Path, logger) -> None:
    from safetensors.torch import save_file
    from utils.optimizer import build_optimizer, build_scheduler
    from utils.tools import epoch_saving, load_checkpoint

    torch.manual_seed(SEED + len(name))
    config = _config(args.original, args.base_checkpoint, trainer)
    model = _build(config, logger)
    optimizer = build_optimizer(config, model)
    lr_scheduler = build_scheduler(config, optimizer, 1)
    load_checkpoint(config, model, optimizer, lr_scheduler, logger)  # the "bridge": the fine-tuned ViFi-CLIP
    prompt_keys = [k for k, p in model.named_parameters() if p.requires_grad]
    with torch.no_grad():  # prompts random at a scale where they matter (the original's init is N(0, 0.02))
        for key, param in model.named_parameters():
            if param.requires_grad:
                param.normal_(0.0, 0.05 if "prompt_learner" in key else 1.0)
    # one optimiser step (the original few-shot prompting recipe's AdamW, LR 8e-3) so the saved state is real
    model.train()
    pixel_values = torch.randn(2, 4, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(model(pixel_values), torch.tensor([0, 2]))
    loss.backward()
    optimizer.step()
    lr_scheduler.step_update(1)
    optimizer.zero_grad()
    model.eval()

    work = args.work_dir / name
    work.mkdir(parents=True, exist_ok=True)
    epoch_saving(config, 3, model, 25.0, optimizer, lr_scheduler, logger, str(work), False)
    saved_path = work / "ckpt_epoch_3.pth"

    generator = torch.Generator().manual_seed(SEED)
    pixel_values = torch.randn(2, 4, 3, 32, 32, generator=generator)
    logits, video, text = _features(model, pixel_values)

    # The checkpoint reloads into a fresh original model (its own load_checkpoint) to the same logits, and every
    # tensor the prompting stage did not add is the fine-tuned fixture's, bit for bit.
    config.defrost()
    config.MODEL.RESUME = str(saved_path)
    config.freeze()
    fresh = _build(config, logger)
    load_checkpoint(config, fresh, build_optimizer(config, fresh), lr_scheduler, logger)
    fresh.eval()
    assert torch.equal(_features(fresh, pixel_values)[0], logits), "reloaded original model differs"
    saved = torch.load(saved_path, map_location="cpu", weights_only=False)
    base = torch.load(args.base_checkpoint, map_location="cpu", weights_only=False)["model"]
    added = {k: v for k, v in saved["model"].items() if k not in base}
    for key, value in saved["model"].items():
        if key not in added:
            assert torch.equal(value, base[key]), key
    dropped = sorted(set(base) - set(saved["model"]))
    assert dropped == ["module.prompt_learner.complete_text_embeddings"], dropped
    assert sorted(added) == sorted(
        [k for k in added if "VPT" in k] + [k for k in added if k.startswith("module.prompt_learner.")]
    )
    assert set(prompt_keys) <= set(added), (prompt_keys, sorted(added))

    target = out_dir / name
    target.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in added.items()}, str(target / "prompt_weights.safetensors"))
    save_file(
        {
            "pixel_values": pixel_values,
            "input_ids": model.module.tokenized_prompts.clone(),
            "logits_per_video": logits,
            "video_features": video,
            "text_features": text,
        },
        str(target / "expected.safetensors"),
    )
    clean = json.loads(json.dumps(saved["config"], default=lambda o: dict(o)))
    meta = {
        "class_names": CLASS_NAMES,
        "trainer": {k: clean["TRAINER"]["ViFi_CLIP"][k] for k in sorted(clean["TRAINER"]["ViFi_CLIP"])},
        "checkpoint": {"epoch": saved["epoch"], "max_accuracy": saved["max_accuracy"], "config": clean},
        "base_checkpoint_sha256": hashlib.sha256(args.base_checkpoint.read_bytes()).hexdigest(),
        "original_checkpoint_sha256": hashlib.sha256(saved_path.read_bytes()).hexdigest(),
        "original_checkpoint_keys": sorted(saved["model"]),
        "seed": SEED,
    }
    (target / "checkpoint_info.json").write_text(json.dumps(meta, indent=1) + "\n")
    logger.info("%s: prompts %s, logits %s", name, sorted(added), logits.tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, required=True)
    parser.add_argument("--site", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True, help="../shared/reference")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/vificlip-prompted-work"))
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    args.base_checkpoint = args.reference / "vificlip-original-tiny" / "checkpoint.pth"
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # torch 2.x's torch.load reads yacs configs as 1.x did
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger = logging.getLogger("vificlip")
    _stub_imports(args.original, args.site, args.reference / "vificlip-original-tiny" / "clip.pth")
    torch.distributed.init_process_group("gloo", init_method="tcp://127.0.0.1:29519", rank=0, world_size=1)
    for name, trainer in VARIANTS.items():
        make_variant(name, trainer, args, args.out_dir, logger)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

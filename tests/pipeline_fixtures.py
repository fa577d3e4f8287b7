"""Tiny X-CLIP checkpoints (ours and transformers' format), tokenizers and synthetic videos for pipeline / CLI tests."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers

from hf_xclip import XClipConfig, XClipModel

REFERENCE_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "reference" / "clip-tokenizer"
IMAGE_SIZE = 32
NUM_FRAMES = 4
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2 / CLIP convention)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def save_tokenizer(out_dir: Path) -> transformers.PreTrainedTokenizerBase:
    """A transformers CLIPTokenizer in `out_dir`: the real CLIP BPE from the reference folder when present, else a
    character-level vocabulary (every byte, with and without `</w>`, plus the two special tokens, EOT last)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (REFERENCE_TOKENIZER / "vocab.json").is_file() and (REFERENCE_TOKENIZER / "merges.txt").is_file():
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(REFERENCE_TOKENIZER / name, out_dir / name)
    else:
        chars = _byte_level_alphabet()
        vocab = {c: i for i, c in enumerate(chars)}
        vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
        vocab["<|startoftext|>"] = len(vocab)
        vocab["<|endoftext|>"] = len(vocab)
        (out_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (out_dir / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(out_dir), model_max_length=77)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def config_dicts(vocab_size: int) -> tuple[dict, dict, dict]:
    text = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=8,
        num_frames=NUM_FRAMES,
        mit_hidden_size=64,
        mit_intermediate_size=40,
        mit_num_attention_heads=1,
    )
    top = dict(projection_dim=64, prompt_layers=2, prompt_num_attention_heads=1)
    return text, vision, top


def _randomise_(model: torch.nn.Module, seed: int) -> None:
    """Spread every weight (LayerNorms, biases, alpha included) so that scores differ clearly between labels."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "logit_scale" in name:
                param.fill_(math.log(100.0))  # the original's (frozen) value
                continue
            param.copy_(torch.randn(param.shape, generator=generator) * (0.5 if param.ndim < 2 else 0.2))


def save_preprocessor_config(out_dir: Path, *, videomae: bool = True) -> None:
    """preprocessor_config.json of transformers' X-CLIP layout (a VideoMAE feature extractor, ImageNet statistics)."""
    config = {
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "image_mean": IMAGENET_MEAN,
        "image_std": IMAGENET_STD,
        "resample": 2,
        "size": IMAGE_SIZE,
        "crop_size": IMAGE_SIZE,
    }
    if videomae:
        config.update(feature_extractor_type="VideoMAEFeatureExtractor", processor_class="XCLIPProcessor")
    (Path(out_dir) / "preprocessor_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def save_tiny_xclip(out_dir: Path, seed: int = 0) -> Path:
    """An hf_xclip checkpoint directory: random tiny XClipModel + tokenizer + preprocessor config."""
    out_dir = Path(out_dir)
    tokenizer = save_tokenizer(out_dir)
    text, vision, top = config_dicts(len(tokenizer))
    torch.manual_seed(seed)
    model = XClipModel(XClipConfig(text_config=text, vision_config=vision, **top)).eval()
    _randomise_(model, seed)
    model.save_pretrained(str(out_dir))
    save_preprocessor_config(out_dir, videomae=False)
    return out_dir


def save_tiny_transformers_xclip(out_dir: Path, seed: int = 1) -> tuple[Path, transformers.XCLIPModel]:
    """A directory in transformers' own X-CLIP layout (model_type `xclip`, VideoMAE preprocessor, CLIP tokenizer)."""
    out_dir = Path(out_dir)
    tokenizer = save_tokenizer(out_dir)
    text, vision, top = config_dicts(len(tokenizer))
    torch.manual_seed(seed)
    model = transformers.XCLIPModel(transformers.XCLIPConfig(text_config=text, vision_config=vision, **top)).eval()
    _randomise_(model, seed)
    model.save_pretrained(str(out_dir))
    save_preprocessor_config(out_dir, videomae=True)
    return out_dir, model


def synthetic_frames(kind: int, num_frames: int = 12, size: tuple[int, int] = (40, 48), seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: a coloured square moving over a gradient; `kind` picks colour and direction."""
    rng = np.random.default_rng(seed + 17 * kind)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 60 * (kind % 4))], -1)
    colour = np.array([(255, 40, 40), (40, 255, 40), (40, 40, 255), (250, 250, 30)][kind % 4])
    frames = []
    for t in range(num_frames):
        frame = base.copy()
        pos = int(t * (width - 12) / max(1, num_frames - 1))
        x0 = pos if kind % 2 == 0 else width - 12 - pos
        y0 = (height - 12) // 2 + int(rng.integers(-2, 3))
        frame[y0 : y0 + 12, x0 : x0 + 12] = colour
        frames.append(frame)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def write_synthetic_videos(out_dir: Path, count: int = 3, **kwargs) -> list[Path]:
    """`count` small mp4 files (different content each) written with hf_xclip.video_io.write_video."""
    from hf_xclip.video_io import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_video(out_dir / f"video_{i}.mp4", synthetic_frames(i, **kwargs), fps=8, crf=18) for i in range(count)]

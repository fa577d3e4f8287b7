"""Shared test tooling: the tiny-model tester (configs and inputs), one `randomise_`, tiny tokenizers and checkpoints
(ours and transformers' format), synthetic videos."""

from __future__ import annotations

import json
import math
import shutil
from fractions import Fraction
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


class XClipModelTester:
    """Builds tiny configs (as transformers' XCLIPConfig and as ours) and inputs; every test module sizes its models
    through it (see the presets below)."""

    def __init__(
        self,
        *,
        text_width: int = 32,
        text_heads: int = 4,
        vision_width: int = 32,
        vision_heads: int = 4,
        projection_dim: int = 64,
        mit_heads: int = 1,
        prompt_heads: int = 1,
        num_layers: int = 2,
        mit_layers: int = 1,
        prompt_layers: int = 2,
        image_size: int = 30,
        patch_size: int = 6,
        num_frames: int = 4,
        vocab_size: int = 99,
        seq_length: int = 12,
        intermediate_size: int = 37,
        mit_intermediate_size: int = 40,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int = 0,
    ) -> None:
        self.num_frames = num_frames
        self.image_size = image_size
        self.vocab_size = vocab_size
        self.seq_length = seq_length
        self.text = dict(
            vocab_size=vocab_size,
            hidden_size=text_width,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_layers,
            num_attention_heads=text_heads,
            max_position_embeddings=seq_length,
            bos_token_id=vocab_size - 2 if bos_token_id is None else bos_token_id,
            eos_token_id=vocab_size - 1 if eos_token_id is None else eos_token_id,
            pad_token_id=pad_token_id,
        )
        self.vision = dict(
            hidden_size=vision_width,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_layers,
            num_attention_heads=vision_heads,
            image_size=image_size,
            patch_size=patch_size,
            num_frames=num_frames,
            mit_hidden_size=projection_dim,
            mit_intermediate_size=mit_intermediate_size,
            mit_num_hidden_layers=mit_layers,
            mit_num_attention_heads=mit_heads,
        )
        self.top = dict(
            projection_dim=projection_dim, prompt_layers=prompt_layers, prompt_num_attention_heads=prompt_heads
        )

    @classmethod
    def for_tokenizer(cls, tokenizer, **kwargs) -> XClipModelTester:
        """Sizes for a real tokenizer: its vocabulary and special ids."""
        kwargs.setdefault("vocab_size", len(tokenizer))
        return cls(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **kwargs,
        )

    @classmethod
    def synthetic(cls, tokenizer, *, patch_size: int = 8, seq_length: int = 16) -> XClipModelTester:
        """The fine-tuning / PEFT preset: the synthetic word-level tokenizer, 2 heads, 32 px, 4 frames."""
        return cls.for_tokenizer(
            tokenizer,
            text_heads=2,
            vision_heads=2,
            intermediate_size=64,
            mit_intermediate_size=128,
            image_size=32,
            patch_size=patch_size,
            seq_length=seq_length,
        )

    @classmethod
    def pipeline(cls, vocab_size: int) -> XClipModelTester:
        """The pipeline / CLI / remote-code preset: CLIP tokenizer ids (EOT last), 77 positions, 32 px, patch 8."""
        return cls(
            vocab_size=vocab_size, seq_length=77, image_size=IMAGE_SIZE, patch_size=8, pad_token_id=vocab_size - 1
        )

    def config(self, **overrides) -> XClipConfig:
        return XClipConfig(text_config=dict(self.text), vision_config=dict(self.vision), **{**self.top, **overrides})

    def transformers_config(self) -> transformers.XCLIPConfig:
        return transformers.XCLIPConfig(text_config=dict(self.text), vision_config=dict(self.vision), **self.top)

    def input_ids(self, num_texts: int = 3, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, self.vocab_size - 2, (num_texts, self.seq_length), generator=generator)
        ids[:, 0] = self.vocab_size - 2
        for row in range(num_texts):  # EOT at varying positions, zero padding after it, like clip.tokenize
            eot = 3 + row % (self.seq_length - 3)
            ids[row, eot] = self.vocab_size - 1
            ids[row, eot + 1 :] = 0
        return ids

    def pixel_values(self, batch_size: int = 2, num_frames: int | None = None, seed: int = 1) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        frames = num_frames or self.num_frames
        return torch.randn(batch_size, frames, 3, self.image_size, self.image_size, generator=generator)


def randomise_(
    model: torch.nn.Module,
    seed: int = 0,
    *,
    style: str = "parity",
) -> torch.nn.Module:
    """Give every parameter random values (LayerNorms, biases, alpha too), in place; returns `model`.

    Styles:
        ``"parity"``: norm weights 1 + 0.2 n, logit scale 2.0, everything else 0.1 n (parity tests see every
            parameter);
        ``"spread"``: vectors 0.5 n, matrices 0.2 n, logit scale log(100) (the original's frozen value), so that
            scores differ clearly between labels (pipeline / CLI tests);
        ``"perturb"``: 0.05 n added to the initialisation, logit scale kept (remote-code round trips).
    """
    if style not in ("parity", "spread", "perturb"):
        raise ValueError(f"unknown style {style!r}")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if style == "perturb":
                if "logit_scale" not in name:
                    param.add_(torch.randn(param.shape, generator=generator) * 0.05)
            elif style == "spread":
                if "logit_scale" in name:
                    param.fill_(math.log(100.0))
                    continue
                param.copy_(torch.randn(param.shape, generator=generator) * (0.5 if param.ndim < 2 else 0.2))
            else:
                noise = torch.randn(param.shape, generator=generator)
                if "norm" in name and name.endswith("weight"):
                    param.copy_(1 + 0.2 * noise)
                elif name.endswith("logit_scale"):
                    param.fill_(2.0)
                else:
                    param.copy_(0.1 * noise)
    return model


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
    torch.manual_seed(seed)
    model = randomise_(XClipModel(XClipModelTester.pipeline(len(tokenizer)).config()).eval(), seed, style="spread")
    model.save_pretrained(str(out_dir))
    save_preprocessor_config(out_dir, videomae=False)
    return out_dir


def save_tiny_transformers_xclip(out_dir: Path, seed: int = 1) -> tuple[Path, transformers.XCLIPModel]:
    """A directory in transformers' own X-CLIP layout (model_type `xclip`, VideoMAE preprocessor, CLIP tokenizer)."""
    out_dir = Path(out_dir)
    tokenizer = save_tokenizer(out_dir)
    torch.manual_seed(seed)
    model = transformers.XCLIPModel(XClipModelTester.pipeline(len(tokenizer)).transformers_config()).eval()
    randomise_(model, seed, style="spread")
    model.save_pretrained(str(out_dir))
    save_preprocessor_config(out_dir, videomae=True)
    return out_dir, model


def few_shot_specs():
    """The three easy classes of the fine-tuning tests (a shape of one colour doing one motion)."""
    from hf_xclip.data.synthetic import SyntheticVideoSpec

    return [
        SyntheticVideoSpec("circle", "red", "growing"),
        SyntheticVideoSpec("square", "green", "moving left"),
        SyntheticVideoSpec("triangle", "blue", "moving up"),
    ]


def save_synthetic_xclip(out_dir: Path, tokenizer, seed: int = 0) -> Path:
    """The fine-tuning tests' checkpoint: a random tiny XClipModel (`XClipModelTester.synthetic`) with a processor
    of the synthetic tokenizer, 32 px crops and 4 frames."""
    from hf_xclip import XClipProcessor, XClipVideoProcessor

    torch.manual_seed(seed)
    XClipModel(XClipModelTester.synthetic(tokenizer, patch_size=8, seq_length=16).config()).save_pretrained(out_dir)
    processor = XClipProcessor(video_processor=XClipVideoProcessor(crop_size=32, num_frames=4), tokenizer=tokenizer)
    processor.save_pretrained(out_dir)
    return Path(out_dir)


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
    """`count` small mp4 files (different content each) written with hf_xclip.data.write_video."""
    from hf_xclip.data import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_video(out_dir / f"video_{i}.mp4", synthetic_frames(i, **kwargs), fps=8, crf=18) for i in range(count)]


def save_tiny_causal_lm(
    out_dir: Path, *, kind: str = "llama", hidden_size: int = 32, num_layers: int = 2, seed: int = 0
):
    """A tiny random causal language model (no download) with the CLIP tokenizer of `save_tokenizer` in `out_dir`:
    `kind` "llama" (LlamaForCausalLM) or "gpt2" (GPT2LMHeadModel). Returns `(out_dir, model, tokenizer)`."""
    out_dir = Path(out_dir)
    tokenizer = save_tokenizer(out_dir)
    special = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            **special,
        )
    elif kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=len(tokenizer), n_embd=hidden_size, n_layer=num_layers, n_head=4, n_positions=128, **special
        )
    else:
        raise ValueError(f"unknown kind {kind!r}")
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(str(out_dir))
    return out_dir, model, tokenizer


# Videos whose frames say which frame they are: the index in binary as a row of black / white 8x8 blocks, which
# survives lossy H.264 with B-frames.
BITS, BLOCK = 8, 8


def coded_frames(num: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Moving texture (so the encoder uses P- and B-frames), frame index in binary in the top row of blocks."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height, 2 * width, 3), dtype=np.uint8)
    frames = np.stack([texture[:, k % width : k % width + width] for k in range(num)])
    for k in range(num):
        for bit in range(BITS):
            frames[k, :BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255 * ((k >> bit) & 1)
    return frames


def frame_number(frame: np.ndarray) -> int:
    return sum(int(frame[2:6, b * BLOCK + 2 : b * BLOCK + 6].mean() > 127) << b for b in range(BITS))


def numbers(frames: np.ndarray) -> list[int]:
    return [frame_number(frame) for frame in frames]


def write_vfr(path, frames: np.ndarray, steps_ms: list[int], rate: int = 25):
    """H.264 mp4 (with B-frames) whose frames are ``steps_ms`` milliseconds apart."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stamp = 0
        for image, step in zip(frames, steps_ms):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, 1000)
            stamp += step
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

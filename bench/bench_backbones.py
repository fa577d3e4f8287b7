"""Image-text backbones on video (ViFi-CLIP-style frame pooling): hf_xclip's pipeline against the by-hand
transformers recipe, in one run, on random B/16-sized CLIP and SigLIP 2 models.

1. **Labels x videos**: K labels against V videos per call. The by-hand recipe is what the models' documentation
   shows, applied to video: every call tokenizes and encodes all labels, runs the sampled frames of every video through
   `get_image_features`, means over time and applies the model's logit formula (softmax for CLIP, sigmoid for
   SigLIP). The pipeline encodes each label once (text cache), so warm calls only run the video side. The scores of
   both are compared (max abs difference printed).
2. **Frame-pooling throughput**: frames/s of the pipeline (decoding arrays, sampling, the family's image processor,
   the image tower, pooling, scoring; one cached label) against the image tower's forward alone on the same number of
   already-preprocessed frames.

Run: ``python bench/bench_backbones.py`` (full B/16: 12 + 12 layers; ``--vision-layers 4 --text-layers 4`` when
the machine is loaded: both towers shrink alike, so the text / video cost ratio the speed-up depends on is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from common import (
    REFERENCE_DIR,
    median,
    paired_ratio,
    quiet_transformers,
    time_interleaved,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hf_xclip  # noqa: E402,F401  (registers the pipeline)
from hf_xclip.pipeline_zero_shot_video_classification import TASK  # noqa: E402

VERBS = [
    "playing",
    "holding",
    "throwing",
    "cleaning",
    "painting",
    "riding",
    "carrying",
    "washing",
    "cutting",
    "opening",
    "pushing",
    "pulling",
    "lifting",
    "kicking",
    "catching",
    "folding",
    "fixing",
    "building",
    "drawing",
    "eating",
]
OBJECTS = [
    "a guitar",
    "a ball",
    "a bike",
    "a car",
    "a box",
    "a door",
    "a dog",
    "a cake",
    "a wall",
    "a chair",
    "a kite",
    "a boat",
    "a shirt",
    "a window",
    "a horse",
    "a table",
    "a drum",
    "a tree",
    "a fish",
    "a book",
]


def label_set(count: int) -> list[str]:
    labels = [f"someone {verb} {obj}" for verb in VERBS for obj in OBJECTS]
    if count > len(labels):
        raise SystemExit(f"--labels at most {len(labels)}")
    return labels[:count]


def clip_tokenizer(out_dir: Path):
    """The real CLIP BPE from ../shared/reference when present, else a character-level CLIP tokenizer."""
    source = REFERENCE_DIR / "clip-tokenizer"
    if (source / "vocab.json").is_file():
        tokenizer = transformers.CLIPTokenizer(str(source / "vocab.json"), str(source / "merges.txt"))
    else:
        chars = [chr(c) for c in range(33, 127)]
        vocab = {c: i for i, c in enumerate(chars)}
        vocab.update({c + "</w>": len(vocab) for c in chars})
        vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
        (out_dir / "vocab.json").write_text(json.dumps(vocab))
        (out_dir / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = transformers.CLIPTokenizer(str(out_dir / "vocab.json"), str(out_dir / "merges.txt"))
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def siglip2_tokenizer(out_dir: Path):
    """SigLIP 2's tokenizer class over a character vocabulary (labels are padded to 64 tokens anyway)."""
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for char in sorted(set("".join(VERBS + OBJECTS + ["someone"])) | {"\u2581"}):
        vocab.setdefault(char, len(vocab))
    tokenizer = transformers.Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=64)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def build(family: str, out_dir: Path, vision_layers: int, text_layers: int, num_frames: int) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=vision_layers, num_attention_heads=12)
    if family == "clip":
        tokenizer = clip_tokenizer(out_dir)
        config = transformers.CLIPConfig(
            text_config=dict(
                hidden_size=512,
                intermediate_size=2048,
                num_hidden_layers=text_layers,
                num_attention_heads=8,
                vocab_size=len(tokenizer),
                eos_token_id=tokenizer.eos_token_id,
                bos_token_id=tokenizer.bos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            ),
            vision_config=dict(vision, image_size=224, patch_size=16),
            projection_dim=512,
        )
        model = transformers.CLIPModel(config)
        processor = transformers.CLIPImageProcessorPil()
    else:
        tokenizer = siglip2_tokenizer(out_dir)
        config = transformers.Siglip2Config(
            text_config=dict(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=text_layers,
                num_attention_heads=12,
                vocab_size=len(tokenizer),
                max_position_embeddings=64,
                pad_token_id=0,
                eos_token_id=1,
                bos_token_id=None,
            ),
            vision_config=dict(vision, patch_size=16, num_patches=256),
        )
        model = transformers.Siglip2Model(config)
        processor = transformers.Siglip2ImageProcessorPil(max_num_patches=256)
    model.config.video_text_num_frames = num_frames
    model.save_pretrained(str(out_dir))
    processor.save_pretrained(str(out_dir))
    return out_dir


def make_videos(count: int, frames: int = 32, size: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (frames, *size, 3), dtype=np.uint8) for _ in range(count)]


def by_hand(model, tokenizer, image_processor, family: str, videos, labels, num_frames: int) -> torch.Tensor:
    """The documented transformers recipe, per frame, every label encoded again."""
    with torch.no_grad():
        padding = {"padding": "max_length", "max_length": 64} if family == "siglip2" else {"padding": True}
        tokens = tokenizer(labels, return_tensors="pt", truncation=True, **padding)
        text = model.get_text_features(**tokens).pooler_output
        frames = []
        for video in videos:  # TSN middle frames, as the pipeline samples
            index = ((np.arange(num_frames) + 0.5) * len(video) / num_frames).astype(int)
            frames.extend(video[index])
        inputs = image_processor(images=frames, return_tensors="pt")
        image = model.get_image_features(**inputs).pooler_output
        video = image.reshape(len(videos), num_frames, -1).mean(dim=1)
        video = video / video.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        logits = video @ text.T * model.logit_scale.exp()
        if family == "siglip2":
            return torch.sigmoid(logits + model.logit_bias)
        return logits.softmax(dim=-1)


def ours(clf, videos, labels) -> torch.Tensor:
    results = clf(videos, candidate_labels=labels, hypothesis_template="{}", batch_size=len(videos))
    return torch.tensor([[{r["label"]: r["score"] for r in result}[label] for label in labels] for result in results])


def run_family(family: str, args, workdir: Path) -> dict:
    path = build(family, workdir / family, args.vision_layers, args.text_layers, args.frames)
    clf = transformers.pipeline(TASK, model=str(path))
    model = clf.model.model  # the transformers model inside the interface's wrapper
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    image_processor = transformers.AutoImageProcessor.from_pretrained(str(path))
    videos, labels = make_videos(args.videos), label_set(args.labels)
    difference = float(
        (ours(clf, videos, labels) - by_hand(model, tokenizer, image_processor, family, videos, labels, args.frames))
        .abs()
        .max()
    )
    times = time_interleaved(
        {
            "ours": lambda: ours(clf, videos, labels),
            "by hand": lambda: by_hand(model, tokenizer, image_processor, family, videos, labels, args.frames),
        },
        repeats=args.repeats,
        warmup=1,
        device="cpu",
    )
    # frames/s: the whole frame-pooling path vs the image tower alone on preprocessed frames
    one = label_set(1)
    pixel = image_processor(images=[f for v in videos for f in v[: args.frames]], return_tensors="pt")
    with torch.no_grad():
        speed = time_interleaved(
            {"pipeline": lambda: ours(clf, videos, one), "forward": lambda: model.get_image_features(**pixel)},
            repeats=args.repeats,
            warmup=1,
            device="cpu",
        )
    frames = len(videos) * args.frames
    return {
        "family": family,
        "labels": len(labels),
        "videos": len(videos),
        "frames": args.frames,
        "ours_s": median(times["ours"]),
        "by_hand_s": median(times["by hand"]),
        "speedup": paired_ratio(times, "ours", "by hand"),
        "max_abs_diff": difference,
        "pipeline_fps": frames / median(speed["pipeline"]),
        "forward_fps": frames / median(speed["forward"]),
        "fps_ratio": median(speed["forward"]) / median(speed["pipeline"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=["clip", "siglip2"], choices=["clip", "siglip2"])
    parser.add_argument("--labels", type=int, default=400)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--vision-layers", type=int, default=12)
    parser.add_argument("--text-layers", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"load average {os.getloadavg()}, {torch.get_num_threads()} torch threads, "
        f"layers vision {args.vision_layers} / text {args.text_layers}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            start = time.perf_counter()
            rows.append(run_family(family, args, Path(tmp)))
            print(f"  {family}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(
        "| family | labels x videos | pipeline (warm) | by hand | speed-up (paired) | max abs diff "
        "| pipeline frames/s | forward frames/s | pipeline / forward |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['family']} | {r['labels']} x {r['videos']} ({r['frames']} frames) | {r['ours_s']:.2f} s "
            f"| {r['by_hand_s']:.2f} s | {r['speedup']:.2f}x | {r['max_abs_diff']:.1e} | {r['pipeline_fps']:.1f} "
            f"| {r['forward_fps']:.1f} | {100 * r['fps_ratio']:.0f} % |"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

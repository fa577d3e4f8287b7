"""Tiny random checkpoints of the image-text and video-text families (CLIP, MetaCLIP 2, SigLIP, SigLIP 2, VideoPrism),
built from transformers' config classes and saved with their own tokenizer (SigLIP's and VideoPrism's: sentencepiece
models trained here, offline) and image / video processor config; and the by-hand transformers recipe the tests
compare the pipeline with."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import torch
import transformers
from testing_utils import save_tokenizer

FAMILIES = ("clip", "metaclip_2", "siglip", "siglip2", "videoprism")
IMAGE_SIZE = 32
NUM_FRAMES = 4
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
_CORPUS = (
    "a photo of a dog playing guitar surfing eating spaghetti walking the dog juggling a video of a cat running "
    "jumping swimming cooking reading a red circle moving left a green square moving right a blue triangle growing "
    "someone dancing on a stage people riding bikes in the park a man painting a wall"
).split(" ")


@functools.cache
def train_sentencepiece(vocab_size: int = 120) -> bytes:
    """A tiny unigram sentencepiece model trained on a few sentences (offline)."""
    import sentencepiece as spm

    sentences = [" ".join(_CORPUS[i : i + 7]) for i in range(0, len(_CORPUS), 3)] * 4
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        minloglevel=2,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
    )
    return model.getvalue()


def _siglip2_tokenizer(out_dir: Path):
    """SigLIP 2's tokenizer class (Gemma's byte-fallback BPE, lower-casing, left padding) over a character vocabulary."""
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for char in sorted(set("".join(_CORPUS)) | {"\u2581"}):
        vocab.setdefault(char, len(vocab))
    tokenizer = transformers.Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=16)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def _sentencepiece_tokenizer(out_dir: Path, family: str):
    spm_path = out_dir / "spiece.model"
    spm_path.write_bytes(train_sentencepiece())
    if family == "videoprism":
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_file=str(spm_path))
        vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
        tokenizer = transformers.VideoPrismTokenizer(vocab=vocab, extra_ids=0, model_max_length=16)
    else:
        tokenizer = transformers.SiglipTokenizer(vocab_file=str(spm_path), model_max_length=16)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def family_config(family: str, vocab_size: int, patch_size: int = 16):
    if family in ("clip", "metaclip_2"):
        cls = transformers.CLIPConfig if family == "clip" else transformers.MetaClip2Config
        tokenizer_ids = dict(eos_token_id=vocab_size - 1, bos_token_id=vocab_size - 2, pad_token_id=vocab_size - 1)
        return cls(
            text_config=dict(TEXT, vocab_size=vocab_size, max_position_embeddings=77, **tokenizer_ids),
            vision_config=dict(VISION, image_size=IMAGE_SIZE, patch_size=16),
            projection_dim=24,
        )
    special = dict(pad_token_id=0, eos_token_id=1, bos_token_id=None)
    if family == "siglip":
        return transformers.SiglipConfig(
            text_config=dict(TEXT, vocab_size=vocab_size, max_position_embeddings=16, **special),
            vision_config=dict(VISION, image_size=IMAGE_SIZE, patch_size=patch_size),
        )
    if family == "siglip2":
        return transformers.Siglip2Config(
            text_config=dict(TEXT, vocab_size=vocab_size, max_position_embeddings=16, **special),
            vision_config=dict(VISION, patch_size=8, num_patches=16),
        )
    if family == "videoprism":
        return transformers.VideoPrismConfig(
            text_config=dict(TEXT, vocab_size=vocab_size, max_position_embeddings=16, **special),
            vision_config=dict(
                VISION,
                image_size=IMAGE_SIZE,
                tubelet_size=[1, 16, 16],
                num_frames=NUM_FRAMES,
                num_spatial_layers=1,
                num_temporal_layers=1,
                num_auxiliary_layers=1,
            ),
        )
    raise ValueError(family)


def _save_processor(out_dir: Path, family: str) -> None:
    mean_std = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    if family in ("clip", "metaclip_2"):
        processor = transformers.CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        )
    elif family == "siglip":
        processor = transformers.SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, **mean_std)
    elif family == "siglip2":
        processor = transformers.Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16, **mean_std)
    else:  # VideoPrism's video processor (LlavaOnevisionVideoProcessor needs torchvision: its options, as JSON)
        config = {
            "video_processor_type": "LlavaOnevisionVideoProcessor",
            "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            "resample": 3,
            "do_resize": True,
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": False,
            "do_sample_frames": False,
        }
        (out_dir / "video_preprocessor_config.json").write_text(json.dumps(config), encoding="utf-8")
        return
    processor.save_pretrained(str(out_dir))


def save_tiny_family_model(out_dir: Path, family: str, seed: int = 0, patch_size: int = 16) -> Path:
    """A checkpoint directory of `family`: random tiny model (its transformers class) + tokenizer + processor."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if family in ("clip", "metaclip_2"):
        tokenizer = save_tokenizer(out_dir)
    elif family == "siglip2":
        tokenizer = _siglip2_tokenizer(out_dir)
    else:
        tokenizer = _sentencepiece_tokenizer(out_dir, family)
    config = family_config(family, len(tokenizer), patch_size)
    torch.manual_seed(seed)
    model_class = {
        "clip": "CLIPModel",
        "metaclip_2": "MetaClip2Model",
        "siglip": "SiglipModel",
        "siglip2": "Siglip2Model",
        "videoprism": "VideoPrismClipModel",
    }[family]
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():  # a spread of logits (random init gives near-constant cosines)
        for name, param in model.named_parameters():
            if name.endswith("logit_scale"):
                param.fill_(2.0)
            elif name.endswith("logit_bias"):
                param.fill_(-1.0)
    model.config.video_text_num_frames = NUM_FRAMES
    model.save_pretrained(str(out_dir))
    _save_processor(out_dir, family)
    return out_dir


def batch_size(tensor: torch.Tensor) -> int:
    return tensor.shape[0]


def by_hand_scores(model_dir: Path, pixel_values: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Per-view scores computed with the transformers model itself, as its docs do: texts tokenized by its tokenizer
    (SigLIP: padded to the model length), frames through `get_image_features` then the mean over time (or
    `get_video_features`), the model's logit formula, softmax over labels (CLIP, VideoPrism) or sigmoid (SigLIP)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    family = config["model_type"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model_class = {
        "clip": "CLIPModel",
        "metaclip_2": "MetaClip2Model",
        "siglip": "SiglipModel",
        "siglip2": "Siglip2Model",
        "videoprism": "VideoPrismClipModel",
    }[family]
    model = getattr(transformers, model_class).from_pretrained(str(model_dir)).eval()
    padding = {"padding": "max_length", "max_length": 16} if family in ("siglip", "siglip2") else {"padding": True}
    tokens = tokenizer(texts, return_tensors="pt", truncation=True, **padding)
    with torch.no_grad():
        text = model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output
        if family == "videoprism":
            video = model.get_video_features(pixel_values_videos=pixel_values).pooler_output
            return (video.reshape(batch_size(video), -1) @ text.T).softmax(dim=-1)
        batch, frames = pixel_values.shape[:2]
        flat = pixel_values.flatten(0, 1)
        if family == "siglip2":
            from hf_xclip.modeling_video_text import unpack_siglip2_patches

            image = model.get_image_features(**unpack_siglip2_patches(flat)).pooler_output
        else:
            image = model.get_image_features(pixel_values=flat).pooler_output
        video = image.reshape(batch, frames, -1).mean(dim=1)
        video = video / video.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        logits = video @ text.T * model.logit_scale.exp()
        if family in ("siglip", "siglip2"):
            return torch.sigmoid(logits + model.logit_bias)
        return logits.softmax(dim=-1)

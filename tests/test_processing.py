"""`XClipProcessor`: tokenizer + video processor, save / load, the Hub's processor layouts, AutoProcessor."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoProcessor, CLIPTokenizer

from hf_xclip import XClipProcessor, XClipVideoProcessor

REFERENCE_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "reference" / "clip-tokenizer"
VIDEO = np.random.default_rng(0).integers(0, 256, (12, 40, 50, 3), dtype=np.uint8)
SPECIAL_TOKENS = {
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
}


def _write_tiny_bpe(folder: Path) -> Path:
    """A CLIP-style BPE vocabulary of letters plus two merged words ("cat", "dog")."""
    letters = list(string.ascii_lowercase)
    tokens = letters + [c + "</w>" for c in letters] + ["ca", "cat</w>", "do", "dog</w>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\n")
    return folder


def _write_hub_tokenizer_files(folder: Path) -> None:
    """The tokenizer files the Hub's X-CLIP repos carry next to vocab.json / merges.txt."""
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, **SPECIAL_TOKENS}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS))


@pytest.fixture()
def tokenizer_dir(tmp_path) -> Path:
    return _write_tiny_bpe(tmp_path / "tokenizer")


@pytest.fixture()
def processor(tokenizer_dir) -> XClipProcessor:
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    return XClipProcessor(video_processor=XClipVideoProcessor(crop_size=32, num_frames=4), tokenizer=tokenizer)


def test_text_and_videos(processor):
    out = processor(text=["a cat", "dog cat", "a"], videos=[VIDEO, VIDEO[::-1].copy()])
    assert set(out) == {"input_ids", "attention_mask", "pixel_values"}
    assert out["pixel_values"].shape == (2, 4, 3, 32, 32)
    assert isinstance(out["input_ids"], torch.Tensor) and out["input_ids"].shape == (3, 4)
    vocab = processor.tokenizer.get_vocab()
    sot, eot = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    assert out["input_ids"][1].tolist() == [sot, vocab["dog</w>"], vocab["cat</w>"], eot]
    assert out["attention_mask"][2].tolist() == [1, 1, 1, 0]
    expected = processor.video_processor([VIDEO, VIDEO[::-1].copy()])["pixel_values"]
    assert torch.equal(out["pixel_values"], expected)


def test_text_is_truncated_to_clip_context(processor):
    out = processor(text="a " * 200)
    assert out["input_ids"].shape == (1, 77)
    assert out["input_ids"][0, -1] == processor.tokenizer.get_vocab()["<|endoftext|>"]


def test_video_options_pass_through(processor):
    out = processor(text="a cat", videos=VIDEO, num_frames=2, num_clips=2, num_crops=3)
    assert out["pixel_values"].shape == (6, 2, 3, 32, 32) and out["num_views"] == 6
    out = processor(videos=VIDEO, videos_kwargs={"num_frames": 3})
    assert set(out) == {"pixel_values"} and out["pixel_values"].shape == (1, 3, 3, 32, 32)


def test_images_is_an_alias_of_videos(processor):
    assert torch.equal(processor(images=list(VIDEO))["pixel_values"], processor(videos=VIDEO)["pixel_values"])
    with pytest.raises(ValueError, match="not both"):
        processor(images=VIDEO, videos=VIDEO)
    with pytest.raises(ValueError, match="needs"):
        processor()


def test_return_numpy(processor):
    out = processor(text="a cat", videos=VIDEO, return_tensors="np")
    assert isinstance(out["pixel_values"], np.ndarray) and isinstance(out["input_ids"], np.ndarray)


def test_save_and_load_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "processor_config.json").read_text())
    assert saved["processor_class"] == "XClipProcessor"
    assert saved["video_processor"]["video_processor_type"] == "XClipVideoProcessor"
    saved_dir = tmp_path / "saved"
    for loaded in (XClipProcessor.from_pretrained(saved_dir), AutoProcessor.from_pretrained(saved_dir)):
        assert isinstance(loaded, XClipProcessor)
        assert loaded.to_dict() == processor.to_dict()
        assert loaded.video_processor.to_dict() == processor.video_processor.to_dict()
        a, b = loaded(text=["a cat"], videos=VIDEO), processor(text=["a cat"], videos=VIDEO)
        assert all(torch.equal(a[key], b[key]) for key in b)


def test_to_dict_is_the_same_before_and_after_saving(processor, tmp_path):
    """Saving writes `auto_map` (where the shipped code lives) into the files, not onto the objects."""
    before, video_before = processor.to_dict(), processor.video_processor.to_dict()
    processor.save_pretrained(tmp_path / "saved")
    assert processor.to_dict() == before and processor.video_processor.to_dict() == video_before
    saved = json.loads((tmp_path / "saved" / "processor_config.json").read_text())
    assert saved["auto_map"]["AutoProcessor"] == "processing_xclip.XClipProcessor"
    loaded = XClipProcessor.from_pretrained(tmp_path / "saved")
    loaded.save_pretrained(tmp_path / "again")
    assert loaded.to_dict() == before
    video_processor = XClipVideoProcessor(crop_size=32)
    video_before = video_processor.to_dict()
    video_processor.save_pretrained(tmp_path / "video")
    assert video_processor.to_dict() == video_before
    saved = json.loads((tmp_path / "video" / "video_preprocessor_config.json").read_text())
    assert saved["auto_map"]["AutoVideoProcessor"] == "video_processing_xclip.XClipVideoProcessor"


def test_auto_video_processor_loads_ours_without_remote_code(processor, tmp_path):
    """transformers' processors load their video processor with AutoVideoProcessor (also without torchvision)."""
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    processor.save_pretrained(tmp_path)
    loaded = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is XClipVideoProcessor and loaded.to_dict() == processor.video_processor.to_dict()


def test_explicit_call_arguments_default_to_none(processor):
    """transformers' rule for processors: explicit `__call__` arguments default to None; `clean_text=None` cleans."""
    import inspect

    for name, parameter in inspect.signature(XClipProcessor.__call__).parameters.items():
        assert parameter.default in (inspect.Parameter.empty, None), name
    messy = ["  Ａ  ＣＡＴ ", "Dog &amp;amp; Cat"]
    assert torch.equal(processor(text=messy)["input_ids"], processor(text=messy, clean_text=True)["input_ids"])


def test_hub_2022_layout(tokenizer_dir):
    """preprocessor_config.json of a VideoMAEFeatureExtractor + CLIP tokenizer files + config.json (xclip)."""
    folder = tokenizer_dir
    _write_hub_tokenizer_files(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_center_crop": True,
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "VideoMAEFeatureExtractor",
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "processor_class": "XCLIPProcessor",
                "resample": 2,
                "size": 224,
            }
        )
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "xclip", "vision_config": {"num_frames": 16}}))
    processor = XClipProcessor.from_pretrained(folder)
    assert processor.video_processor.num_frames == 16
    assert processor.video_processor.crop_size == {"height": 224, "width": 224}
    assert processor.video_processor.resize_short_side() == 256
    out = processor(text=["a cat"], videos=VIDEO)
    assert out["pixel_values"].shape == (1, 16, 3, 224, 224)
    assert out["input_ids"][0, 2] == processor.tokenizer.get_vocab()["cat</w>"]


def test_transformers_v5_layout(tokenizer_dir):
    """processor_config.json nesting transformers' image processor (XCLIPProcessor in transformers 5)."""
    folder = tokenizer_dir
    _write_hub_tokenizer_files(folder)
    image_processor = {
        "image_processor_type": "VideoMAEImageProcessor",
        "size": {"shortest_edge": 32},
        "crop_size": {"height": 32, "width": 32},
        "do_center_crop": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 2,
    }
    (folder / "processor_config.json").write_text(
        json.dumps({"image_processor": image_processor, "processor_class": "XCLIPProcessor"})
    )
    processor = XClipProcessor.from_pretrained(folder)
    assert processor.video_processor.crop_size == {"height": 32, "width": 32}
    assert processor.video_processor.resize_short_side() == int(256 / 224 * 32)
    assert processor(videos=VIDEO)["pixel_values"].shape == (1, 8, 3, 32, 32)


def test_tokenizer_folder_with_only_vocab_and_merges(tokenizer_dir):
    XClipVideoProcessor(crop_size=32).save_pretrained(tokenizer_dir)
    processor = XClipProcessor.from_pretrained(tokenizer_dir)
    assert isinstance(processor.tokenizer, CLIPTokenizer)
    assert processor(text="dog")["input_ids"].shape == (1, 3)


def test_foreign_video_processor_object_is_converted(tokenizer_dir):
    class VideoMAELike:
        def to_dict(self):
            return {"image_processor_type": "VideoMAEImageProcessor", "size": {"shortest_edge": 64}, "crop_size": 64}

    processor = XClipProcessor(VideoMAELike(), CLIPTokenizer.from_pretrained(tokenizer_dir))
    assert isinstance(processor.video_processor, XClipVideoProcessor)
    assert processor(videos=VIDEO)["pixel_values"].shape == (1, 8, 3, 64, 64)
    with pytest.raises(TypeError, match="video_processor"):
        XClipProcessor(object(), CLIPTokenizer.from_pretrained(tokenizer_dir))


def test_reference_clip_tokenizer():
    if not (REFERENCE_TOKENIZER / "vocab.json").exists():
        pytest.skip(f"CLIP tokenizer files not found in {REFERENCE_TOKENIZER}")
    tokenizer = CLIPTokenizer.from_pretrained(REFERENCE_TOKENIZER)
    processor = XClipProcessor(XClipVideoProcessor(crop_size=32), tokenizer)
    out = processor(text=["playing sports", "eating spaghetti", "go shopping"])
    vocab = json.loads((REFERENCE_TOKENIZER / "vocab.json").read_text())
    assert out["input_ids"][0, 0] == 49406 == vocab["<|startoftext|>"]
    assert out["input_ids"][1].tolist()[:3] == [49406, vocab["eating</w>"], vocab["spaghetti</w>"]]
    assert (out["input_ids"] == 49407).any(dim=1).all()  # every text ends with EOT (= the largest id)


def test_texts_are_cleaned_like_the_original(processor):
    """Full-width letters, HTML entities, case and whitespace runs: the original's ftfy + html cleaning."""
    plain = processor(text=["a cat", "dog & cat"])["input_ids"]
    messy = processor(text=["  Ａ  ＣＡＴ ", "Dog &amp;amp; Cat"])["input_ids"]
    assert torch.equal(messy, plain)
    raw = processor(text=["  Ａ  ＣＡＴ ", "Dog &amp;amp; Cat"], clean_text=False)["input_ids"]
    assert raw.shape != plain.shape or not torch.equal(raw, plain)


def test_clean_text_names_non_string_labels():
    from hf_xclip.processing_xclip import clean_text

    with pytest.raises(TypeError, match="strings.*3"):
        clean_text(3)


# ------------------------------------------------------------------------------------------------ every layout
# Each layout a user meets, built on disk next to one tiny transformers X-CLIP model (model_type `xclip`): the
# processor loads from it, and `pipeline(..., model=DIR)` runs on it with the crop size the files say.
LAYOUT_CROP = {"hub_2022": 32, "transformers_4": 32, "transformers_5": 32, "ours": 32}


def _layout_hub_2022(folder: Path, tokenizer) -> None:
    """microsoft/xclip-* on the Hub: a VideoMAEFeatureExtractor preprocessor_config.json, vocab.json + merges.txt."""
    source = Path(tokenizer.name_or_path)
    for name in ("vocab.json", "merges.txt"):
        (folder / name).write_bytes((source / name).read_bytes())
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_extractor_type": "VideoMAEFeatureExtractor",
                "processor_class": "XCLIPProcessor",
                "do_center_crop": True,
                "do_normalize": True,
                "do_resize": True,
                "resample": 2,
                "size": 32,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
            }
        )
    )


def _layout_transformers_4(folder: Path, tokenizer) -> None:
    """transformers 4.x `XCLIPProcessor.save_pretrained`: the image processor's own preprocessor_config.json
    (``image_processor_type``), the tokenizer files, no processor_config.json."""
    tokenizer.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "VideoMAEImageProcessor",
                "processor_class": "XCLIPProcessor",
                "do_center_crop": True,
                "crop_size": {"height": 32, "width": 32},
                "size": {"shortest_edge": 32},
                "do_normalize": True,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_resize": True,
                "resample": 2,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
            }
        )
    )


def _layout_transformers_5(folder: Path, tokenizer) -> None:
    """transformers 5.x `XCLIPProcessor.save_pretrained`, run for real: one processor_config.json nesting the image
    processor, next to the tokenizer files."""
    image_processor = transformers.VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    transformers.XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))


def _layout_ours(folder: Path, tokenizer) -> None:
    XClipProcessor(XClipVideoProcessor(crop_size=32, num_frames=4), tokenizer).save_pretrained(str(folder))


LAYOUTS = {
    "hub_2022": _layout_hub_2022,
    "transformers_4": _layout_transformers_4,
    "transformers_5": _layout_transformers_5,
    "ours": _layout_ours,
}


@pytest.fixture(scope="module")
def tiny_transformers_model(tmp_path_factory):
    from testing_utils import save_tiny_transformers_xclip

    folder, model = save_tiny_transformers_xclip(tmp_path_factory.mktemp("layouts") / "model")
    return folder, CLIPTokenizer.from_pretrained(str(folder))


def _build_layout(name: str, source: Path, tokenizer, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for file in source.iterdir():  # the model's weights and config only
        if file.name == "config.json" or file.suffix == ".safetensors":
            (folder / file.name).write_bytes(file.read_bytes())
    LAYOUTS[name](folder, tokenizer)
    return folder


def test_transformers_own_save_pretrained_output_loads(tokenizer_dir, tmp_path):
    """The issue's case: transformers 5.25's `XCLIPProcessor.save_pretrained` (one processor_config.json holding
    the image processor, next to tokenizer.json) loads in `XClipProcessor.from_pretrained`."""
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    image_processor = transformers.VideoMAEImageProcessor(
        size={"shortest_edge": 48}, crop_size=48, image_mean=[0.5] * 3
    )
    transformers.XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp_path)
    assert "image_processor" in json.loads((tmp_path / "processor_config.json").read_text())
    processor = XClipProcessor.from_pretrained(tmp_path)
    assert processor.video_processor.crop_size == {"height": 48, "width": 48}
    assert processor.video_processor.image_mean == [0.5, 0.5, 0.5]
    assert processor.tokenizer.get_vocab() == tokenizer.get_vocab()
    out = processor(text=["a cat"], videos=VIDEO)
    assert out["pixel_values"].shape == (1, 8, 3, 48, 48)
    assert out["input_ids"].tolist() == tokenizer(["a cat"])["input_ids"]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_pipeline_runs_on_every_layout(layout, tiny_transformers_model, tmp_path):
    from transformers import pipeline

    import hf_xclip  # noqa: F401  (registers the task)

    source, tokenizer = tiny_transformers_model
    folder = _build_layout(layout, source, tokenizer, tmp_path / layout)
    processor = XClipProcessor.from_pretrained(folder)
    assert processor.video_processor.crop_size == {"height": LAYOUT_CROP[layout], "width": LAYOUT_CROP[layout]}
    assert processor.video_processor.num_frames == 4  # ours: saved; the others: from the model's config.json
    classifier = pipeline("zero-shot-video-classification", model=str(folder))
    labels = ["a cat", "a dog", "cat dog"]
    result = classifier(VIDEO, candidate_labels=labels)
    assert sorted(item["label"] for item in result) == sorted(labels)
    assert sum(item["score"] for item in result) == pytest.approx(1.0, abs=1e-5)
    # the same scores as the model's forward on this layout's processor output
    inputs = processor(text=labels, videos=VIDEO)
    with torch.no_grad():
        expected = classifier.model(**inputs).logits_per_video.softmax(-1)[0]
    got = {item["label"]: item["score"] for item in result}
    assert torch.allclose(torch.tensor([got[label] for label in labels]), expected, atol=1e-5)


@pytest.mark.slow  # a pytest subprocess
def test_transformers_harness_module_skips_cleanly_without_the_harness(tmp_path):
    """Where transformers' tests/ cannot be found, tests/test_transformers_harness.py skips, saying where it looked
    and how to get it (it is fetched by .ci/run, never committed)."""
    import os
    import subprocess
    import sys

    module = Path(__file__).with_name("test_transformers_harness.py")
    env = {**os.environ, "HF_XCLIP_TRANSFORMERS_TESTS": str(tmp_path / "nowhere"), "COLUMNS": "400"}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(module)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode in (0, 5), out.stdout + out.stderr  # 5: nothing left to run after the module skip
    assert "1 skipped" in out.stdout and "transformers' test harness not found" in out.stdout
    assert "HF_XCLIP_TRANSFORMERS_TESTS" in out.stdout

"""ONNX export and onnxruntime inference: the exported graphs reproduce the torch model (float32 within 1e-4 in
the logits, any batch, frame count, label count and text length), int8 graphs stay close and agree on the
predictions, the directory describes itself (manifest, config, processor), and bad input fails clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnx")

from testing_utils import save_tiny_transformers_xclip  # noqa: E402

import hf_xclip  # noqa: E402
from hf_xclip import XClipModel, XClipProcessor  # noqa: E402
from hf_xclip.cli import main as cli_main  # noqa: E402
from hf_xclip.export.onnx_export import export_onnx, quantize_onnx_dir  # noqa: E402
from hf_xclip.fingerprint import model_fingerprint  # noqa: E402
from hf_xclip.modeling_ort import MANIFEST_NAME, XClipOrtModel, read_manifest  # noqa: E402

pytestmark = pytest.mark.slow

LOGIT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def torch_model() -> XClipModel:
    return XClipModel.from_pretrained(hf_xclip.default_model_path()).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The embedded default model exported by the CLI, with int8 graphs (the directory's default)."""
    out = tmp_path_factory.mktemp("onnx") / "default-onnx"
    assert cli_main(["export", "--output", str(out), "--quantize", "int8"]) == 0
    return out


@pytest.fixture(scope="module")
def ort_fp32(exported) -> XClipOrtModel:
    return XClipOrtModel.from_pretrained(exported, quantize="none")


@pytest.fixture(scope="module")
def ort_int8(exported) -> XClipOrtModel:
    return XClipOrtModel.from_pretrained(exported)


def _texts(model: XClipModel, count: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids (EOS at a random position, padding after it) and their attention mask."""
    text = model.config.text_config
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, text.eos_token_id, (count, length), generator=generator)
    ends = torch.randint(1, length, (count,), generator=generator)
    mask = (torch.arange(length)[None, :] <= ends[:, None]).long()
    ids[torch.arange(count), ends] = text.eos_token_id
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, text.pad_token_id))
    return ids, mask


def _videos(model: XClipModel, batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    size = model.config.vision_config.image_size
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------- float32 parity
@pytest.mark.parametrize(
    "batch,frames,labels,length", [(1, 4, 1, 5), (3, 4, 7, 16), (2, 8, 3, 9), (2, 1, 5, 2), (1, 13, 2, 4)]
)
@torch.no_grad()
def test_fp32_matches_torch_for_any_batch_frames_labels_length(torch_model, ort_fp32, batch, frames, labels, length):
    ids, mask = _texts(torch_model, labels, length, seed=batch + frames)
    pixels = _videos(torch_model, batch, frames, seed=labels)
    expected = torch_model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
    actual = ort_fp32(input_ids=ids, attention_mask=mask, pixel_values=pixels)
    assert actual.logits_per_video.shape == (batch, labels)
    torch.testing.assert_close(actual.logits_per_video, expected.logits_per_video, atol=LOGIT_TOLERANCE, rtol=0)
    torch.testing.assert_close(actual.text_embeds, expected.text_embeds, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual.video_embeds, expected.video_embeds, atol=1e-5, rtol=0)


@torch.no_grad()
def test_fp32_feature_methods_match_torch(torch_model, ort_fp32):
    ids, mask = _texts(torch_model, 6, 10)
    pixels = _videos(torch_model, 2, 4)
    torch.testing.assert_close(
        ort_fp32.get_text_features(input_ids=ids, attention_mask=mask).pooler_output,
        torch_model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output,
        atol=1e-5,
        rtol=0,
    )
    ours = ort_fp32.get_video_features(pixels, output_prompt_features=True)
    ref = torch_model.get_video_features(pixels, output_prompt_features=True)
    torch.testing.assert_close(ours.pooler_output, ref.pooler_output, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.prompt_features, ref.prompt_features, atol=1e-5, rtol=0)
    assert ort_fp32.get_video_features(pixels).prompt_features is None
    text = torch_model.get_text_features(input_ids=ids).pooler_output
    logits, prompted = ort_fp32.get_logits(ref.pooler_output, text, ref.prompt_features)
    ref_logits, ref_prompted = torch_model.get_logits(ref.pooler_output, text, ref.prompt_features)
    torch.testing.assert_close(logits, ref_logits, atol=LOGIT_TOLERANCE, rtol=0)
    torch.testing.assert_close(prompted, ref_prompted, atol=1e-5, rtol=0)


def test_model_protocol(ort_fp32, torch_model):
    assert ort_fp32.dtype == torch.float32 and ort_fp32.device == torch.device("cpu")
    assert ort_fp32.eval() is ort_fp32 and ort_fp32.to("cpu") is ort_fp32
    assert ort_fp32.config.to_dict()["vision_config"] == torch_model.config.to_dict()["vision_config"]
    assert ort_fp32.quantization is None and "CPUExecutionProvider" in ort_fp32.providers
    with pytest.raises(ValueError, match="float32"):
        ort_fp32.to(torch.bfloat16)


# --------------------------------------------------------------------------------------------------------- int8
@torch.no_grad()
def test_int8_is_the_default_and_agrees_with_fp32_on_synthetic_clips(torch_model, ort_int8, exported):
    from hf_xclip.data.synthetic import SyntheticVideoDataset, all_specs
    from hf_xclip.embedded_model.training import frames_to_pixel_values

    assert ort_int8.quantization == "int8"
    assert read_manifest(exported)["default_quantization"] == "int8"
    processor = XClipProcessor.from_pretrained(exported)
    specs = all_specs()
    tokens = processor.tokenizer([spec.caption for spec in specs], padding=True, return_tensors="pt")
    data = SyntheticVideoDataset(specs=specs, num_videos=48, seed=7, num_frames=4, size=32)
    pixels = frames_to_pixel_values(np.stack([data.frames(i) for i in range(len(data))]), processor.video_processor)
    reference = torch_model(**tokens, pixel_values=pixels).logits_per_video
    quantized = ort_int8(**tokens, pixel_values=pixels).logits_per_video
    agreement = (reference.argmax(-1) == quantized.argmax(-1)).float().mean().item()
    prob_diff = (reference.softmax(-1) - quantized.softmax(-1)).abs().max().item()
    assert agreement >= 0.95, f"int8 top-1 agrees with fp32 on {agreement:.0%} of 48 clips"
    assert prob_diff < 0.1
    assert not torch.equal(reference, quantized)  # the int8 graphs are really different graphs


@torch.no_grad()
def test_load_time_quantization_equals_export_time_quantization(tmp_path, exported, ort_int8):
    fp32_only = tmp_path / "fp32"
    fp32_only.mkdir()
    for path in exported.iterdir():
        if ".int8." not in path.name:
            shutil.copy(path, fp32_only / path.name)
    manifest = read_manifest(exported)
    for graph in manifest["graphs"].values():  # what an export without --quantize writes
        graph.pop("quantized", None)
    manifest.update(default_quantization=None, quantization={})
    (fp32_only / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert XClipOrtModel.from_pretrained(fp32_only).quantization is None
    at_load = XClipOrtModel.from_pretrained(fp32_only, quantize="int8")
    assert sorted(p.name for p in fp32_only.glob("*.onnx")) == [
        "scorer.onnx",
        "text_encoder.onnx",
        "video_encoder.onnx",
    ]
    pixels = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ids = torch.tensor([[28, 3, 4, 29], [28, 5, 29, 29]])
    torch.testing.assert_close(
        at_load(input_ids=ids, pixel_values=pixels).logits_per_video,
        ort_int8(input_ids=ids, pixel_values=pixels).logits_per_video,
        atol=0,
        rtol=0,
    )
    quantize_onnx_dir(fp32_only)  # stored afterwards, the same graphs again
    stored = XClipOrtModel.from_pretrained(fp32_only)
    assert stored.quantization == "int8" and (fp32_only / "video_encoder.int8.onnx").is_file()
    torch.testing.assert_close(
        stored(input_ids=ids, pixel_values=pixels).logits_per_video,
        ort_int8(input_ids=ids, pixel_values=pixels).logits_per_video,
        atol=0,
        rtol=0,
    )


# ------------------------------------------------------------------------------------------------ the directory
def test_directory_describes_itself(exported, torch_model):
    names = {path.name for path in exported.iterdir()}
    graphs = {"text_encoder.onnx", "video_encoder.onnx", "scorer.onnx", "video_encoder.int8.onnx"}
    assert graphs | {"config.json", MANIFEST_NAME, "processor_config.json", "tokenizer.json"} <= names
    assert not any(name.endswith(".py") for name in names)  # read by the installed hf_xclip, not as remote code
    manifest = read_manifest(exported)
    assert manifest["opset"] == 18 and manifest["processor"] is True
    assert manifest["source"]["fingerprint"]["all"] == model_fingerprint(torch_model)
    assert manifest["graphs"]["video_encoder"]["inputs"]["pixel_values"] == ["batch", "frames", 3, 32, 32]
    int8 = manifest["quantization"]["int8"]["graphs"]
    assert list(int8) == ["video_encoder"] and int8["video_encoder"]["quantized_layers"] == 12  # 2 blocks x 6 linear
    assert manifest["verification"]["float32"]["logits_per_video"] < LOGIT_TOLERANCE
    assert json.loads((exported / "config.json").read_text())["model_type"] == "hf_xclip"
    shipped = XClipProcessor.from_pretrained(hf_xclip.default_model_path())
    assert XClipProcessor.from_pretrained(exported).tokenizer("a red circle") == shipped.tokenizer("a red circle")


def test_transformers_layout_checkpoint_exports_with_its_processor(tmp_path):
    """A transformers X-CLIP directory (VideoMAE preprocessor config) exports; graphs match transformers' model."""
    source, reference = save_tiny_transformers_xclip(tmp_path / "hf")
    model = XClipModel.from_pretrained(source)
    result = export_onnx(model, tmp_path / "onnx")
    assert result.max_abs_diff["float32"]["logits_per_video"] < LOGIT_TOLERANCE
    ort_model = XClipOrtModel.from_pretrained(tmp_path / "onnx")
    processor = XClipProcessor.from_pretrained(tmp_path / "onnx")
    inputs = processor(
        text=["a cat", "playing guitar", "x"],
        videos=np.zeros((4, 40, 48, 3), np.uint8),
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        expected = reference(**inputs).logits_per_video
    torch.testing.assert_close(ort_model(**inputs).logits_per_video, expected, atol=LOGIT_TOLERANCE, rtol=0)


# ----------------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_fail_clearly(ort_fp32):
    with pytest.raises(ValueError, match=r"\(batch_size, num_frames"):
        ort_fp32.get_video_features(torch.zeros(4, 3, 32, 32))
    with pytest.raises(ValueError, match="32x32"):
        ort_fp32.get_video_features(torch.zeros(1, 4, 3, 64, 64))
    with pytest.raises(ValueError, match="at most 16"):
        ort_fp32.get_text_features(input_ids=torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        ort_fp32.get_text_features(input_ids=torch.tensor([[28, 300, 29]]))
    with pytest.raises(ValueError, match="inputs_embeds"):
        ort_fp32.get_text_features(inputs_embeds=torch.zeros(1, 3, 64))
    with pytest.raises(ValueError, match="prompt_features"):
        ort_fp32.get_logits(torch.zeros(1, 64), torch.zeros(2, 64))
    with pytest.raises(ValueError, match="inference"):
        ort_fp32(
            input_ids=torch.tensor([[28, 29]]), pixel_values=torch.zeros(1, 4, 3, 32, 32), labels=torch.tensor([0])
        )


def test_loading_errors(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match=MANIFEST_NAME):
        XClipOrtModel.from_pretrained(hf_xclip.default_model_path())
    with pytest.raises(ValueError, match="quantize"):
        XClipOrtModel.from_pretrained(exported, quantize="int4")
    with pytest.raises(ValueError, match="float32"):
        XClipOrtModel.from_pretrained(exported, dtype=torch.float16)
    with pytest.raises(TypeError, match="unexpected"):
        XClipOrtModel.from_pretrained(exported, num_beams=3)
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "video_encoder.int8.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="video_encoder.int8.onnx"):
        XClipOrtModel.from_pretrained(broken)


def test_cli_refuses_bad_output_and_onnx_input(tmp_path, exported, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file.txt").write_text("x")
    assert cli_main(["export", "--output", str(taken)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli_main(["export", "--model", str(exported), "--output", str(tmp_path / "again")]) == 2
    assert "already an ONNX export" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_missing_onnxruntime_is_a_clear_error(monkeypatch, exported, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"hf_xclip\[onnx\]"):
        XClipOrtModel.from_pretrained(exported)
    with pytest.raises(ImportError, match=r"hf_xclip\[onnx\]"):
        export_onnx(XClipModel.from_pretrained(hf_xclip.default_model_path()), tmp_path / "never-written")
    assert not (tmp_path / "never-written").exists()


# ------------------------------------------------------------------------------------- pipeline and classify CLI
@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    from hf_xclip.data.synthetic import SyntheticVideoDataset, all_specs

    data = SyntheticVideoDataset(specs=all_specs()[:24], num_videos=4, seed=3, num_frames=12, size=48)
    return [data.frames(i) for i in range(len(data))]


def test_pipeline_loads_the_export(exported, clip_frames):
    from transformers import pipeline

    from hf_xclip.data.synthetic import all_specs

    labels = [spec.caption for spec in all_specs()[:24]]
    reference = pipeline("zero-shot-video-classification", model=hf_xclip.default_model_path())
    fp32 = pipeline("zero-shot-video-classification", model=str(exported), model_kwargs={"quantize": "none"})
    int8 = pipeline("zero-shot-video-classification", model=str(exported))
    assert isinstance(fp32.model, XClipOrtModel) and fp32.model.quantization is None
    assert int8.model.quantization == "int8"
    expected = reference(clip_frames, candidate_labels=labels)
    for ours, theirs in zip(fp32(clip_frames, candidate_labels=labels), expected):
        assert [r["label"] for r in ours] == [r["label"] for r in theirs]
        np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=5e-6)
    for ours, theirs in zip(int8(clip_frames, candidate_labels=labels), expected):
        assert ours[0]["label"] == theirs[0]["label"]
        assert abs(ours[0]["score"] - theirs[0]["score"]) < 0.05
    # label embeddings of the float32 text graph are the torch model's: a label bank made by one fits the other
    from hf_xclip.labels import LabelEncoder

    fingerprints = [LabelEncoder(p.model, p.tokenizer).fingerprint() for p in (int8, fp32, reference)]
    assert len(set(fingerprints)) == 1


def test_classify_cli_on_the_export_matches_torch_to_four_decimals(tmp_path, exported, clip_frames, capsys):
    from hf_xclip.data import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    for index, frames in enumerate(clip_frames):
        write_video(folder / f"clip_{index}.mp4", frames, fps=8, crf=18)
    labels = "a red circle moving left,a green circle moving up,a blue square growing,a white star rotating"
    runs = {}
    for name, options in {"torch": [], "onnx": ["--model", str(exported), "--quantize", "none"]}.items():
        out = tmp_path / f"{name}.json"
        code = cli_main(
            ["classify", str(folder), "--labels", labels, "--top-k", "0", "--json", str(out), "--no-progress", *options]
        )
        assert code == 0, capsys.readouterr().err
        runs[name] = json.loads(out.read_text())
    rounded = {
        name: [[(p["label"], round(p["score"], 4)) for p in item["predictions"]] for item in run]
        for name, run in runs.items()
    }
    assert len(rounded["onnx"]) == len(clip_frames)
    assert rounded["onnx"] == rounded["torch"]
    assert cli_main(["classify", str(folder), "--labels", labels, "--quantize", "int8", "--no-progress"]) == 2
    assert "applies to ONNX exports" in capsys.readouterr().err

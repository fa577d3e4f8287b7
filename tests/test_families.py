"""Every video-text family behind one interface: the pipeline's scores equal the transformers model's own recipe
computed by hand (frames through `get_image_features` then the mean, or `get_video_features`; the model's logit
formula), the loader picks the family from config.json, and a model without a text side gets one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from testing_families import (
    FAMILIES,
    NUM_FRAMES,
    by_hand_scores,
    save_tiny_family_model,
)
from testing_utils import save_tiny_xclip, synthetic_frames
from transformers import pipeline

import hf_xclip  # noqa: F401  (registers the task)
from hf_xclip.loading import load_model
from hf_xclip.modeling_video_text import UnsupportedModelError
from hf_xclip.pipeline_zero_shot_video_classification import TASK

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["playing guitar", "surfing", "a dog", "juggling"]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: save_tiny_family_model(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def videos():
    return [synthetic_frames(kind, num_frames=12) for kind in range(2)]


@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_scores_equal_the_transformers_recipe(family, family_dirs, videos):
    clf = pipeline(TASK, model=str(family_dirs[family]))
    assert clf.model.capabilities.family == family
    results = clf(videos, candidate_labels=LABELS, hypothesis_template="{}", batch_size=2)
    for video, result in zip(videos, results):
        pixel_values = clf.video_processor(video, num_frames=NUM_FRAMES)["pixel_values"]
        expected = by_hand_scores(family_dirs[family], pixel_values, LABELS)[0]
        got = torch.tensor([{r["label"]: r["score"] for r in result}[label] for label in LABELS])
        assert (got - expected).abs().max() <= 1e-5
        assert got.std() > 1e-3  # the labels are told apart (not a degenerate constant)
    if family in ("siglip", "siglip2"):  # independent sigmoids, as transformers' zero-shot image pipeline gives
        assert sum(r["score"] for r in results[0]) != pytest.approx(1.0, abs=1e-3)
    else:
        assert sum(r["score"] for r in results[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("family", ["siglip", "siglip2"])
def test_siglip_multi_label_auto_is_the_models_own_sigmoid(family, family_dirs, videos):
    clf = pipeline(TASK, model=str(family_dirs[family]))
    single = {r["label"]: r["score"] for r in clf(videos[0], candidate_labels=LABELS, hypothesis_template="{}")}
    multi = {
        r["label"]: r["score"]
        for r in clf(videos[0], candidate_labels=LABELS, hypothesis_template="{}", multi_label=True)
    }
    alone = clf(videos[0], candidate_labels=LABELS[:1], hypothesis_template="{}", multi_label=True)[0]
    for label in LABELS:
        assert multi[label] == pytest.approx(single[label], abs=1e-6)
    assert alone["score"] == pytest.approx(multi[LABELS[0]], abs=1e-6)  # other labels do not matter


def test_clip_multi_label_auto_is_the_training_free_method(family_dirs, videos):
    clf = pipeline(TASK, model=str(family_dirs["clip"]))
    auto = clf(videos[0], candidate_labels=LABELS, multi_label=True)
    background = clf(videos[0], candidate_labels=LABELS, multi_label=True, multi_label_method="background")
    assert auto == background


def test_frame_pooling_is_a_config_option(family_dirs, videos):
    model = load_model(family_dirs["clip"], video_text_pooling="max")
    assert model.config.video_text_pooling == "max"
    pixel_values = torch.randn(2, NUM_FRAMES, 3, 32, 32)
    with torch.no_grad():
        out = model.encode_videos(pixel_values)
        assert torch.equal(out.pooler_output, out.frame_embeds.amax(dim=1))
    with pytest.raises(ValueError, match="video_text_pooling"):
        load_model(family_dirs["clip"], video_text_pooling="median")


def test_xclip_implements_the_interface(tmp_path):
    model = load_model(save_tiny_xclip(tmp_path / "xclip"))
    assert model.capabilities.family == "xclip" and model.capabilities.video_conditioned_prompts
    input_ids = torch.randint(0, 100, (3, 6))
    pixel_values = torch.randn(2, model.num_frames, 3, 32, 32)
    with torch.no_grad():
        text = model.encode_texts(input_ids)
        video = model.encode_videos(pixel_values)
        expected = model.get_logits(video.pooler_output, text, video.prompt_features)[0]
        assert torch.equal(model.score(video, text), expected)


@pytest.mark.parametrize("model_type", ["videomae", "bert"])
def test_models_without_a_text_side_get_one_clear_error(tmp_path, model_type, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    with pytest.raises(UnsupportedModelError, match="Supported families.*siglip2.*videoprism"):
        load_model(tmp_path)
    assert run_cli("classify", "--model", tmp_path, "--labels", "a,b", "x.mp4") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and model_type in err and "Traceback" not in err


@pytest.mark.slow
def test_classify_command_runs_every_family(family_dirs, tmp_path):
    from hf_xclip.data import write_video

    video = write_video(tmp_path / "clip.mp4", synthetic_frames(0, num_frames=12), fps=8, crf=18)
    for family in ("siglip2", "videoprism"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hf_xclip.cli",
                "classify",
                "--model",
                str(family_dirs[family]),
                "--labels",
                ",".join(LABELS),
                str(video),
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert all(label in result.stdout for label in LABELS)


# -- every tool x every family (in process, through the command line) ---------------------------------------------


@pytest.fixture(scope="module")
def video_files(tmp_path_factory) -> Path:
    from testing_utils import write_synthetic_videos

    root = tmp_path_factory.mktemp("family_videos")
    paths = write_synthetic_videos(root / "videos", count=2, num_frames=24)
    for name, path in zip(("a", "b"), paths):
        (root / "folder" / name).mkdir(parents=True)
        (root / "folder" / name / path.name).write_bytes(path.read_bytes())
    return root


def run_cli(*argv: str) -> int:
    from hf_xclip.cli import main

    return main([str(arg) for arg in argv])


@pytest.mark.parametrize("family", [pytest.param(f, marks=() if f == "siglip" else pytest.mark.slow) for f in FAMILIES])
def test_every_tool_runs_every_family(family, family_dirs, video_files, tmp_path, capsys):
    model, videos = family_dirs[family], video_files / "videos"
    assert (
        run_cli(
            "timeline",
            "--model",
            model,
            "--labels",
            "a dog,surfing",
            "--window",
            "1",
            "--stride",
            "1",
            "--json",
            tmp_path / "timeline.json",
            videos / "video_0.mp4",
        )
        == 0
    )
    assert json.loads((tmp_path / "timeline.json").read_text())
    assert run_cli("index", "--model", model, "--output", tmp_path / "index", videos, "--no-progress") == 0
    assert run_cli("search", tmp_path / "index", "a dog", "--json") == 0
    hits = json.loads(_last_json(capsys, tmp_path))
    assert len(hits) == 2
    assert run_cli("evaluate", "--model", model, "--data-dir", video_files / "folder", "--no-progress", "--json") == 0
    assert (
        run_cli("labels", "encode", "--model", model, "--labels", "a dog,surfing", "--output", tmp_path / "bank") == 0
    )
    assert run_cli("classify", "--model", model, "--label-bank", tmp_path / "bank", videos / "video_0.mp4") == 0
    other = family_dirs["clip" if family != "clip" else "siglip"]
    capsys.readouterr()
    assert run_cli("classify", "--model", other, "--label-bank", tmp_path / "bank", videos / "video_0.mp4") == 2
    assert f"made by a {family} model" in capsys.readouterr().err


def _last_json(capsys, tmp_path) -> str:
    out = capsys.readouterr().out
    start = out.index("[")
    return out[start:]


@pytest.mark.parametrize("command", ["finetune", "export"])
def test_unsupported_tools_refuse_other_families_by_name(command, family_dirs, video_files, tmp_path, capsys):
    model = family_dirs["siglip"]
    argv = {
        "finetune": [
            "finetune",
            "--model",
            model,
            "--train-dir",
            video_files / "folder",
            "--output-dir",
            tmp_path / "out",
            "--method",
            "coop",
        ],
        "export": ["export", "--model", model, "--output", tmp_path / "out"],
    }[command]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "siglip model" in err and "docs/models.md" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# -- fine-tuning (ViFi-CLIP's recipe: frame pooling, the image tower adapted on video) ----------------------------


def _clips(processor, count: int, seed: int):
    from testing_utils import few_shot_specs

    from hf_xclip.data.synthetic import render_video

    pixels, targets = [], []
    for index, spec in enumerate(few_shot_specs()):
        for i in range(count):
            video = render_video(spec, num_frames=8, size=32, seed=seed + 100 * index + i, background="plain")
            pixels.append(processor.video_processor(video, num_frames=NUM_FRAMES)["pixel_values"][0])
            targets.append(index)
    return torch.stack(pixels), torch.tensor(targets)


def test_siglip_lora_few_shot_goes_from_chance_to_090(family_dirs, tmp_path):
    """A random-weight SigLIP, 4 clips per class of the three synthetic classes of the fine-tuning tests (plain
    background, 32 px, 4 of 8 frames), LoRA rank 8 on the image tower's q/v projections, 40 epochs, AdamW lr 5e-3,
    batch 4, the SigLIP sigmoid loss; held out: 8 other clips per class."""
    import transformers
    from testing_utils import few_shot_specs

    from hf_xclip.finetuning.frame_pooling import (
        FramePoolingTrainingArguments,
        save_frame_pooling_model,
        train_frame_pooling,
    )
    from hf_xclip.labels import LabelEncoder
    from hf_xclip.loading import load_family_model

    model, processor = load_family_model(family_dirs["siglip"])
    names = [spec.caption for spec in few_shot_specs()]
    train_x, train_y = _clips(processor, 4, seed=0)
    test_x, test_y = _clips(processor, 8, seed=5000)

    def accuracy(m) -> float:
        with torch.no_grad():
            text = LabelEncoder(m, processor.tokenizer).encode_labels(names, ("{}",))
            return float((m.score(m.encode_videos(test_x), text).argmax(-1) == test_y).float().mean())

    before = accuracy(model)
    result = train_frame_pooling(model, processor.tokenizer, train_x, train_y, names, FramePoolingTrainingArguments())
    after = accuracy(model)
    print(
        f"held-out top-1 {before:.3f} -> {after:.3f}; losses {result.epoch_losses[0]:.3f} -> {result.epoch_losses[-1]:.3f}"
    )
    assert before < 0.6 and after >= 0.9
    save_frame_pooling_model(model, processor, tmp_path / "tuned")  # no new layers: a plain SigLIP checkpoint
    assert isinstance(load_model(tmp_path / "tuned").model, transformers.SiglipModel)
    assert transformers.SiglipModel.from_pretrained(tmp_path / "tuned") is not None
    clf = pipeline(TASK, model=str(tmp_path / "tuned"))
    video = test_x[:1]
    with torch.no_grad():
        reloaded = clf.model.encode_videos(video).pooler_output
        assert torch.allclose(reloaded, model.encode_videos(video).pooler_output, atol=1e-5)


@pytest.mark.slow
def test_finetune_command_trains_a_siglip_with_lora(family_dirs, tmp_path, capsys):
    from testing_utils import few_shot_specs

    from hf_xclip.data.synthetic import write_video_folder

    for split, seed in (("train", 1), ("eval", 2)):
        write_video_folder(
            tmp_path / split, 4, specs=few_shot_specs(), seed=seed, num_frames=8, size=32, background="plain"
        )
    code = run_cli(
        "finetune",
        "--model",
        family_dirs["siglip"],
        "--train-dir",
        tmp_path / "train",
        "--eval-dir",
        tmp_path / "eval",
        "--output-dir",
        tmp_path / "tuned",
        "--method",
        "lora",
        "--epochs",
        "40",
        "--lr",
        "5e-3",
        "--batch-size",
        "4",
        "--json",
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["family"] == "siglip" and summary["final_loss"] < summary["first_loss"]
    assert summary["top1"] > summary["top1_before"]
    clf = pipeline(TASK, model=str(tmp_path / "tuned"))
    assert clf.model.capabilities.family == "siglip"


def test_convert_from_clip_takes_metaclip_2(tmp_path):
    """`hf-xclip convert --from clip` on a MetaCLIP 2 directory (the same ViT and text layout as CLIP): the X-CLIP's
    text tower equals MetaClip2Model's."""
    import transformers
    from testing_utils import save_tokenizer

    from hf_xclip import XClipModel

    source = tmp_path / "metaclip2"
    tokenizer = save_tokenizer(source)
    size = len(tokenizer)
    layer = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 1}
    config = transformers.MetaClip2Config(
        text_config={
            **layer,
            "vocab_size": size,
            "max_position_embeddings": 77,
            "eos_token_id": size - 1,
            "bos_token_id": size - 2,
            "pad_token_id": size - 1,
        },
        vision_config={**layer, "image_size": 32, "patch_size": 16},
        projection_dim=64,
    )
    torch.manual_seed(0)
    metaclip = transformers.MetaClip2Model(config).eval()
    metaclip.save_pretrained(source)
    assert (
        run_cli(
            "convert", "--from", "clip", "--checkpoint", source, "--output-dir", tmp_path / "xclip", "--num-frames", "4"
        )
        == 0
    )
    xclip = XClipModel.from_pretrained(tmp_path / "xclip").eval()
    tokens = tokenizer(["a dog", "surfing on a wave"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = xclip.get_text_features(**tokens).pooler_output
        theirs = metaclip.get_text_features(**tokens).pooler_output
    assert (ours - theirs).abs().max() <= 1e-5


def test_siglip_multi_label_lora_raises_map(tmp_path):
    """Multi-label LoRA (multi-hot targets, the SigLIP sigmoid loss) on scenes of 1-3 of five objects (distinct
    shape, colour and motion, plain background): label-wise mAP on other scenes rises."""
    from hf_xclip.data.synthetic import all_specs, render_scene, sample_scenes
    from hf_xclip.evaluation.evaluate import average_precision
    from hf_xclip.finetuning.frame_pooling import FramePoolingTrainingArguments, train_frame_pooling
    from hf_xclip.labels import LabelEncoder
    from hf_xclip.loading import load_family_model

    # 8 px patches: three small objects in 32 px frames need more than SigLIP-tiny's 2 x 2 patches of 16 px
    model, processor = load_family_model(save_tiny_family_model(tmp_path / "siglip8", "siglip", patch_size=8))
    specs, used = [], set()
    for spec in all_specs():  # five objects that can share a scene
        if not used & {spec.shape, spec.colour, spec.motion}:
            specs.append(spec)
            used |= {spec.shape, spec.colour, spec.motion}
    specs = specs[:5]
    names = [spec.caption for spec in specs]

    def scenes(count: int, seed: int):
        pixels, targets = [], []
        for i, scene in enumerate(sample_scenes(count, seed, specs=specs, num_objects=(1, 3))):
            video = render_scene(scene, num_frames=8, size=32, seed=seed + i, background="plain")
            pixels.append(processor.video_processor(video, num_frames=NUM_FRAMES)["pixel_values"][0])
            targets.append(torch.tensor([float(name in scene.captions) for name in names]))
        return torch.stack(pixels), torch.stack(targets)

    train_x, train_y = scenes(48, 0)
    test_x, test_y = scenes(24, 1000)

    def mean_ap(m) -> float:
        with torch.no_grad():
            text = LabelEncoder(m, processor.tokenizer).encode_labels(names, ("{}",))
            scores = m.score(m.encode_videos(test_x), text)
        values = [average_precision(scores[:, k], test_y[:, k]) for k in range(len(names))]
        return sum(v for v in values if v is not None) / len([v for v in values if v is not None])

    before = mean_ap(model)
    train_frame_pooling(model, processor.tokenizer, train_x, train_y, names, FramePoolingTrainingArguments())
    after = mean_ap(model)
    print(f"multi-label mAP {before:.3f} -> {after:.3f}")
    assert after > before + 0.1

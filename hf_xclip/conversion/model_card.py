"""Model cards (README.md with Hub metadata) for converted checkpoints, and the table of released originals."""

from __future__ import annotations

from dataclasses import dataclass, field

from huggingface_hub import ModelCard, ModelCardData

PAPER_URL = "https://arxiv.org/abs/2208.02816"
CODE_URL = "https://github.com/microsoft/VideoX/tree/master/X-CLIP"
RELEASE_URL = "https://github.com/nbl97/X-CLIP_Model_Zoo/releases/download/v1.0/"
VIFICLIP_URL = "https://github.com/muzairkhattak/ViFi-CLIP"
# The Hub has no zero-shot video task; video-classification is the closest tag it knows. The pipeline name goes
# into `tags` so the card can still be found by it.
PIPELINE_TAG = "video-classification"
PIPELINE_TASK = "zero-shot-video-classification"


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """One checkpoint released with the X-CLIP paper.

    Attributes:
        file: file name of the release.
        arch: backbone (``"B/32"``, ``"B/16"``, ``"L/14"``).
        setting: ``"fully-supervised"``, ``"few-shot"`` or ``"zero-shot"``.
        trained_on: training data.
        top1: reported top-1 accuracy (%) per evaluation dataset.
        top5: reported top-5 accuracy (%) per evaluation dataset, where reported.
        views: evaluation protocol of the reported numbers, where known (``"-"`` otherwise).
        hub_name: the name of transformers' port under ``microsoft/`` (2022 layout), if any.
        url: download address.
    """

    file: str
    arch: str
    patch_size: int
    num_frames: int
    image_size: int
    setting: str
    trained_on: str
    top1: dict[str, float]
    top5: dict[str, float] = field(default_factory=dict)
    views: str = "-"
    hub_name: str | None = None
    url: str | None = None


def _release(file: str, **kwargs) -> ReleasedCheckpoint:
    if kwargs.get("setting") == "fully-supervised":
        kwargs.setdefault("views", _MULTI_VIEW)
    return ReleasedCheckpoint(file=file, url=kwargs.pop("url", RELEASE_URL + file), **kwargs)


_K400, _K600, _HMDB, _UCF = "Kinetics-400", "Kinetics-600", "HMDB-51", "UCF-101"
_MULTI_VIEW = "4 clips x 3 crops"
_GDRIVE = "Google Drive (see the X-CLIP README)"

RELEASED_CHECKPOINTS: dict[str, ReleasedCheckpoint] = {
    release.file: release
    for release in [
        _release("k400_32_8.pth", arch="B/32", patch_size=32, num_frames=8, image_size=224, setting="fully-supervised",
                 trained_on=_K400, top1={_K400: 80.4}, top5={_K400: 95.0}, hub_name="microsoft/xclip-base-patch32"),
        _release("k400_32_16.pth", arch="B/32", patch_size=32, num_frames=16, image_size=224,
                 setting="fully-supervised", trained_on=_K400, top1={_K400: 81.1}, top5={_K400: 95.5},
                 hub_name="microsoft/xclip-base-patch32-16-frames"),
        _release("k400_16_8.pth", arch="B/16", patch_size=16, num_frames=8, image_size=224, setting="fully-supervised",
                 trained_on=_K400, top1={_K400: 83.8}, top5={_K400: 95.7}, hub_name="microsoft/xclip-base-patch16"),
        _release("k400_16_16.pth", arch="B/16", patch_size=16, num_frames=16, image_size=224,
                 setting="fully-supervised", trained_on=_K400, top1={_K400: 84.7}, top5={_K400: 96.8},
                 hub_name="microsoft/xclip-base-patch16-16-frames"),
        _release("k400_14_8.pth", arch="L/14", patch_size=14, num_frames=8, image_size=224, setting="fully-supervised",
                 trained_on=_K400, top1={_K400: 87.1}, top5={_K400: 97.6}, hub_name="microsoft/xclip-large-patch14",
                 url=_GDRIVE),
        _release("k400_14_16_336.pth", arch="L/14", patch_size=14, num_frames=16, image_size=336,
                 setting="fully-supervised", trained_on=_K400, top1={_K400: 87.7}, top5={_K400: 97.4},
                 hub_name="microsoft/xclip-large-patch14-16-frames", url=_GDRIVE),
        _release("k600_16_8.pth", arch="B/16", patch_size=16, num_frames=8, image_size=224, setting="fully-supervised",
                 trained_on=_K600, top1={_K600: 85.3}, top5={_K600: 97.1},
                 hub_name="microsoft/xclip-base-patch16-kinetics-600"),
        _release("k600_16_16.pth", arch="B/16", patch_size=16, num_frames=16, image_size=224,
                 setting="fully-supervised", trained_on=_K600, top1={_K600: 85.8}, top5={_K600: 97.3},
                 hub_name="microsoft/xclip-base-patch16-kinetics-600-16-frames"),
        _release("k600_14_8.pth", arch="L/14", patch_size=14, num_frames=8, image_size=224, setting="fully-supervised",
                 trained_on=_K600, top1={_K600: 88.3}, top5={_K600: 97.7},
                 hub_name="microsoft/xclip-large-patch14-kinetics-600", url=_GDRIVE),
        *[
            _release(f"few_{short}_{shots}.pth", arch="B/16", patch_size=16, num_frames=32, image_size=224,
                     setting="few-shot", trained_on=f"{dataset}, {shots} videos per class", top1={dataset: accuracy},
                     hub_name=f"microsoft/xclip-base-patch16-{short}-{shots}-shot")
            for short, dataset, accuracies in (("hmdb", _HMDB, (53.0, 57.3, 62.8, 64.0)),
                                               ("ucf", _UCF, (76.4, 83.4, 88.3, 91.4)))
            for shots, accuracy in zip((2, 4, 8, 16), accuracies)
        ],
        _release("zero.pth", arch="B/16", patch_size=16, num_frames=32, image_size=224, setting="zero-shot",
                 trained_on=_K400, top1={_HMDB: 44.6, _UCF: 72.0, _K600: 65.2},
                 hub_name="microsoft/xclip-base-patch16-zero-shot"),
    ]
}


def _usage(repo_id: str, template: str) -> str:
    labels = '["playing guitar", "riding a bike", "cooking"]'
    template_arg = "" if template == "{}" else f', hypothesis_template="{template}"'
    return f"""```python
import hf_xclip  # registers the model and the pipeline with transformers
from transformers import pipeline

classifier = pipeline("{PIPELINE_TASK}", model="{repo_id}")
classifier("video.mp4", candidate_labels={labels}{template_arg})
```"""


def _accuracy_lines(release: ReleasedCheckpoint) -> list[str]:
    lines = ["| evaluated on | top-1 (%) | top-5 (%) | views |", "| --- | --- | --- | --- |"]
    for dataset, top1 in release.top1.items():
        top5 = release.top5.get(dataset)
        lines.append(f"| {dataset} | {top1} | {top5 if top5 is not None else '-'} | {release.views} |")
    return lines


def build_model_card(
    *,
    title: str,
    summary: str,
    source_file: str,
    source_sha256: str,
    config,
    repo_id: str | None = None,
    license: str = "mit",
    family: str = "x-clip",
    release: ReleasedCheckpoint | None = None,
    template: str = "{}",
    notes: list[str] | None = None,
    license_link: str | None = None,
) -> ModelCard:
    """A model card for a converted checkpoint.

    Args:
        title: first heading.
        summary: one paragraph on what the model is.
        source_file / source_sha256: the converted file, so anyone can check which release it came from.
        config: the `XClipConfig` written next to the card (frames, image size, patch).
        repo_id: name used in the usage snippet (defaults to a placeholder).
        release: the released checkpoint this file is, for its reported accuracy.
        template: text template the model was trained with.
        notes: extra bullet points.
        license_link: where the terms are, for ``license="other"``.
    """
    vision = config.vision_config
    tags = ["hf_xclip", family, "video", "zero-shot", PIPELINE_TASK, "clip"]
    data = ModelCardData(
        license=license,
        license_link=license_link,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=tags,
    )
    repo_id = repo_id or "path/to/this/model"
    lines = [
        f"# {title}",
        "",
        summary,
        "",
        "## Conversion",
        "",
        f"- source file: `{source_file}`",
        f"- sha256: `{source_sha256}`",
        f"- frames per video: {vision.num_frames}",
        f"- image size: {vision.image_size} px, patch {vision.patch_size}",
        f"- widths: vision {vision.hidden_size} x {vision.num_hidden_layers} layers, text "
        f"{config.text_config.hidden_size} x {config.text_config.num_hidden_layers} layers, joint space "
        f"{config.projection_dim}",
        f"- video pooling: {config.video_pooling}; cross-frame attention: {vision.use_cross_frame_attention}; "
        f"prompt generator: {config.use_prompt_generator}",
        f"- text template: `{template}`",
        "- preprocessing: short side resized to int(256 / 224 * size), centre crop, ImageNet mean/std; "
        f"{vision.num_frames} frames sampled TSN-style (middle frame of equal segments)",
        *[f"- {note}" for note in notes or []],
        "",
        "## Usage",
        "",
        _usage(repo_id, template),
        "",
    ]
    if release is not None:
        lines += [
            "## Reported accuracy",
            "",
            f"The paper reports for `{release.file}` (X-CLIP-{release.arch}, {release.num_frames} x "
            f"{release.image_size}, {release.setting}, trained on {release.trained_on}):",
            "",
            *_accuracy_lines(release),
            "",
        ]
    lines += [
        "## Citation",
        "",
        "Ni et al., *Expanding Language-Image Pretrained Models for General Video Recognition*, ECCV 2022 "
        f"([paper]({PAPER_URL}), [code]({CODE_URL})).",
        "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))

"""Sharing hf_xclip models on the Hugging Face Hub: code that travels with the weights, model cards, pushing.

What a saved directory needs so that people without hf_xclip can use it:

* ``model.save_pretrained(d)`` already copies ``configuration_xclip.py`` and ``modeling_xclip.py`` next to the
  weights and records them in ``config.json``'s ``auto_map`` (`hf_xclip.register` calls
  ``register_for_auto_class``); ``processor.save_pretrained(d)`` does the same for the processor files. ``AutoModel``
  and ``AutoProcessor`` ``.from_pretrained(d, trust_remote_code=True)`` then work without hf_xclip.
* The zero-shot pipeline is only recorded on request (``pipe.save_pretrained(d)``, `add_remote_code` with
  ``pipeline=True``, `push_model`): once ``config.custom_pipelines`` names the task, transformers asks for
  ``trust_remote_code=True`` for that directory even where hf_xclip is installed.

`push_model` stages a model object or a saved / converted directory, adds the code (and by default the pipeline),
completes and checks the model card, and uploads everything in one commit.

Example:

```python
>>> from hf_xclip.hub import push_model
>>> push_model("converted/xclip-base-patch32", "me/xclip-base-patch32")  # doctest: +SKIP
CommitInfo(commit_url='https://huggingface.co/me/xclip-base-patch32/commit/...', ...)
```
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, EvalResult, HfApi, ModelCard, ModelCardData
from transformers.dynamic_module_utils import custom_object_save

from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
from .conversion.model_card import CODE_URL, PAPER_URL, PIPELINE_TAG, PIPELINE_TASK
from .modeling_xclip import XClipModel, XClipTextModel, XClipVisionModel

# architecture in config.json -> (model class, config class)
_ARCHITECTURES = {
    cls.__name__: (cls, config_class)
    for cls, config_class in (
        (XClipModel, XClipConfig),
        (XClipTextModel, XClipTextConfig),
        (XClipVisionModel, XClipVisionConfig),
    )
}
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")
_VIDEO_PROCESSOR_FILES = ("processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json")


def add_remote_code(directory: str | os.PathLike, *, pipeline: bool = False) -> list[Path]:
    """Make a saved hf_xclip directory load with ``trust_remote_code=True`` where hf_xclip is not installed.

    Copies the model (and processor) code into `directory` and records it in ``config.json`` (``auto_map``) and the
    processor files. Directories written by ``model.save_pretrained`` have this already; use it for directories
    written otherwise (e.g. by older conversions), or with ``pipeline=True`` to add the zero-shot pipeline.

    Args:
        directory: a directory with an hf_xclip ``config.json`` (model_type ``hf_xclip``, or the text / vision
            sub-model types).
        pipeline: also ship ``pipeline_zero_shot_video_classification.py`` and record it in
            ``config.custom_pipelines`` (then ``pipeline("zero-shot-video-classification", model=directory,
            trust_remote_code=True)`` works; transformers asks for ``trust_remote_code=True`` even with hf_xclip).

    Returns:
        The files written or rewritten.

    Raises:
        FileNotFoundError: no ``config.json`` in `directory`.
        ValueError: the config is not an hf_xclip one (e.g. transformers' ``xclip``: convert it first with
            ``XClipModel.from_pretrained(d).save_pretrained(out)``), or an architecture hf_xclip does not have.
    """
    directory = Path(directory)
    model_class, config_class = _saved_architecture(directory)
    if pipeline and model_class is not XClipModel:
        raise ValueError(
            f"the zero-shot pipeline needs an XClipModel directory, {directory} holds {model_class.__name__}."
        )
    config = config_class.from_pretrained(directory)
    written = [Path(p) for p in custom_object_save(model_class, directory)]  # modeling_xclip.py + relative imports
    auto_map = dict(getattr(config, "auto_map", None) or {})
    config.auto_map = {**auto_map, "AutoModel": f"modeling_xclip.{model_class.__name__}"}
    if pipeline:
        from .pipeline_zero_shot_video_classification import (
            ZeroShotVideoClassificationPipeline,
            custom_pipelines_config,
        )

        written += [Path(p) for p in custom_object_save(ZeroShotVideoClassificationPipeline, directory)]
        config.custom_pipelines = custom_pipelines_config()
    config.save_pretrained(directory)  # also sets auto_map["AutoConfig"] and copies configuration_xclip.py
    written.append(directory / "config.json")
    written += _resave_processor(directory)
    return sorted(set(written))


def _saved_architecture(directory: Path) -> tuple[type, type]:
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory} has no config.json: save the model there first.")
    config_dict = json.loads(config_file.read_text(encoding="utf-8"))
    model_type = config_dict.get("model_type")
    architectures = config_dict.get("architectures") or [XClipModel.__name__]
    if model_type == "xclip":
        raise ValueError(
            f"{config_file} is transformers' X-CLIP (model_type 'xclip'); load it with hf_xclip and save it again "
            "(`XClipModel.from_pretrained(d).save_pretrained(out)`) before sharing it with hf_xclip's code."
        )
    if architectures[0] not in _ARCHITECTURES:
        raise ValueError(
            f"{config_file} names architecture {architectures[0]!r}; hf_xclip has {sorted(_ARCHITECTURES)}."
        )
    model_class, config_class = _ARCHITECTURES[architectures[0]]
    if model_type != config_class.model_type:
        raise ValueError(
            f"{config_file} has model_type {model_type!r}; {model_class.__name__} needs {config_class.model_type!r}."
        )
    return model_class, config_class


def _resave_processor(directory: Path) -> list[Path]:
    """Save the processor (or video processor) again with its classes so that it records and ships its code."""
    from .processing_xclip import XClipProcessor
    from .video_processing_xclip import XClipVideoProcessor

    has_tokenizer = any((directory / name).is_file() for name in _TOKENIZER_FILES)
    has_video_processor = any((directory / name).is_file() for name in _VIDEO_PROCESSOR_FILES)
    if not has_video_processor:
        return []
    before = {path: path.stat().st_mtime_ns for path in directory.iterdir() if path.is_file()}
    if has_tokenizer:
        XClipProcessor.from_pretrained(directory).save_pretrained(directory)
    else:
        XClipVideoProcessor.from_pretrained(directory).save_pretrained(directory)
    return [path for path in directory.iterdir() if path.is_file() and before.get(path) != path.stat().st_mtime_ns]


# ------------------------------------------------------------------------------------------------- model cards


def remote_code_usage(repo_id: str, pipeline: bool = True) -> str:
    """The model card section on loading the repo with transformers alone (``trust_remote_code=True``)."""
    lines = [
        "## Use with transformers only",
        "",
        "The repository ships hf_xclip's model and processor code, so it loads without installing hf_xclip "
        "(`trust_remote_code=True` runs that code: read it first):",
        "",
        "```python",
    ]
    if pipeline:
        lines += [
            "from transformers import pipeline",
            "",
            f'classifier = pipeline("{PIPELINE_TASK}", model="{repo_id}", trust_remote_code=True)',
            'classifier("video.mp4", candidate_labels=["playing guitar", "riding a bike", "cooking"])',
            "",
        ]
    lines += [
        "from transformers import AutoModel, AutoProcessor",
        "",
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)',
        f'processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)',
        'inputs = processor(text=["playing guitar", "cooking"], videos="video.mp4")',
        "probs = model(**inputs).logits_per_video.softmax(dim=-1)",
        "```",
    ]
    if pipeline:
        lines += [
            "",
            "The repository records its pipeline (`custom_pipelines` in `config.json`), so transformers asks for "
            "`trust_remote_code=True` for it even where hf_xclip is installed.",
        ]
    return "\n".join(lines)


def finetuned_model_card(
    config: XClipConfig,
    *,
    repo_id: str,
    base_model: str | None = None,
    datasets: str | Sequence[str] | None = None,
    summary: str | None = None,
    results: Mapping[str, float] | None = None,
    dataset_name: str | None = None,
    license: str = "mit",
    template: str = "{}",
    pipeline: bool = True,
) -> ModelCard:
    """A model card for a fine-tuned (or otherwise trained) hf_xclip model.

    Converted checkpoints get their card from `hf_xclip.conversion.build_model_card` (source file, reported
    accuracy); this one is for models trained with hf_xclip.

    Args:
        config: the model's configuration (frames, image size, widths).
        repo_id: the Hub name used in the usage snippets.
        base_model: the Hub name of the model it was fine-tuned from (``base_model`` metadata).
        datasets: training data names (``datasets`` metadata).
        summary: one paragraph on what the model is.
        results: metric name -> value (e.g. ``{"accuracy": 0.91}``) measured on `dataset_name`; written as
            ``model-index`` evaluation results.
        dataset_name: the evaluation data of `results` (required with `results`).
        license: licence identifier (X-CLIP's weights are MIT).
        template: the text template the model was trained with.
        pipeline: the repository ships the zero-shot pipeline (see `add_remote_code`).

    Raises:
        ValueError: `results` without `dataset_name`, or a non-numeric result.
    """
    vision = config.vision_config
    eval_results = None
    if results:
        if not dataset_name:
            raise ValueError("`results` need `dataset_name`: the data the metrics were measured on.")
        eval_results = []
        for metric, value in results.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"result {metric!r} must be a number, got {value!r}.")
            eval_results.append(
                EvalResult(task_type=PIPELINE_TAG, dataset_type=dataset_name, dataset_name=dataset_name,
                           metric_type=metric, metric_value=float(value))
            )
    data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=["hf_xclip", "x-clip", "video", "zero-shot", PIPELINE_TASK, "clip"],
        base_model=base_model,
        datasets=[datasets] if isinstance(datasets, str) else (list(datasets) if datasets else None),
        model_name=repo_id,
        eval_results=eval_results,
    )
    summary = summary or (
        f"An X-CLIP video-text model ({vision.num_frames} frames of {vision.image_size} px, patch "
        f"{vision.patch_size}) trained with hf_xclip"
        + (f", starting from [{base_model}](https://huggingface.co/{base_model})." if base_model else ".")
    )
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        summary,
        "",
        "## Model",
        "",
        f"- frames per video: {vision.num_frames}; image size {vision.image_size} px, patch {vision.patch_size}",
        f"- widths: vision {vision.hidden_size} x {vision.num_hidden_layers} layers, text "
        f"{config.text_config.hidden_size} x {config.text_config.num_hidden_layers} layers, joint space "
        f"{config.projection_dim}",
        f"- video pooling: {config.video_pooling}; prompt generator: {config.use_prompt_generator}",
        f"- text template: `{template}`",
        "",
    ]
    if results:
        lines += ["## Results", "", f"Measured on {dataset_name}:", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {metric} | {value:.4g} |" for metric, value in results.items()]
        lines.append("")
    lines += [
        "## Usage",
        "",
        "```python",
        "import hf_xclip  # registers the model, processor and pipeline with transformers",
        "from transformers import pipeline",
        "",
        f'classifier = pipeline("{PIPELINE_TASK}", model="{repo_id}"{", trust_remote_code=True" if pipeline else ""})',
        'classifier("video.mp4", candidate_labels=["playing guitar", "riding a bike", "cooking"])',
        "```",
        "",
        remote_code_usage(repo_id, pipeline=pipeline),
        "",
        "## Citation",
        "",
        "Ni et al., *Expanding Language-Image Pretrained Models for General Video Recognition*, ECCV 2022 "
        f"([paper]({PAPER_URL}), [code]({CODE_URL})).",
        "",
    ]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))
    check_model_card(card)
    return card


def check_model_card(card: ModelCard | str | os.PathLike) -> ModelCardData:
    """Check a model card offline the way the Hub reads it; returns its metadata.

    The card is parsed by huggingface_hub (YAML header into `ModelCardData`, ``model-index`` into evaluation
    results). `ModelCard.validate` would ask the Hub; this checks what a push needs without network: a licence, a
    ``library_name`` and a ``pipeline_tag``, string tags, and a body after the header.

    Raises:
        ValueError: naming the missing or malformed field.
    """
    if isinstance(card, ModelCard):
        text = card.content
    elif isinstance(card, os.PathLike) or (isinstance(card, str) and "\n" not in card and Path(card).is_file()):
        text = Path(card).read_text(encoding="utf-8")
    else:
        text = str(card)
    if not text.lstrip().startswith("---"):
        raise ValueError("the model card has no YAML metadata header (--- ... ---).")
    try:
        parsed = ModelCard(text)
    except Exception as err:  # yaml errors, malformed model-index (ValueError)
        raise ValueError(f"the model card's metadata cannot be parsed: {err}") from err
    data = parsed.data
    for field in ("license", "library_name", "pipeline_tag"):
        if not getattr(data, field, None):
            raise ValueError(f"the model card metadata has no `{field}`.")
    tags = data.tags or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError(f"the model card `tags` must be a list of strings, got {tags!r}.")
    base_model = data.base_model
    if base_model is not None and not (
        isinstance(base_model, str) or (isinstance(base_model, list) and all(isinstance(b, str) for b in base_model))
    ):
        raise ValueError(f"the model card `base_model` must be a repo id or a list of them, got {base_model!r}.")
    if not parsed.text.strip():
        raise ValueError("the model card has metadata but no text.")
    return data


# ------------------------------------------------------------------------------------------------------ pushing


def push_model(
    model_or_path: Any,
    repo_id: str,
    *,
    processor: Any = None,
    model_card: ModelCard | str | None = None,
    pipeline: bool = True,
    token: str | bool | None = None,
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str = "Upload X-CLIP model with hf_xclip",
    card_kwargs: Mapping[str, Any] | None = None,
) -> CommitInfo:
    """Upload an hf_xclip model to the Hub in one commit: safetensors weights, config, processor, code, model card.

    Args:
        model_or_path: an `XClipModel` (or text / vision model) object, or a directory saved by hf_xclip (e.g. a
            conversion's output). The directory is not modified: files are staged in a temporary directory.
        repo_id: ``"user/name"`` of the model repository (created when missing).
        processor: an `XClipProcessor` (or video processor) saved with the model; a directory usually has one.
        model_card: the README (a `ModelCard` or its text). Defaults to the directory's README.md (a conversion's
            card) or `finetuned_model_card`; a section on loading with ``trust_remote_code=True`` is added when the
            card has none. The card is checked with `check_model_card` before anything is uploaded.
        pipeline: ship and record the zero-shot pipeline (see `add_remote_code`).
        token, private, revision, create_pr, commit_message: as in `huggingface_hub.HfApi.upload_folder`.
        card_kwargs: extra arguments of `finetuned_model_card` (``base_model``, ``datasets``, ``results``...).

    Returns:
        The `CommitInfo` of the upload.

    Raises:
        TypeError: a `peft.PeftModel` (merge it first with ``merge_and_unload()``, or push the adapter with
            ``peft_model.push_to_hub``) or another object that is not an hf_xclip model.
        ValueError / FileNotFoundError: a directory without config or safetensors weights, a pipeline without a
            processor and tokenizer, or an invalid model card.
    """
    from . import __version__

    with tempfile.TemporaryDirectory(prefix="hf_xclip-push-") as tmp:
        staging = Path(tmp)
        config = _stage(model_or_path, processor, staging)
        _check_staged(staging, pipeline)
        add_remote_code(staging, pipeline=pipeline)
        card = _resolve_card(model_card, staging, config, repo_id, pipeline, card_kwargs)
        check_model_card(card)
        card.save(staging / "README.md")

        api = HfApi(token=token, library_name="hf_xclip", library_version=__version__)
        repo_id = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True).repo_id
        if revision is not None and not create_pr:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=staging,
            repo_type="model",
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
        )


def _stage(model_or_path: Any, processor: Any, staging: Path):
    """Write the model (object or directory) and processor into `staging`; returns the model's config."""
    if isinstance(model_or_path, (str, os.PathLike)):
        source = Path(model_or_path)
        if not (source / "config.json").is_file():
            raise FileNotFoundError(f"{source} is not a saved model directory (no config.json).")
        for path in source.iterdir():
            if path.is_file() and not path.name.startswith("."):
                _stage_file(path, staging / path.name)
    else:
        if type(model_or_path).__name__ == "PeftModel" or hasattr(model_or_path, "peft_config"):
            raise TypeError(
                "push_model pushes full models: merge the adapter first (`peft_model.merge_and_unload()`), or push "
                "the adapter alone with `peft_model.push_to_hub(repo_id)`."
            )
        if not isinstance(model_or_path, tuple(cls for cls, _ in _ARCHITECTURES.values())):
            raise TypeError(f"push_model needs an hf_xclip model or a directory, got {type(model_or_path).__name__}.")
        model_or_path.save_pretrained(staging)
    if processor is not None:
        processor.save_pretrained(staging)
    model_class, config_class = _saved_architecture(staging)
    return config_class.from_pretrained(staging)


def _stage_file(source: Path, target: Path) -> None:
    # Weights can be large: hard-link them where the filesystem allows (nothing writes to them). Everything else is
    # copied, since staging rewrites JSON and code files in place and must not change the source directory.
    if source.suffix == ".safetensors":
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def has_pipeline_files(directory: str | os.PathLike) -> bool:
    """Whether a saved model directory has what the zero-shot pipeline needs: a tokenizer and a video processor."""
    return not _missing_pipeline_files(Path(directory))


def _missing_pipeline_files(directory: Path) -> list[str]:
    """What of a tokenizer and a video processor the directory lacks (named for error messages)."""
    return [
        what
        for what, names in (("a tokenizer", _TOKENIZER_FILES), ("a video processor", _VIDEO_PROCESSOR_FILES))
        if not any((directory / name).is_file() for name in names)
    ]


def _check_staged(staging: Path, pipeline: bool) -> None:
    if not any(staging.glob("*.safetensors")):
        found = sorted(p.name for p in staging.iterdir())
        raise ValueError(
            f"no safetensors weights to push (found {found}); save the model with `save_pretrained` (safetensors)."
        )
    missing = _missing_pipeline_files(staging) if pipeline else []
    if missing:
        raise ValueError(
            f"the zero-shot pipeline needs {' and '.join(missing)} next to the model: pass `processor=` "
            "(an XClipProcessor), or `pipeline=False` to push the model alone."
        )


def _resolve_card(model_card, staging: Path, config, repo_id: str, pipeline: bool, card_kwargs) -> ModelCard:
    if model_card is not None:
        card = model_card if isinstance(model_card, ModelCard) else ModelCard(str(model_card))
    elif (staging / "README.md").is_file():
        card = ModelCard.load(staging / "README.md")
    else:
        if not isinstance(config, XClipConfig):
            raise ValueError(f"pass `model_card=`: no default card for a {type(config).__name__} model.")
        return finetuned_model_card(config, repo_id=repo_id, pipeline=pipeline, **dict(card_kwargs or {}))
    if "trust_remote_code" not in card.text:
        card = ModelCard(card.content.rstrip("\n") + "\n\n" + remote_code_usage(repo_id, pipeline=pipeline) + "\n")
    return card


__all__ = [
    "add_remote_code",
    "has_pipeline_files",
    "check_model_card",
    "finetuned_model_card",
    "push_model",
    "remote_code_usage",
]

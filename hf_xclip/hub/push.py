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
>>> from hf_xclip.hub.push import push_model
>>> push_model("converted/xclip-base-patch32", "me/xclip-base-patch32")  # doctest: +SKIP
CommitInfo(commit_url='https://huggingface.co/me/xclip-base-patch32/commit/...', ...)
```
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, ModelCard
from transformers.dynamic_module_utils import custom_object_save

from ..configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
from ..modeling_xclip import XClipModel, XClipTextModel, XClipVisionModel
from .model_cards import check_model_card, finetuned_model_card, remote_code_usage

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
        from ..pipeline_zero_shot_video_classification import (
            ZeroShotVideoClassificationPipeline,
            custom_pipelines_config,
        )

        written += [Path(p) for p in custom_object_save(ZeroShotVideoClassificationPipeline, directory)]
        config.custom_pipelines = custom_pipelines_config()
    config.save_pretrained(directory)  # also sets auto_map["AutoConfig"] and copies configuration_xclip.py
    written.append(directory / "config.json")
    written += _resave_processor(directory)
    return sorted(set(written))


def remove_remote_code(directory: str | os.PathLike) -> None:
    """Undo what ``save_pretrained`` does for ``trust_remote_code``: delete the copied ``*.py`` sources and the
    ``auto_map`` entries of ``config.json`` / ``processor_config.json`` / ``tokenizer_config.json``.

    For directories only read where hf_xclip is installed (the embedded default model, ONNX exports): there the
    copies would be stale duplicates, and the installed package registers the classes itself."""
    directory = Path(directory)
    for path in directory.glob("*.py"):
        path.unlink()
    for name in ("config.json", "processor_config.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            _pop_key(data, "auto_map")
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _pop_key(data: Any, key: str) -> None:
    if isinstance(data, dict):
        data.pop(key, None)
        for value in data.values():
            _pop_key(value, key)


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
    from ..processing_xclip import XClipProcessor
    from ..video_processing_xclip import XClipVideoProcessor

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
    from .. import __version__

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


__all__ = ["add_remote_code", "has_pipeline_files", "push_model", "remove_remote_code"]

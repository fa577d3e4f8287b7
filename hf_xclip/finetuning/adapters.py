"""PEFT adapters written by `hf-xclip finetune`: saving (adapter, `xclip_adapter.json`, card, and a language-model
label prompter's own files when there is one) and loading them onto a base model for `evaluate`, `classify`,
`labels encode` and the other commands.

A multi-label adapter records its sigmoid head (``multi_label_head`` in `xclip_adapter.json`); loading the adapter
writes it into the model's config. Full fine-tuning (``--method full``) writes a whole model folder instead of an
adapter (weights, config with the head, processor), loadable as a model or as an "adapter" here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..hub.model_cards import adapter_model_card
from ..labels import find_label_prompter
from ..language.prompter import XClipLLMPrompter, attach_label_prompter, has_prompter

ADAPTER_METADATA_FILE = "xclip_adapter.json"


def save_adapter(
    result: Any,
    output_dir: str | Path,
    *,
    base_model: str | None = None,
    data: dict[str, Any] | None = None,
    processor: Any = None,
) -> Path:
    """Write the peft adapter (or, for full fine-tuning, the whole model and `processor`), `xclip_adapter.json` and a
    model card (README.md) to `output_dir`; a label prompter attached to the model (`llm-prompts`) is saved there too
    (`llm_prompter.safetensors`, `llm_prompter_config.json`).

    Args:
        result: a `hf_xclip.finetuning.training.FewShotResult` (from `train_few_shot`).
        output_dir: created if needed.
        base_model: name or path of the base model (for the card and peft's config).
        data: description of the data for the card (`train_dir`, `eval_dir`, `shots`, `seed`, ...).
        processor: saved with a fully fine-tuned model, so that the folder loads as a model.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(str(output_dir))
    if processor is not None and getattr(result.adapter_config, "full_finetune", False):
        processor.save_pretrained(str(output_dir))
    prompter = find_label_prompter(result.model)
    if prompter is not None:
        prompter.save_pretrained(output_dir)
    metadata = {
        "format": "hf_xclip-adapter",
        "class_names": result.class_names,
        "methods": result.adapter_config.methods,
        "adapter_config": result.adapter_config.to_dict(),
        "template": result.args.template,
        "label_descriptions": getattr(result, "label_descriptions", None) or {},
        "num_frames": result.args.num_frames,
        "base_model": base_model,
        "data": data or {},
        "training": _jsonable(asdict(result.args)),
        "eval_before": result.eval_before.to_dict() if result.eval_before else None,
        "eval_after": result.eval_after.to_dict() if result.eval_after else None,
        "skipped_videos": result.skipped_videos,
        "num_train_videos": result.num_train_videos,
        "trainable_parameters": result.trainable_parameters,
        "learning_rates": result.learning_rates,
        "multi_label": getattr(result, "multi_label", False),
        "multi_label_head": getattr(result, "sigmoid_head", None),
        "novel_labels": getattr(result, "novel_labels", []),
    }
    (output_dir / ADAPTER_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    adapter_model_card(result, base_model=base_model, data=data).save(str(output_dir / "README.md"))
    return output_dir


def load_adapter_metadata(adapter_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The `xclip_adapter.json` of an adapter folder written by [`save_adapter`], or None."""
    path = Path(adapter_dir) / ADAPTER_METADATA_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def load_model_with_adapter(
    model_name: str | os.PathLike,
    adapter: str | os.PathLike | None = None,
    *,
    language_model: Any = None,
    **prompter_overrides: Any,
):
    """`(model, processor, adapter metadata or None)`: the base `XClipModel` in eval mode, with `adapter` (a PEFT
    adapter folder or Hub id, e.g. from `hf-xclip finetune`) loaded through peft, and the adapter's language-model
    label prompter attached when it has one (its language model is loaded on first use).

    Args:
        model_name: base model folder or Hub id.
        adapter: adapter folder or Hub id.
        language_model: for an adapter with a label prompter: another name / path of its language model (e.g. where
            it lives on this machine), or a loaded model (`prompter_overrides` then holds `lm_tokenizer`).
        prompter_overrides: `lm_dtype`, `load_in_8bit`, `lm_batch_size`, `trust_remote_code`, `lm_tokenizer`.

    Raises:
        ValueError: `adapter` is a folder without `adapter_config.json`.
        OSError: the model or adapter cannot be found.
    """
    from ..loading import check_model_family, load_family_model
    from ..modeling_xclip import XClipModel
    from ..processing_xclip import XClipProcessor

    # The folder of a full fine-tuning (`--method full`): the model itself, not an adapter.
    full = adapter if adapter is not None and is_full_model_folder(adapter) else None
    if check_model_family(full if full is not None else model_name) != "xclip":  # CLIP, SigLIP, VideoPrism, ...
        if adapter is not None and full is None:
            raise ValueError(
                f"PEFT adapters are loaded onto X-CLIP models only; {os.fspath(model_name)!r} is a "
                f"{check_model_family(model_name)} model (fine-tune it with --method full)."
            )
        model, processor = load_family_model(full if full is not None else model_name)
        return model.eval(), processor, load_adapter_metadata(full) if full is not None else None
    if full is not None:  # `--method full`: the folder is the model
        model = XClipModel.from_pretrained(full)
        source = full if (Path(full) / "processor_config.json").is_file() else model_name
        return model.eval(), XClipProcessor.from_pretrained(source), load_adapter_metadata(full)
    model = XClipModel.from_pretrained(model_name)
    processor = XClipProcessor.from_pretrained(model_name)
    metadata = None
    if adapter is not None:
        from peft import PeftModel

        adapter = os.fspath(adapter)
        if Path(adapter).exists() and not (Path(adapter) / "adapter_config.json").is_file():
            raise ValueError(f"{adapter!r} is not a PEFT adapter folder (no adapter_config.json).")
        model = PeftModel.from_pretrained(model, adapter)
        metadata = load_adapter_metadata(adapter) if Path(adapter).is_dir() else None
        apply_adapter_head(model, metadata)
        if has_prompter(adapter):
            prompter = XClipLLMPrompter.from_pretrained(adapter, language_model=language_model, **prompter_overrides)
            attach_label_prompter(model, prompter)
    return model.eval(), processor, metadata


def is_full_model_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder written by full fine-tuning (a model folder, not a peft adapter)."""
    path = Path(path)
    return (path / "config.json").is_file() and not (path / "adapter_config.json").is_file()


def apply_adapter_head(model: Any, metadata: dict[str, Any] | None) -> None:
    """Write the sigmoid head an adapter was trained with (`xclip_adapter.json`) into the model's config."""
    from ..multilabel import set_decision_threshold, set_sigmoid_head

    head = (metadata or {}).get("multi_label_head")
    if head:
        set_sigmoid_head(model, head["scale"], head["bias"])
        set_decision_threshold(model, head.get("threshold"), head.get("thresholds"))


__all__ = [
    "ADAPTER_METADATA_FILE",
    "apply_adapter_head",
    "is_full_model_folder",
    "load_adapter_metadata",
    "load_model_with_adapter",
    "save_adapter",
]

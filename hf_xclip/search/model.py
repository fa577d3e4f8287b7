"""The model of a video index: loading it (a name with its adapter, or an object) with its processor and
tokenizer, its fingerprints, the `IndexInfo` of the rows it makes, and its embeddings as an index stores them.

`hf_xclip.search.build` writes rows with it, `hf_xclip.search.index` encodes queries with it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..fingerprint import model_fingerprint
from ..utils import unwrap_model
from .format import (
    DEFAULT_MODEL_NAME,
    IndexInfo,
    IndexModelMismatchError,
    IndexSettings,
    quantize_prompt_features,
)


@dataclass
class LoadedModel:
    """A model ready to embed videos and queries: the model (eval mode, on its device), its video processor and
    tokenizer, where it came from, and its fingerprints."""

    model: Any
    video_processor: Any
    tokenizer: Any
    processor: Any
    name: str | None
    adapter: str | None
    video_fingerprint: str
    text_fingerprint: str

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def load_index_model(
    model: Any = None,
    adapter: str | os.PathLike | None = None,
    processor: Any = None,
    info: IndexInfo | None = None,
    *,
    tokenizer: Any = None,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """The model of an index: `model` (a name, or an object with `processor` / `tokenizer`), else the one `info`
    records (with its adapter), else the embedded default model; with its fingerprints.

    Raises:
        ValueError: the model or its processor cannot be loaded.
    """
    from ..loading import resolve_components

    if model is None and info is not None:
        if info.model is None:
            raise ValueError("the index does not record a model it can load: pass the model that built it.")
        model, adapter = info.model, adapter if adapter is not None else info.adapter
    if model is None:
        model = DEFAULT_MODEL_NAME
    name = None
    if isinstance(model, (str, os.PathLike)):
        from ..finetuning.adapters import load_model_with_adapter

        name = os.fspath(model)
        try:
            model, loaded_processor, _ = load_model_with_adapter(_model_source(name), adapter)
        except (OSError, ValueError) as err:
            with_adapter = f" with adapter {adapter}" if adapter else ""
            raise ValueError(f"cannot load model {name!r}{with_adapter}: {err}") from None
        processor = processor or loaded_processor
        name = _model_name(name)
        if adapter is not None:
            adapter = os.path.abspath(adapter) if os.path.exists(adapter) else os.fspath(adapter)
    else:
        model.eval()
        source = getattr(getattr(model, "config", None), "name_or_path", None) or getattr(model, "name_or_path", None)
        name = _model_name(source) if source else None
    if device is not None:
        model.to(device)
    from ..video_processing_xclip import XClipVideoProcessor

    core = unwrap_model(model)
    video_processor = None
    if isinstance(processor, XClipVideoProcessor):  # a video processor alone: the tokenizer comes from the model
        video_processor, processor = processor, None
    _, video_processor, tokenizer = resolve_components(
        getattr(core, "name_or_path", None) or None, processor, video_processor, tokenizer
    )
    return LoadedModel(
        model=model,
        video_processor=video_processor,
        tokenizer=tokenizer,
        processor=processor,
        name=name,
        adapter=None if adapter is None else os.fspath(adapter),
        **index_fingerprints(model),
    )


def index_fingerprints(model: Any) -> dict[str, str]:
    """Both sides' fingerprints, hashed in two threads (hashing and dtype conversion release the GIL)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        video, text = pool.map(lambda part: model_fingerprint(model, part), ("video", "text"))
    return {"video_fingerprint": video, "text_fingerprint": text}


def _model_source(name: str) -> str:
    if name == DEFAULT_MODEL_NAME:
        from ..embedded_model.location import default_model_path

        return default_model_path()
    return name


def _model_name(source: str) -> str:
    """How index.json names a model: the default model by `DEFAULT_MODEL_NAME`, a folder by its absolute path, a
    Hub id as it is."""
    from ..embedded_model.location import default_model_path

    try:
        if os.path.exists(source) and os.path.samefile(source, default_model_path()):
            return DEFAULT_MODEL_NAME
    except FileNotFoundError:
        pass
    return os.path.abspath(source) if os.path.exists(source) else source


def _index_info(loaded: LoadedModel, existing: IndexInfo | None, given: dict[str, Any]) -> IndexInfo:
    """The `IndexInfo` of rows `loaded` makes: with the `given` settings (``None``: the index's own, or the
    defaults), for `existing` (checked: the same settings and row sizes) or for a new index."""
    core = unwrap_model(loaded.model)
    config = core.config
    projection_dim = int(getattr(core, "embed_dim", None) or config.projection_dim)
    num_patches = _num_patches(core, loaded.video_processor)
    if existing is None:
        settings = IndexSettings(
            window=given["window"],
            stride=given["stride"],
            num_frames=given["num_frames"] or int(config.vision_config.num_frames),
            tail=given["tail"] or "shift",
            precision=given["precision"] or "int8",
        )
    else:
        _check_settings(asdict(existing.settings), given)
        if (existing.projection_dim, existing.num_patches) != (projection_dim, num_patches):
            raise IndexModelMismatchError(
                f"the index holds rows of {existing.projection_dim} x {existing.num_patches} patches, the model makes "
                f"{projection_dim} x {num_patches}."
            )
        settings = existing.settings
    info = IndexInfo(
        loaded.name,
        loaded.adapter,
        loaded.video_fingerprint,
        loaded.text_fingerprint,
        projection_dim,
        num_patches,
        settings,
    )
    if existing is not None:
        info.created = existing.created
    return info


def _num_patches(core: Any, video_processor: Any) -> int:
    """Prompt-feature tokens per row: the patches of a frame for a model with a prompt generator, else 0."""
    config = core.config
    capabilities = getattr(core, "capabilities", None)  # the video-text interface: no prompts outside X-CLIP
    if getattr(config, "use_prompt_generator", True) and (
        capabilities is None or capabilities.video_conditioned_prompts
    ):
        crop = video_processor.crop_size
        size = (crop["height"], crop["width"]) if isinstance(crop, dict) else (int(crop), int(crop))
        patch = config.vision_config.patch_size
        return (size[0] // patch) * (size[1] // patch)
    return 0


def _check_settings(recorded: dict[str, Any], given: dict[str, Any]) -> None:
    """Raise when a `given` setting (not None) differs from the index's (`recorded`); a window given without a
    stride means stride = window."""
    differ = {
        k: (v, recorded[k])
        for k, v in given.items()
        if v is not None and v != recorded[k] and not (k == "stride" and given.get("window") is None)
    }
    if given.get("window") is not None and given.get("stride") is None and recorded["stride"] != given["window"]:
        differ.setdefault("stride", (given["window"], recorded["stride"]))
    if differ:
        raise ValueError(
            "this index was made with other settings: "
            + ", ".join(f"{k}={theirs!r} (given {mine!r})" for k, (mine, theirs) in differ.items())
            + "; append with the index's settings (leave them out) or build a new index."
        )


@torch.inference_mode()
def embed_videos(model: Any, pixel_values: torch.Tensor, precision: str = "int8"):
    """``(embeddings (B, D) float32, prompt values, prompt scales)`` of a batch of videos as an index stores them
    (prompt values / scales are per row lists of arrays, or None per row without a prompt generator)."""
    param = next(model.parameters())
    pixels = pixel_values.to(device=param.device, dtype=param.dtype)
    out = model.get_video_features(pixels, output_prompt_features=True, return_dict=True)
    embeddings = out.pooler_output.float().cpu().numpy()
    if out.prompt_features is None:
        return list(embeddings), [None] * len(embeddings), [None] * len(embeddings)
    values, scales = quantize_prompt_features(out.prompt_features, precision)
    return list(embeddings), list(values), [None] * len(values) if scales is None else list(scales)


__all__ = ["embed_videos", "index_fingerprints", "load_index_model", "unwrap_model", "LoadedModel"]

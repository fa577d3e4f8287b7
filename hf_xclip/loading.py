"""Turning what a caller passes (a model object, a directory, a Hub id, processors or their paths) into the objects
the pipeline and the commands run: an [`XClipModel`] (or, for a directory written by `hf-xclip export`, an
[`XClipOrtModel`] on onnxruntime), an `XClipVideoProcessor` and a tokenizer.

Shipped with the zero-shot pipeline's remote code (relative imports only, no peft), so a saved pipeline loads where
hf_xclip is not installed.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import AutoTokenizer

from .modeling_ort import XClipOrtModel, is_onnx_model_dir
from .modeling_video_text import (
    UnsupportedModelError,
    family_for_model_type,
    load_transformers_video_text_model,
    model_family,
    read_model_type,
    wrap_video_text_model,
)
from .modeling_xclip import XClipModel
from .utils import unwrap_model
from .video_processing_xclip import XClipVideoProcessor, as_xclip_video_processor


def load_model(name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
    """The model behind a name, chosen from its ``config.json`` ``model_type``: an [`XClipOrtModel`] for a directory
    exported by `hf-xclip export` (it has an ``onnx_config.json``; `kwargs` such as ``quantize="int8"`` go to
    `XClipOrtModel.from_pretrained`); `XClipModel.from_pretrained(name_or_path, **kwargs)` for hf_xclip and
    transformers X-CLIP checkpoints; for CLIP, MetaCLIP 2, SigLIP, SigLIP 2 and VideoPrism checkpoints their
    transformers class behind the video-text interface (`hf_xclip.modeling_video_text`; ``video_text_pooling``,
    ``video_text_num_frames``, ``video_text_temperature`` in `kwargs` set its options).

    Raises:
        ValueError: ``quantize`` given for a torch checkpoint (int8 applies to ONNX exports).
        UnsupportedModelError: a model without a text side (VideoMAE, ...) or of an unknown type, listing the
            supported families.
    """
    if is_onnx_model_dir(name_or_path):
        return XClipOrtModel.from_pretrained(name_or_path, **kwargs)
    if kwargs.get("quantize") is not None:
        raise ValueError(
            f"quantize={kwargs['quantize']!r} applies to ONNX exports; {os.fspath(name_or_path)!r} is a torch "
            "checkpoint: export it first (hf-xclip export --model ... --output DIR [--quantize int8])."
        )
    kwargs.pop("quantize", None)
    family = family_for_model_type(_model_type(name_or_path, kwargs))
    if family.kind != "xclip":
        return load_transformers_video_text_model(name_or_path, family, **kwargs)
    return XClipModel.from_pretrained(name_or_path, **kwargs)


def check_model_family(name_or_path: str | os.PathLike, **kwargs: Any) -> str:
    """The family name of a checkpoint (from its ``config.json``), before loading any weight: "xclip" for ONNX
    exports and hf_xclip / transformers X-CLIP checkpoints.

    Raises:
        UnsupportedModelError: a model without a text side or of an unknown type, listing the supported families.
    """
    if is_onnx_model_dir(name_or_path):
        return "xclip"
    return family_for_model_type(_model_type(name_or_path, kwargs)).name


def _model_type(name_or_path: str | os.PathLike, kwargs: dict[str, Any]) -> str | None:
    try:
        return read_model_type(name_or_path, **kwargs)
    except (OSError, ValueError):  # no config.json: XClipModel.from_pretrained says what is missing
        return "hf_xclip"


class XClipAutoModel:
    """The model class the zero-shot pipeline is registered with: `from_pretrained` is [`load_model`], so that
    ``pipeline("zero-shot-video-classification", model=name)`` loads torch checkpoints and ONNX exports alike
    (``model_kwargs={"quantize": "int8"}`` selects int8 graphs of an export)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args: Any, **kwargs: Any):
        if model_args:
            raise TypeError(f"XClipAutoModel.from_pretrained takes no positional model arguments, got {model_args}")
        return load_model(pretrained_model_name_or_path, **kwargs)


def as_xclip_model(model: Any) -> XClipModel | XClipOrtModel:
    """Return an [`XClipModel`] (or the [`XClipOrtModel`] given); a transformers `XCLIPModel` object is converted
    (same weights, our classes).

    Raises:
        ValueError: `model` is not an X-CLIP model.
    """
    if isinstance(model, (XClipModel, XClipOrtModel)) or _is_xclip_model_copy(model):
        return model
    if type(model).__name__ == "XCLIPModel" and type(model).__module__.startswith("transformers."):
        from .configuration_xclip import XClipConfig

        config = XClipConfig.from_dict(model.config.to_dict())
        converted = XClipModel(config).to(dtype=model.dtype)
        converted.load_state_dict(model.state_dict(), strict=True)  # takes transformers' parameter names
        converted.name_or_path = model.name_or_path
        return converted.to(model.device)
    raise ValueError(
        f"zero-shot-video-classification needs an X-CLIP model (hf_xclip XClipModel, transformers XCLIPModel or an "
        f"ONNX export's XClipOrtModel), got {type(model).__name__}."
    )


def as_video_text_model(model: Any) -> Any:
    """A model object behind the video-text interface: X-CLIP models as [`as_xclip_model`] gives them, transformers'
    image-text and video-text models (CLIPModel, MetaClip2Model, SiglipModel, Siglip2Model, VideoPrismClipModel,
    any model with get_video_features and get_text_features) wrapped (`wrap_video_text_model`), wrappers as given.

    Raises:
        UnsupportedModelError: a model of no supported family (listing them).
    """
    if hasattr(model, "capabilities") and hasattr(model, "encode_videos"):
        return model
    if hasattr(model, "get_base_model") and hasattr(model.get_base_model(), "capabilities"):
        return model  # a peft model around an implementation
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in ("hf_xclip", "xclip") or type(model).__name__ == "XCLIPModel":
        return as_xclip_model(model)
    return wrap_video_text_model(model)


def is_xclip_family(model: Any) -> bool:
    """Whether a model (or a peft model around one) is an X-CLIP model."""
    return model_family(model) == "xclip"


def _is_xclip_model_copy(model: Any) -> bool:
    # trust_remote_code imports this file and modeling_xclip.py from a saved directory as separate module copies
    # (one per entry point), so the model can be an XClipModel of another module than the one imported here.
    return type(model).__name__ == XClipModel.__name__ and getattr(model.config, "model_type", None) == "hf_xclip"


def load_video_processor(path: str) -> XClipVideoProcessor:
    """The video processor saved with a model (hf_xclip's, or transformers' VideoMAE preprocessor config).

    Raises:
        ValueError: nothing loadable at `path`.
    """
    try:
        return XClipVideoProcessor.from_pretrained(path)
    except OSError as err:
        raise ValueError(
            f"Cannot load a video processor from {path!r} ({err}); pass `processor=` or `video_processor=`."
        ) from None


def resolve_components(
    source: str | None, processor: Any, video_processor: Any, tokenizer: Any, config: Any = None, model: Any = None
) -> tuple[Any, XClipVideoProcessor, Any]:
    """`(processor, video_processor, tokenizer)`: what was given (objects or paths), the rest loaded from `source`
    (the model's directory or Hub id).

    Args:
        source: where the model came from (`model.name_or_path`), or None.
        processor: an `XClipProcessor`, a path to one, or None.
        video_processor: a video / image processor object, a path, or None (taken from `processor` or `source`).
        tokenizer: a tokenizer, a path, or None (taken from `processor` or `source`).
        config: the model's config, passed to `AutoTokenizer` for a model loaded with remote code.
        model: the model; for a family other than X-CLIP its own image / video processor is loaded from `source`
            (`hf_xclip.processing_video_text`) and its own tokenizer.

    Raises:
        ValueError: a component is missing and there is no `source` to load it from.
    """
    if isinstance(processor, (str, os.PathLike)):
        from .processing_xclip import XClipProcessor

        processor = XClipProcessor.from_pretrained(os.fspath(processor))
    if processor is not None:
        video_processor = (
            video_processor
            or getattr(processor, "video_processor", None)
            or getattr(processor, "image_processor", None)
        )
        tokenizer = tokenizer or getattr(processor, "tokenizer", None)
    family = None if model is None or is_xclip_family(model) else model_family(model)
    if family is not None:
        return _family_components(family, model, source, processor, video_processor, tokenizer)
    if video_processor is None or isinstance(video_processor, (str, os.PathLike)):
        where = os.fspath(video_processor) if video_processor is not None else source
        if where is None:
            raise ValueError(
                "Cannot find a video processor: the model has no `name_or_path`; pass `processor=` or `video_processor=`."
            )
        video_processor = load_video_processor(where)
    video_processor = as_xclip_video_processor(video_processor)
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        where = os.fspath(tokenizer) if tokenizer is not None else source
        if where is None:
            raise ValueError("Cannot find a tokenizer: the model has no `name_or_path`; pass `tokenizer=`.")
        # A model loaded with trust_remote_code passes its config: AutoTokenizer would load it again and ask for
        # trust_remote_code a second time.
        known_config = {"config": config} if config is not None and where == source else {}
        tokenizer = AutoTokenizer.from_pretrained(where, **known_config)
    return processor, video_processor, tokenizer


def _family_components(family: str, model: Any, source, processor, video_processor, tokenizer) -> tuple[Any, Any, Any]:
    """Processors of an image-text / video-text family: its own tokenizer and image / video processor."""
    from .modeling_video_text import family_by_name
    from .processing_video_text import FrameVideoProcessor, load_family_video_processor

    spec = family_by_name(family) if family in {f.name for f in _families()} else None
    base = unwrap_model(model)
    if video_processor is None or isinstance(video_processor, (str, os.PathLike)):
        where = os.fspath(video_processor) if video_processor is not None else source
        if where is None:
            raise ValueError("Cannot find a video processor: the model has no `name_or_path`; pass `video_processor=`.")
        if spec is None:
            raise ValueError(f"pass `video_processor=` for a {family} model (hf_xclip knows no processor for it).")
        video_processor = load_family_video_processor(where, spec, base.num_frames)
    elif not isinstance(video_processor, FrameVideoProcessor):
        kind = getattr(spec, "kind", "video")
        video_processor = FrameVideoProcessor(
            video_processor,
            frames="video" if kind == "video" and hasattr(video_processor, "sample_frames") else "image",
            patches=family == "siglip2",
            num_frames=base.num_frames,
        )
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        where = os.fspath(tokenizer) if tokenizer is not None else source
        if where is None:
            raise ValueError("Cannot find a tokenizer: the model has no `name_or_path`; pass `tokenizer=`.")
        tokenizer = AutoTokenizer.from_pretrained(where)
    return processor, video_processor, tokenizer


def load_family_model(name_or_path: str | os.PathLike, **kwargs: Any) -> tuple[Any, Any]:
    """`(model, processor)` of an image-text / video-text family checkpoint: the model behind the interface and a
    `VideoTextProcessor` (its video processor, tokenizer and default template)."""
    from .modeling_video_text import family_by_name
    from .processing_video_text import VideoTextProcessor

    model = load_model(name_or_path, **kwargs)
    _, video_processor, tokenizer = resolve_components(os.fspath(name_or_path), None, None, None, model=model)
    template = family_by_name(model_family(model)).default_template
    return model, VideoTextProcessor(video_processor, tokenizer, template)


def _families():
    from .modeling_video_text import FAMILIES

    return FAMILIES


__all__ = [
    "UnsupportedModelError",
    "XClipAutoModel",
    "as_video_text_model",
    "as_xclip_model",
    "check_model_family",
    "is_xclip_family",
    "load_family_model",
    "load_model",
    "load_video_processor",
    "resolve_components",
]

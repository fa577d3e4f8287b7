"""Turning what a caller passes (a model object, a directory, a Hub id, processors or their paths) into the objects
the pipeline and the commands run: an [`XClipModel`], an `XClipVideoProcessor` and a tokenizer.

Shipped with the zero-shot pipeline's remote code (relative imports only, no peft), so a saved pipeline loads where
hf_xclip is not installed.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import AutoTokenizer

from .modeling_xclip import XClipModel
from .video_processing_xclip import XClipVideoProcessor, as_xclip_video_processor


def as_xclip_model(model: Any) -> XClipModel:
    """Return an [`XClipModel`]; a transformers `XCLIPModel` object is converted (same weights, our classes).

    Raises:
        ValueError: `model` is not an X-CLIP model.
    """
    if isinstance(model, XClipModel) or _is_xclip_model_copy(model):
        return model
    if type(model).__name__ == "XCLIPModel" and type(model).__module__.startswith("transformers."):
        from .configuration_xclip import XClipConfig

        config = XClipConfig.from_dict(model.config.to_dict())
        converted = XClipModel(config).to(dtype=model.dtype)
        converted.load_state_dict(model.state_dict(), strict=True)  # takes transformers' parameter names
        converted.name_or_path = model.name_or_path
        return converted.to(model.device)
    raise ValueError(
        f"zero-shot-video-classification needs an X-CLIP model (hf_xclip XClipModel or transformers XCLIPModel), "
        f"got {type(model).__name__}."
    )


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
    source: str | None, processor: Any, video_processor: Any, tokenizer: Any, config: Any = None
) -> tuple[Any, XClipVideoProcessor, Any]:
    """`(processor, video_processor, tokenizer)`: what was given (objects or paths), the rest loaded from `source`
    (the model's directory or Hub id).

    Args:
        source: where the model came from (`model.name_or_path`), or None.
        processor: an `XClipProcessor`, a path to one, or None.
        video_processor: a video / image processor object, a path, or None (taken from `processor` or `source`).
        tokenizer: a tokenizer, a path, or None (taken from `processor` or `source`).
        config: the model's config, passed to `AutoTokenizer` for a model loaded with remote code.

    Raises:
        ValueError: a component is missing and there is no `source` to load it from.
    """
    if isinstance(processor, (str, os.PathLike)):
        from .processing_xclip import XClipProcessor

        processor = XClipProcessor.from_pretrained(os.fspath(processor))
    if processor is not None:
        video_processor = video_processor or getattr(processor, "video_processor", None) or getattr(
            processor, "image_processor", None
        )
        tokenizer = tokenizer or getattr(processor, "tokenizer", None)
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


__all__ = ["as_xclip_model", "load_video_processor", "resolve_components"]

"""hf_xclip: X-CLIP (video-text CLIP with cross-frame attention) for the Hugging Face ecosystem.

The public names below are imported on first use (``from hf_xclip import XClipModel`` imports the model module then),
so that ``import hf_xclip`` and the `hf-xclip` command start without torch or transformers. Registration with
transformers' Auto classes and ``pipeline("zero-shot-video-classification")`` happens as soon as transformers is
imported (see `hf_xclip.registration`)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ._old_paths import install as _install_old_paths
from .registration import register, register_on_transformers_import

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY_NAMES: dict[str, str] = {
    "XClipConfig": ".configuration_xclip",
    "XClipTextConfig": ".configuration_xclip",
    "XClipVisionConfig": ".configuration_xclip",
    "XClipModel": ".modeling_xclip",
    "XClipOutput": ".modeling_xclip",
    "XClipPreTrainedModel": ".modeling_xclip",
    "XClipTextModel": ".modeling_xclip",
    "XClipVideoOutput": ".modeling_xclip",
    "XClipVisionModel": ".modeling_xclip",
    "XClipOrtModel": ".modeling_ort",
    "XClipProcessor": ".processing_xclip",
    "XClipVideoProcessor": ".video_processing_xclip",
    "VideoDecodeError": ".video_io",
    "ZeroShotVideoClassificationPipeline": ".pipeline_zero_shot_video_classification",
    "default_model_path": ".embedded_model.location",
    "CoOpConfig": ".finetuning.peft_config",
    "XClipAdapterConfig": ".finetuning.peft_config",
    "get_xclip_peft_model": ".finetuning.peft_model",
    "lora_target_modules": ".finetuning.peft_config",
    "EvaluationResult": ".evaluation.evaluate",
    "evaluate_videos": ".evaluation.evaluate",
    "FewShotTrainingArguments": ".finetuning.training",
    "train_few_shot": ".finetuning.training",
    "LabelBank": ".labels",
    "LabelEncoder": ".labels",
    "find_videos": ".data.folders",
    "scan_video_folder": ".data.folders",
    "build_index": ".search.build",
    "VideoIndex": ".search.index",
}

__all__ = [
    "XClipConfig",
    "XClipModel",
    "XClipOutput",
    "XClipPreTrainedModel",
    "XClipTextConfig",
    "XClipTextModel",
    "XClipVideoOutput",
    "XClipVisionConfig",
    "XClipVisionModel",
    "XClipOrtModel",
    "XClipProcessor",
    "XClipVideoProcessor",
    "VideoDecodeError",
    "ZeroShotVideoClassificationPipeline",
    "register",
    "default_model_path",
    "CoOpConfig",
    "XClipAdapterConfig",
    "get_xclip_peft_model",
    "lora_target_modules",
    "EvaluationResult",
    "FewShotTrainingArguments",
    "LabelBank",
    "LabelEncoder",
    "evaluate_videos",
    "find_videos",
    "scan_video_folder",
    "train_few_shot",
    "build_index",
    "VideoIndex",
]

if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports
    from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
    from .data.folders import find_videos, scan_video_folder
    from .embedded_model.location import default_model_path
    from .evaluation.evaluate import EvaluationResult, evaluate_videos
    from .finetuning.peft_config import (
        CoOpConfig,
        XClipAdapterConfig,
        lora_target_modules,
    )
    from .finetuning.peft_model import get_xclip_peft_model
    from .finetuning.training import FewShotTrainingArguments, train_few_shot
    from .labels import LabelBank, LabelEncoder
    from .modeling_ort import XClipOrtModel
    from .modeling_xclip import (
        XClipModel,
        XClipOutput,
        XClipPreTrainedModel,
        XClipTextModel,
        XClipVideoOutput,
        XClipVisionModel,
    )
    from .pipeline_zero_shot_video_classification import (
        ZeroShotVideoClassificationPipeline,
    )
    from .processing_xclip import XClipProcessor
    from .search.build import build_index
    from .search.index import VideoIndex
    from .video_io import VideoDecodeError
    from .video_processing_xclip import XClipVideoProcessor


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        # `hf_xclip.labels` & co. without importing them first, as when this package imported them all eagerly
        if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'hf_xclip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES})


register_on_transformers_import()
_install_old_paths()  # `hf_xclip.video_index` & co. (the paths before the feature packages) keep importing

"""hf_xclip: X-CLIP (video-text CLIP with cross-frame attention) for the Hugging Face ecosystem."""

from ._old_paths import install as _install_old_paths
from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
from .data.folders import find_videos, scan_video_folder
from .embedded_model.location import default_model_path
from .evaluation.evaluate import EvaluationResult, evaluate_videos
from .finetuning.peft_config import CoOpConfig, XClipAdapterConfig, lora_target_modules
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
from .pipeline_zero_shot_video_classification import ZeroShotVideoClassificationPipeline
from .processing_xclip import XClipProcessor
from .registration import register
from .search.build import build_index
from .search.index import VideoIndex
from .video_io import VideoDecodeError
from .video_processing_xclip import XClipVideoProcessor

register()
_install_old_paths()  # `hf_xclip.video_index` & co. (the paths before the feature packages) keep importing

__version__ = "0.1.0"

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

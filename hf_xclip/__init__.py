"""hf_xclip: X-CLIP (video-text CLIP with cross-frame attention) for the Hugging Face ecosystem."""

from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
from .defaults import default_model_path
from .evaluation import EvaluationResult, evaluate_videos
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
from .peft_utils import CoOpConfig, XClipAdapterConfig, get_xclip_peft_model, lora_target_modules
from .pipeline_zero_shot_video_classification import ZeroShotVideoClassificationPipeline
from .processing_xclip import XClipProcessor
from .registration import register
from .training import FewShotTrainingArguments, train_few_shot
from .video_data import find_videos, scan_video_folder
from .video_index import build_index
from .video_io import VideoDecodeError
from .video_processing_xclip import XClipVideoProcessor
from .video_search import VideoIndex

register()

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

"""hf_xclip: X-CLIP (video-text CLIP with cross-frame attention) for the Hugging Face ecosystem."""

from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
from .modeling_xclip import (
    XClipModel,
    XClipOutput,
    XClipPreTrainedModel,
    XClipTextModel,
    XClipVideoOutput,
    XClipVisionModel,
)
from .registration import register

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
    "register",
]

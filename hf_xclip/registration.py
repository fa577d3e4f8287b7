"""The one place that registers hf_xclip with transformers' Auto classes (and, once available, the pipeline)."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
from .modeling_xclip import XClipModel, XClipTextModel, XClipVisionModel

_REGISTERED = False


def _register_processors() -> None:
    from transformers import AutoProcessor

    # Imported from its module: `transformers.AutoVideoProcessor` is a placeholder without torchvision, but the
    # class itself (which processors use to load their video processor) works and X-CLIP's needs no torchvision.
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    from .processing_xclip import XClipProcessor
    from .video_processing_xclip import XClipVideoProcessor

    AutoProcessor.register(XClipConfig, XClipProcessor, exist_ok=True)
    AutoVideoProcessor.register(XClipConfig, XClipVideoProcessor, exist_ok=True)


def _ship_code_when_saving() -> None:
    """Make `save_pretrained` copy the code next to the files and record it in `auto_map`, so that a saved
    directory (or Hub repo) loads with `AutoModel` / `AutoProcessor` ``.from_pretrained(..., trust_remote_code=True)``
    where hf_xclip is not installed. The model, config and processor modules only import each other relatively."""
    from .processing_xclip import XClipProcessor
    from .video_processing_xclip import XClipVideoProcessor

    for config_class in (XClipConfig, XClipTextConfig, XClipVisionConfig):
        config_class.register_for_auto_class("AutoConfig")
    for model_class in (XClipModel, XClipTextModel, XClipVisionModel):
        model_class.register_for_auto_class("AutoModel")
    XClipProcessor.register_for_auto_class("AutoProcessor")
    XClipVideoProcessor.register_for_auto_class("AutoVideoProcessor")


def register() -> None:
    """Register configs, models, processors and the zero-shot video pipeline. Idempotent."""
    global _REGISTERED
    if _REGISTERED:
        return
    for config_class in (XClipConfig, XClipTextConfig, XClipVisionConfig):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for config_class, model_class in (
        (XClipConfig, XClipModel),
        (XClipTextConfig, XClipTextModel),
        (XClipVisionConfig, XClipVisionModel),
    ):
        AutoModel.register(config_class, model_class, exist_ok=True)
    _register_processors()
    _ship_code_when_saving()
    from .pipeline_zero_shot_video_classification import register_pipeline

    register_pipeline()  # pipeline("zero-shot-video-classification")
    _REGISTERED = True

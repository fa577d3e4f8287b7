"""The one video-text model interface every hf_xclip tool talks to, and its implementations for transformers' models.

A video-text model turns texts into embeddings, videos into video outputs, and scores the two against each other:

```python
text_embeds = model.encode_texts(input_ids, attention_mask)  # (K, D), before any video-specific prompt
video = model.encode_videos(pixel_values)  # VideoTextVideoOutput: video_embeds (B, D), prompt_features or None
logits = model.score(video, text_embeds)  # (B, K), the model's own logit formula
probs = model.probabilities(logits)  # softmax over the K labels, or SigLIP's independent sigmoid
model.capabilities  # VideoTextCapabilities: family, scoring, prompts, text padding, what the tools may do with it
```

Implementations:

* hf_xclip's `XClipModel` (and transformers' X-CLIP checkpoints, loaded as `XClipModel`) and the ONNX
  `XClipOrtModel`: `score` applies X-CLIP's video-conditioned prompt generator to the texts (`get_logits`);
* [`ImageTextVideoModel`]: transformers' image-text towers used ViFi-CLIP-style (`CLIPModel`, `MetaClip2Model`,
  `SiglipModel`, `Siglip2Model`): every frame goes through the image tower (`get_image_features`), the frame
  embeddings are pooled over time (``config.video_text_pooling``: ``"mean"`` by default, or ``"max"``), and the
  pooled embedding is scored by the model's own formula (CLIP: ``logit_scale.exp() * cosine``, softmax over labels;
  SigLIP: ``logit_scale.exp() * cosine + logit_bias``, an independent sigmoid per label);
* [`NativeVideoTextModel`]: models with a video tower of their own (`VideoPrismClipModel`, or any transformers
  model exposing `get_video_features` and `get_text_features`): ``logits = video_embeds @ text_embeds.T /
  temperature`` (the model's forward; ``config.video_text_temperature``, default 1.0 as in that forward).

The wrappers keep X-CLIP's inference method names too (`get_text_features`, `get_video_features`, `get_logits`,
`logit_scale_module`, `multi_label_logits`), so code written for `XClipModel` runs on them. They are plain
`nn.Module`s holding the transformers model as ``model``; `save_pretrained` saves that model (a plain transformers
checkpoint, with the pooling recorded in its config), so a saved model loads with the transformers class too.

Shipped with the model code (relative imports only).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from .utils import unwrap_model

# --------------------------------------------------------------------------------------------------------------
# Families


@dataclass(frozen=True)
class ModelFamily:
    """One kind of video-text model hf_xclip runs.

    Attributes:
        name: the family's name (what label banks, indexes and exports record).
        model_types: ``config.json`` ``model_type`` values of the family.
        kind: ``"xclip"`` (X-CLIP's own classes), ``"frames"`` (an image-text model, frames pooled over time) or
            ``"video"`` (a model with a video tower).
        model_class: the transformers class name loaded for it (``None`` for X-CLIP: `XClipModel`).
        scores: ``"softmax"`` (a distribution over the candidate labels) or ``"sigmoid"`` (an independent
            probability per label, SigLIP's).
        default_template: the text template used when a call gives none.
    """

    name: str
    model_types: tuple[str, ...]
    kind: str
    model_class: str | None
    scores: str = "softmax"
    default_template: str = "{}"


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily("xclip", ("hf_xclip", "xclip"), "xclip", None),
    ModelFamily("clip", ("clip",), "frames", "CLIPModel", default_template="a photo of a {}."),
    ModelFamily("metaclip_2", ("metaclip_2",), "frames", "MetaClip2Model", default_template="a photo of a {}."),
    ModelFamily("siglip", ("siglip",), "frames", "SiglipModel", "sigmoid", "a photo of a {}."),
    ModelFamily("siglip2", ("siglip2",), "frames", "Siglip2Model", "sigmoid", "a photo of a {}."),
    ModelFamily("videoprism", ("videoprism",), "video", "VideoPrismClipModel", default_template="a video of {}."),
)
# model_types of checkpoints without a text side (video classifiers / encoders): named in the error.
VIDEO_ONLY_MODEL_TYPES = frozenset(
    {"videomae", "vivit", "timesformer", "videoprism_vision_model", "vjepa2", "video_llava", "x_clip_vision_model"}
)
POOLINGS: tuple[str, ...] = ("mean", "max")
DEFAULT_POOLING = "mean"
DEFAULT_FRAMES = 8


class UnsupportedModelError(ValueError):
    """A checkpoint whose ``model_type`` hf_xclip cannot use as a video-text model."""


def supported_families() -> str:
    """One line listing the families and their ``model_type`` values (for error messages and docs)."""
    return "; ".join(f"{family.name} ({', '.join(family.model_types)})" for family in FAMILIES)


def family_for_model_type(model_type: str | None) -> ModelFamily:
    """The family of a ``config.json`` ``model_type``.

    Raises:
        UnsupportedModelError: a model without a text side (VideoMAE, ...) or of an unknown type, listing the
            supported families.
    """
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    if model_type in VIDEO_ONLY_MODEL_TYPES:
        reason = f"model_type {model_type!r} has no text tower, so it cannot score free-text labels"
    else:
        reason = f"model_type {model_type!r} is not a video-text model hf_xclip knows"
    raise UnsupportedModelError(
        f"{reason}. Supported families (config.json model_type): {supported_families()}; or any transformers model "
        "with get_video_features and get_text_features, passed as an object."
    )


def family_by_name(name: str) -> ModelFamily:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise UnsupportedModelError(f"unknown model family {name!r}; known: {[f.name for f in FAMILIES]}.")


def read_model_type(name_or_path: str | os.PathLike, **kwargs: Any) -> str | None:
    """The ``model_type`` in the ``config.json`` of a directory or Hub id (None when it has none)."""
    local = os.path.join(os.fspath(name_or_path), "config.json")
    if os.path.isfile(local):
        with open(local, encoding="utf-8") as handle:
            return json.load(handle).get("model_type")
    from transformers import PretrainedConfig

    lookup = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only", "subfolder") if k in kwargs}
    config, _ = PretrainedConfig.get_config_dict(os.fspath(name_or_path), **lookup)
    return config.get("model_type")


def model_family(model: Any) -> str:
    """The family name of a model object (any implementation of the interface, or a peft model around one)."""
    base = unwrap_model(model)
    capabilities = getattr(base, "capabilities", None)
    if capabilities is not None:
        return capabilities.family
    return family_for_model_type(getattr(base.config, "model_type", None)).name


# --------------------------------------------------------------------------------------------------------------
# The interface


@dataclass(frozen=True)
class VideoTextCapabilities:
    """What a video-text model is and what the tools may do with it.

    Attributes:
        family: the family name (`FAMILIES`).
        scores: ``"softmax"`` or ``"sigmoid"`` (see [`ModelFamily`]).
        video_conditioned_prompts: texts are changed by each video (X-CLIP's prompt generator): `score` needs the
            video output's ``prompt_features``.
        logit_bias: the logits carry a learned bias (SigLIP).
        frame_pooling: how frame embeddings become a video embedding (``"mean"`` / ``"max"``), None for a model
            with a video tower.
        clean_texts: texts go through X-CLIP's cleaning (ftfy, lower case) before tokenizing.
        pad_texts_to: texts are padded to this many tokens (SigLIP pools the last position and was trained on texts
            padded to 64), None: padding to the longest text of a batch changes nothing.
        learned_prompts: X-CLIP's learned prompts / adapters of `hf_xclip.peft_utils` apply (CoOp, VL prompts, ...).
        onnx_export: `hf-xclip export` can write its graphs.
    """

    family: str
    scores: str = "softmax"
    video_conditioned_prompts: bool = False
    logit_bias: bool = False
    frame_pooling: str | None = None
    clean_texts: bool = False
    pad_texts_to: int | None = None
    learned_prompts: bool = False
    onnx_export: bool = False


@dataclass
class VideoTextVideoOutput(ModelOutput):
    """What `encode_videos` returns (and `get_video_features(..., return_dict=True)`).

    Attributes:
        pooler_output: (B, D) video embeddings, before normalisation.
        prompt_features: (B, P, D) features X-CLIP's prompt generator reads, or None.
        frame_embeds: (B, T, D) per-frame embeddings of a frame-pooling model, or None.
    """

    pooler_output: torch.Tensor | None = None
    prompt_features: torch.Tensor | None = None
    frame_embeds: torch.Tensor | None = None

    @property
    def video_embeds(self) -> torch.Tensor | None:
        return self.pooler_output


class VideoTextModelMixin:
    """The interface, written once over X-CLIP's inference methods (`get_text_features`, `get_video_features`,
    `get_logits`, `logit_scale_module`), which every implementation provides; `capabilities` and `num_frames` are
    each implementation's."""

    if TYPE_CHECKING:  # each implementation's (a property); nothing is defined here at run time

        @property
        def capabilities(self) -> VideoTextCapabilities: ...

    # Provided by the class the mixin is combined with (annotations only: nothing is defined here at run time).
    get_text_features: Callable[..., Any]
    get_video_features: Callable[..., Any]
    get_logits: Callable[..., Any]
    logit_scale_module: Any  # called for the scale: a method, or X-CLIP's `XClipLogitScale` module

    def encode_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any):
        """(N, D) text embeddings before any video-specific prompt (what label banks store)."""
        out = self.get_text_features(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        return out.pooler_output

    def encode_videos(self, pixel_values: torch.Tensor) -> Any:
        """Video outputs of (B, T, ...) pixel values from the family's processor: ``pooler_output`` (B, D) and
        ``prompt_features`` (None without video-conditioned prompts)."""
        return self.get_video_features(pixel_values, output_prompt_features=True, return_dict=True)

    def score(self, video: Any, text_embeds: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of videos (an `encode_videos` output) against text embeddings (K, D)."""
        return self.get_logits(video.pooler_output, text_embeds, getattr(video, "prompt_features", None))[0]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores of single-label classification, as the model defines them: softmax over the labels, or the
        independent sigmoid of SigLIP-style models (transformers' zero-shot image pipeline does the same)."""
        if self.capabilities.scores == "sigmoid":
            return torch.sigmoid(logits.float())
        return logits.float().softmax(dim=-1)

    def logit_bias_value(self) -> torch.Tensor | None:
        """The logits' learned bias (SigLIP), or None."""
        return None

    def cosines(self, logits: torch.Tensor) -> torch.Tensor:
        """Video-text cosine similarities from logits (``logits = scale * cosine (+ bias)``)."""
        bias = self.logit_bias_value()
        logits = logits.float()
        if bias is not None:
            logits = logits - bias.float()
        return logits / self.logit_scale_module().float()


# --------------------------------------------------------------------------------------------------------------
# transformers' models behind the interface


class _WrappedVideoTextModel(VideoTextModelMixin, nn.Module):
    """Common part of the wrappers: device / dtype / config / saving of the transformers model ``self.model``."""

    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    capabilities: VideoTextCapabilities  # set by each wrapper's __init__

    def __init__(self, model: nn.Module, family: ModelFamily) -> None:
        super().__init__()
        self.model = model
        self.family = family

    @property
    def config(self):
        return self.model.config

    @property
    def name_or_path(self) -> str:
        return getattr(self.model, "name_or_path", "") or ""

    @name_or_path.setter
    def name_or_path(self, value: str) -> None:
        self.model.name_or_path = value

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def can_generate(self) -> bool:
        return False

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save the transformers model (a plain checkpoint of its class; the pooling and frame count are in its
        config)."""
        self.model.save_pretrained(save_directory, **kwargs)

    @property
    def num_frames(self) -> int:
        return int(getattr(self.config, "video_text_num_frames", None) or DEFAULT_FRAMES)

    def get_text_features(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_dict: Any = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        kwargs.pop("output_hidden_states", None)
        out = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return BaseModelOutputWithPooling(pooler_output=_pooled(out))

    def get_logits(
        self, video_embeds: torch.Tensor, text_embeds: torch.Tensor, prompt_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """X-CLIP's method name: ``(logits (B, K), normalised text embeddings (B, K, D))``."""
        video = video_embeds / video_embeds.norm(p=2, dim=-1, keepdim=True)
        text = text_embeds / text_embeds.norm(p=2, dim=-1, keepdim=True)
        logits = (video @ text.T.to(video.dtype)) * self.logit_scale_module().to(video.dtype)
        bias = self.logit_bias_value()
        if bias is not None:
            logits = logits + bias.to(logits.dtype)
        return logits, text.unsqueeze(0).expand(video.shape[0], -1, -1)

    def multi_label_logits(self, logits_per_video: torch.Tensor) -> torch.Tensor:
        """Logits whose sigmoid is each label's probability: a head fitted by `hf-xclip calibrate` when the config
        has one, else the model's own logits (SigLIP's are trained as such; CLIP's are not calibrated)."""
        scale = getattr(self.config, "multi_label_scale", None)
        if scale is None:
            return logits_per_video
        cosine = self.cosines(logits_per_video)
        return scale * cosine + float(getattr(self.config, "multi_label_bias", 0.0) or 0.0)

    def forward(
        self, input_ids=None, pixel_values=None, attention_mask=None, text_embeds=None, return_dict=None, **kwargs
    ):
        """``logits_per_video`` (B, K) and ``logits_per_text`` of videos against texts (`input_ids`, or encoded
        `text_embeds` (K, D) as `XClipModel.forward` takes them)."""
        video = self.encode_videos(pixel_values)
        if text_embeds is None:
            text_embeds = self.encode_texts(input_ids, attention_mask)
        logits = self.score(video, text_embeds)
        return ModelOutput(
            logits_per_video=logits, logits_per_text=logits.T, video_embeds=video.pooler_output, text_embeds=text_embeds
        )


class ImageTextVideoModel(_WrappedVideoTextModel):
    """An image-text model (`CLIPModel`, `MetaClip2Model`, `SiglipModel`, `Siglip2Model`) run on videos the
    ViFi-CLIP way: each frame through the image tower, the frame embeddings pooled over time.

    Pixel values are (B, T, 3, S, S) from the family's image processor per frame; for SigLIP 2 (NaFlex patches)
    (B, T, P + 1, C) where the last row of each frame holds its patch grid (height, width) (see
    `hf_xclip.processing_video_text`).

    Args:
        model: the transformers model.
        family: its [`ModelFamily`].
        pooling: ``"mean"`` / ``"max"``; default ``config.video_text_pooling`` or ``"mean"``. Recorded in the config.
        num_frames: frames per clip; default ``config.video_text_num_frames`` or 8. Recorded in the config.
    """

    def __init__(
        self, model: nn.Module, family: ModelFamily, pooling: str | None = None, num_frames: int | None = None
    ):
        super().__init__(model, family)
        pooling = pooling or getattr(model.config, "video_text_pooling", None) or DEFAULT_POOLING
        if pooling not in POOLINGS:
            raise ValueError(f"video_text_pooling must be one of {POOLINGS}, got {pooling!r}.")
        model.config.video_text_pooling = pooling
        if num_frames is not None:
            model.config.video_text_num_frames = int(num_frames)
        elif getattr(model.config, "video_text_num_frames", None) is None:
            model.config.video_text_num_frames = DEFAULT_FRAMES
        _set_vision_frames(model.config, self.num_frames)
        self.capabilities = VideoTextCapabilities(
            family=family.name,
            scores=family.scores,
            logit_bias=family.scores == "sigmoid",
            frame_pooling=pooling,
            pad_texts_to=_siglip_text_length(model.config) if family.name in ("siglip", "siglip2") else None,
        )

    @property
    def embed_dim(self) -> int:
        """Size of the text and video embeddings."""
        return int(getattr(self.config, "projection_dim", None) or self.config.vision_config.hidden_size)

    @property
    def pooling(self) -> str:
        return self.config.video_text_pooling

    def logit_scale_module(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    def logit_bias_value(self) -> torch.Tensor | None:
        return self.model.logit_bias if self.capabilities.logit_bias else None

    def get_frame_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, D) projected embeddings of every frame (`get_image_features(...).pooler_output`)."""
        batch, frames = pixel_values.shape[:2]
        flat = pixel_values.reshape(batch * frames, *pixel_values.shape[2:])
        if self.family.name == "siglip2":
            out = self.model.get_image_features(**unpack_siglip2_patches(flat))
        else:
            out = self.model.get_image_features(pixel_values=flat)
        embeds = _pooled(out)
        return embeds.reshape(batch, frames, -1)

    def get_video_features(
        self, pixel_values: torch.Tensor, output_prompt_features: bool = False, return_dict: Any = None, **kwargs: Any
    ) -> VideoTextVideoOutput:
        frames = self.get_frame_features(pixel_values)
        video = frames.mean(dim=1) if self.pooling == "mean" else frames.amax(dim=1)
        return VideoTextVideoOutput(pooler_output=video, frame_embeds=frames)


class NativeVideoTextModel(_WrappedVideoTextModel):
    """A model with a video tower (`VideoPrismClipModel`, or any model with `get_video_features` and
    `get_text_features`): ``logits = video_embeds @ text_embeds.T / temperature``, the model's forward (its
    embeddings are L2-normalised by the model; ``config.video_text_temperature``, default 1.0 as the forward's
    ``temperature=None``). Pixel values are (B, T, 3, H, W)."""

    def __init__(self, model: nn.Module, family: ModelFamily, temperature: float | None = None):
        super().__init__(model, family)
        if temperature is not None:
            model.config.video_text_temperature = float(temperature)
        self.capabilities = VideoTextCapabilities(family=family.name, scores=family.scores)

    @property
    def embed_dim(self) -> int:
        return int(self.config.vision_config.hidden_size)

    @property
    def temperature(self) -> float:
        return float(getattr(self.config, "video_text_temperature", None) or 1.0)

    @property
    def num_frames(self) -> int:
        given = getattr(self.config, "video_text_num_frames", None)
        vision = getattr(self.config, "vision_config", None)
        return int(given or getattr(vision, "num_frames", None) or DEFAULT_FRAMES)

    def logit_scale_module(self) -> torch.Tensor:
        return torch.tensor(1.0 / self.temperature, device=self.device)

    def get_video_features(
        self, pixel_values: torch.Tensor, output_prompt_features: bool = False, return_dict: Any = None, **kwargs: Any
    ) -> VideoTextVideoOutput:
        interpolate = pixel_values.shape[1] != self.num_frames or None
        extra = {"interpolate_pos_encoding": True} if interpolate else {}
        out = _pooled(self.model.get_video_features(pixel_values_videos=pixel_values, **extra))
        return VideoTextVideoOutput(pooler_output=out.reshape(out.shape[0], -1))  # VideoPrism: (B, 1, D)

    def get_logits(
        self, video_embeds: torch.Tensor, text_embeds: torch.Tensor, prompt_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own similarity (no extra normalisation: its towers L2-normalise), divided by the
        temperature."""
        logits = (video_embeds @ text_embeds.T.to(video_embeds.dtype)) / self.temperature
        return logits, text_embeds.unsqueeze(0).expand(video_embeds.shape[0], -1, -1)

    def cosines(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float() * self.temperature


def _pooled(out: Any) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _set_vision_frames(config: Any, num_frames: int) -> None:
    """``config.vision_config.num_frames`` (what X-CLIP tools read for the default clip length), kept out of the
    saved file."""
    vision = getattr(config, "vision_config", None)
    if vision is not None:
        object.__setattr__(vision, "num_frames", num_frames)


def _siglip_text_length(config: Any) -> int:
    return int(getattr(config.text_config, "max_position_embeddings", 64) or 64)


def unpack_siglip2_patches(packed: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N, P + 1, C) packed SigLIP 2 frames -> ``pixel_values`` (N, P, C), ``pixel_attention_mask`` (N, P),
    ``spatial_shapes`` (N, 2): the last row of each frame holds its patch grid (height, width); the first
    ``height * width`` patches are real, the rest padding (as `Siglip2ImageProcessor` lays them out)."""
    pixel_values = packed[:, :-1]
    shapes = packed[:, -1, :2].round().long()
    positions = torch.arange(pixel_values.shape[1], device=packed.device)
    mask = (positions[None, :] < (shapes[:, 0] * shapes[:, 1])[:, None]).long()
    return {"pixel_values": pixel_values, "pixel_attention_mask": mask, "spatial_shapes": shapes}


def wrap_video_text_model(model: Any, family: ModelFamily | None = None, **options: Any) -> _WrappedVideoTextModel:
    """A transformers model object behind the interface: image-text models by frame pooling, video-text models
    through their video tower.

    Raises:
        UnsupportedModelError: no text side, or neither image nor video features.
    """
    if isinstance(model, _WrappedVideoTextModel):
        return model
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if family is None:
        try:
            family = family_for_model_type(model_type)
        except UnsupportedModelError:
            if not (hasattr(model, "get_video_features") and hasattr(model, "get_text_features")):
                raise
            family = ModelFamily(str(model_type), (str(model_type),), "video", type(model).__name__)
    if family.kind == "frames":
        return ImageTextVideoModel(model, family, **options)
    if family.kind == "video":
        return NativeVideoTextModel(model, family, **options)
    raise UnsupportedModelError(f"{type(model).__name__} ({family.name}) is loaded as XClipModel, not wrapped.")


def load_transformers_video_text_model(
    name_or_path: str | os.PathLike, family: ModelFamily, **kwargs: Any
) -> _WrappedVideoTextModel:
    """Load a checkpoint of an image-text or video-text family with its transformers class, behind the interface.
    ``video_text_pooling`` / ``video_text_num_frames`` / ``video_text_temperature`` in `kwargs` set the options."""
    import transformers

    options = {}
    for key, option in (
        ("video_text_pooling", "pooling"),
        ("video_text_num_frames", "num_frames"),
        ("video_text_temperature", "temperature"),
    ):
        if key in kwargs:
            options[option] = kwargs.pop(key)
    for key in ("_from_pipeline", "_from_auto", "trust_remote_code"):
        kwargs.pop(key, None)
    if family.model_class is None:  # X-CLIP loads as XClipModel, never through here
        raise ValueError(f"the {family.name} family names no transformers class to load {os.fspath(name_or_path)!r}")
    model_class = getattr(transformers, family.model_class)
    model = model_class.from_pretrained(name_or_path, **kwargs)
    model.eval()
    return wrap_video_text_model(model, family, **options)


__all__ = [
    "DEFAULT_POOLING",
    "FAMILIES",
    "ImageTextVideoModel",
    "ModelFamily",
    "NativeVideoTextModel",
    "POOLINGS",
    "UnsupportedModelError",
    "VideoTextCapabilities",
    "VideoTextModelMixin",
    "VideoTextVideoOutput",
    "family_by_name",
    "family_for_model_type",
    "load_transformers_video_text_model",
    "model_family",
    "read_model_type",
    "supported_families",
    "unpack_siglip2_patches",
    "wrap_video_text_model",
]

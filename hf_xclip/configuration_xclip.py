"""Configurations of hf_xclip's X-CLIP models.

Field names are those of transformers' `XCLIPTextConfig`, `XCLIPVisionConfig` and `XCLIPConfig`, so a
`config.json` written by transformers (model_type `xclip`) is read as is. The differences that matter:

* attention heads of the multi-frame integration transformer (MIT) and of the prompt generator default to
  ``width // 64`` as in the original X-CLIP (transformers defaults both to 8, which is only right for width 512);
* a config read from transformers' `xclip` format whose MIT / prompt heads still hold that default 8 for a width
  other than 512 is corrected to ``width // 64`` (with a warning), because that is what the released weights
  were trained with;
* text EOS pooling uses ``eos_token_id`` (first occurrence), which equals the original ``argmax(input_ids)`` for
  CLIP ids but keeps working when tokens are added to the vocabulary;
* options for the ViFi-CLIP family: no message tokens (``use_cross_frame_attention``), mean pooling instead of
  the MIT (``video_pooling="mean"``) and no prompt generator (``use_prompt_generator``);
* learned prompt tokens (IVLP, ViFi-CLIP's "bridge and prompt"): ``num_prompt_tokens`` / ``prompt_depth`` of the
  text config (context vectors after the start token and deep text prompts) and of the vision config (tokens after
  the patch tokens and deep vision prompts). Both are 0 by default: no parameter, no checkpoint key.
"""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.utils import logging

from .utils import check_positive_int

logger = logging.get_logger(__name__)

# transformers' XCLIP configs ship these defaults; we only rewrite them when they contradict the widths.
_TRANSFORMERS_DEFAULT_HEADS = 8
_LEGACY_TRANSFORMERS_EOS = 2


def heads_for_width(width: int) -> int:
    """Number of heads the original X-CLIP uses for a transformer of this width (``width // 64``, at least 1)."""
    return max(1, width // 64)


def _check_divisible(width: int, heads: int, width_name: str, heads_name: str) -> None:
    if heads <= 0:
        raise ValueError(f"`{heads_name}` must be positive, got {heads}.")
    if width % heads != 0:
        raise ValueError(f"`{width_name}` ({width}) must be divisible by `{heads_name}` ({heads}).")


def _check_positive(config: PreTrainedConfig, *names: str) -> None:
    for name in names:
        check_positive_int(getattr(config, name), name)


def _check_prompts(config: PreTrainedConfig) -> None:
    """`num_prompt_tokens` >= 0 and, with tokens, 1 <= `prompt_depth` <= `num_hidden_layers`."""
    if config.num_prompt_tokens < 0:
        raise ValueError(f"`num_prompt_tokens` must be >= 0, got {config.num_prompt_tokens}.")
    if config.num_prompt_tokens and not 1 <= config.prompt_depth <= config.num_hidden_layers:
        raise ValueError(
            f"`prompt_depth` must be between 1 and num_hidden_layers ({config.num_hidden_layers}), got "
            f"{config.prompt_depth}."
        )


@strict
class XClipTextConfig(PreTrainedConfig):
    r"""Configuration of [`XClipTextModel`], the CLIP text transformer of X-CLIP.

    Args:
        vocab_size: size of the token vocabulary.
        hidden_size: width of the text transformer.
        intermediate_size: width of the MLP.
        num_hidden_layers: number of transformer layers.
        num_attention_heads: number of attention heads (the original uses ``hidden_size // 64``).
        max_position_embeddings: maximum sequence length (77 for CLIP).
        hidden_act: activation of the MLP (``"quick_gelu"`` for CLIP).
        layer_norm_eps: epsilon of every LayerNorm.
        eos_token_id: id whose first occurrence is pooled. With CLIP ids this equals the original
            ``argmax(input_ids)``; rows without it fall back to the argmax.
        num_prompt_tokens: learned context vectors inserted after the start token of every text (CoOp / IVLP text
            prompts; original ViFi-CLIP: `prompt_learner.ctx`). 0: none.
        prompt_depth: text layers whose input carries learned prompts: the context before layer 0, and layers
            1..prompt_depth-1 replace the context positions by their own (deep prompts). Used with
            ``num_prompt_tokens``.

    Example:

    ```python
    >>> from hf_xclip import XClipTextConfig
    >>> XClipTextConfig(hidden_size=64, num_attention_heads=1).num_attention_heads
    1
    ```
    """

    model_type = "hf_xclip_text_model"
    base_config_key = "text_config"

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: float | int = 0.0
    initializer_range: float = 0.02
    initializer_factor: float = 1.0
    pad_token_id: int | None = 1
    bos_token_id: int | None = 49406
    eos_token_id: int | list[int] | None = 49407
    num_prompt_tokens: int = 0
    prompt_depth: int = 1

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.check_architecture()

    def check_architecture(self) -> None:
        """Raise `ValueError` naming the field when the sizes cannot build a model."""
        _check_positive(self, "hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size")
        _check_divisible(self.hidden_size, self.num_attention_heads, "hidden_size", "num_attention_heads")
        _check_prompts(self)
        if self.num_prompt_tokens >= self.max_position_embeddings - 1:
            raise ValueError(
                f"`num_prompt_tokens` ({self.num_prompt_tokens}) leaves no room for a class name in "
                f"max_position_embeddings ({self.max_position_embeddings})."
            )


@strict
class XClipVisionConfig(PreTrainedConfig):
    r"""Configuration of [`XClipVisionModel`] (the cross-frame communication ViT) and of the MIT.

    Args:
        hidden_size: width of the vision transformer.
        intermediate_size: width of its MLP.
        num_hidden_layers: number of vision transformer layers.
        num_attention_heads: heads of the frame self-attention and of the message attention.
        mit_hidden_size: width of the multi-frame integration transformer (must equal ``projection_dim``).
        mit_intermediate_size: width of the MIT's MLP.
        mit_num_hidden_layers: number of MIT layers (1 in every released checkpoint).
        mit_num_attention_heads: MIT heads; ``None`` means ``mit_hidden_size // 64`` as in the original.
        image_size: input resolution.
        patch_size: ViT patch size.
        num_frames: frames the MIT position embedding was trained for. Inputs may have any number of frames:
            the cross-frame attention groups frames by the input's T and the MIT position embedding is
            interpolated when T differs.
        use_cross_frame_attention: message tokens in every layer (X-CLIP). ``False`` gives a plain CLIP ViT
            applied per frame (ViFi-CLIP).
        drop_path_rate: stochastic depth of the message attention (training only).
        num_prompt_tokens: learned prompt tokens appended after the patch tokens of every frame (VPT / IVLP vision
            prompts; original ViFi-CLIP: `image_encoder.VPT`). 0: none.
        prompt_depth: vision layers whose input carries learned prompts: the appended tokens before layer 0, and
            layers 1..prompt_depth-1 replace them by their own (deep prompts). Used with ``num_prompt_tokens``.
    """

    model_type = "hf_xclip_vision_model"
    base_config_key = "vision_config"

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mit_hidden_size: int = 512
    mit_intermediate_size: int = 2048
    mit_num_hidden_layers: int = 1
    mit_num_attention_heads: int | None = None
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 32
    num_frames: int = 8
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: float | int = 0.0
    initializer_range: float = 0.02
    initializer_factor: float = 1.0
    drop_path_rate: float | int = 0.0
    use_cross_frame_attention: bool = True
    num_prompt_tokens: int = 0
    prompt_depth: int = 1

    def __post_init__(self, **kwargs):
        if isinstance(self.image_size, (list, tuple)):
            self.image_size = int(self.image_size[0])
        if isinstance(self.patch_size, (list, tuple)):
            self.patch_size = int(self.patch_size[0])
        if self.mit_num_attention_heads is None:
            self.mit_num_attention_heads = heads_for_width(self.mit_hidden_size)
        super().__post_init__(**kwargs)
        self.check_architecture()

    def check_architecture(self) -> None:
        """Raise `ValueError` naming the field when the sizes cannot build a model."""
        _check_positive(
            self, "hidden_size", "num_hidden_layers", "intermediate_size", "image_size", "patch_size", "num_frames"
        )
        _check_positive(self, "mit_hidden_size", "mit_intermediate_size")
        if self.mit_num_hidden_layers < 0:
            raise ValueError(f"`mit_num_hidden_layers` must be >= 0, got {self.mit_num_hidden_layers}.")
        _check_divisible(self.hidden_size, self.num_attention_heads, "hidden_size", "num_attention_heads")
        _check_divisible(
            self.mit_hidden_size, self.mit_num_attention_heads, "mit_hidden_size", "mit_num_attention_heads"
        )
        if self.image_size % self.patch_size != 0:
            raise ValueError(f"`image_size` ({self.image_size}) must be divisible by `patch_size` ({self.patch_size}).")
        _check_prompts(self)


@strict
class XClipConfig(PreTrainedConfig):
    r"""Configuration of [`XClipModel`]: text and vision configs plus the video-specific prompt generator.

    Args:
        text_config: dict or [`XClipTextConfig`].
        vision_config: dict or [`XClipVisionConfig`].
        projection_dim: width of the joint embedding space (also the MIT and prompt generator width).
        prompt_layers: layers of the video-specific prompt generator (2 in every released checkpoint).
        prompt_alpha: initial value of the prompt generator's per-channel scale.
        prompt_num_attention_heads: heads of the prompt generator's cross-attention; ``None`` means
            ``projection_dim // 64`` as in the original.
        logit_scale_init_value: initial ``log`` of the logit scale (``log(1 / 0.07)``).
        video_pooling: ``"mit"`` (X-CLIP) or ``"mean"`` (average of the projected frame embeddings, ViFi-CLIP).
        use_prompt_generator: add the video-specific prompts to the text embeddings (X-CLIP).
        label_smoothing: label smoothing of the cross-entropy used when integer ``labels`` are given.
        multi_label_scale: scale ``s`` of the sigmoid head: an independent probability per label,
            ``sigmoid(s * cosine + b)`` (SigLIP's learned scale and bias on X-CLIP's video-label cosine). ``None``
            (default, every converted checkpoint): the model has no head, its outputs are unchanged, and float
            (multi-label) ``labels`` train on the plain logits. Set by multi-label training or `hf-xclip calibrate`.
        multi_label_bias: bias ``b`` of the sigmoid head.
        multi_label_threshold: probability at or above which the sigmoid head's labels count as present, fitted by
            `hf-xclip calibrate` (best F1 on its clips); used when no threshold is given. ``None``: none fitted.
        multi_label_thresholds: label -> its own fitted threshold (labels with enough positive calibration clips);
            other labels use ``multi_label_threshold``.

    Example:

    ```python
    >>> from hf_xclip import XClipConfig
    >>> config = XClipConfig(projection_dim=768, vision_config={"mit_hidden_size": 768})
    >>> config.prompt_num_attention_heads, config.vision_config.mit_num_attention_heads
    (12, 12)
    ```
    """

    model_type = "hf_xclip"
    sub_configs_defaults = {"text_config": XClipTextConfig, "vision_config": XClipVisionConfig}

    text_config: dict | XClipTextConfig | None = None
    vision_config: dict | XClipVisionConfig | None = None
    projection_dim: int = 512
    prompt_layers: int = 2
    prompt_alpha: float = 0.1
    prompt_hidden_act: str = "quick_gelu"
    prompt_num_attention_heads: int | None = None
    prompt_attention_dropout: float | int = 0.0
    prompt_projection_dropout: float | int = 0.0
    logit_scale_init_value: float = 2.6592
    initializer_factor: float = 1.0
    video_pooling: Literal["mit", "mean"] = "mit"
    use_prompt_generator: bool = True
    label_smoothing: float = 0.0
    multi_label_scale: float | int | None = None
    multi_label_bias: float | int = 0.0
    multi_label_threshold: float | int | None = None
    multi_label_thresholds: dict | None = None

    def __post_init__(self, **kwargs):
        if self.prompt_num_attention_heads is None:
            self.prompt_num_attention_heads = heads_for_width(self.projection_dim)
        super().__post_init__(**kwargs)
        self.check_architecture()

    def check_architecture(self) -> None:
        """Raise `ValueError` naming the field when the sizes cannot build a model."""
        _check_positive(self, "projection_dim")
        if self.prompt_layers < 0:
            raise ValueError(f"`prompt_layers` must be >= 0, got {self.prompt_layers}.")
        _check_divisible(
            self.projection_dim, self.prompt_num_attention_heads, "projection_dim", "prompt_num_attention_heads"
        )
        vision = self.vision_config
        if self.video_pooling == "mit" and vision is not None and vision.mit_hidden_size != self.projection_dim:
            raise ValueError(
                f"`vision_config.mit_hidden_size` ({vision.mit_hidden_size}) must equal `projection_dim` "
                f"({self.projection_dim}): the MIT runs on the projected frame embeddings."
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), got {self.label_smoothing}.")
        if self.multi_label_scale is not None and not self.multi_label_scale > 0:
            raise ValueError(
                f"`multi_label_scale` must be positive (or None: no sigmoid head), got {self.multi_label_scale}."
            )
        thresholds = [self.multi_label_threshold, *(self.multi_label_thresholds or {}).values()]
        if any(value is not None and not 0.0 <= value <= 1.0 for value in thresholds):
            raise ValueError(f"`multi_label_threshold(s)` must be probabilities in [0, 1], got {thresholds}.")

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        if config_dict.get("model_type") == "xclip":
            config_dict = transformers_xclip_dict_to_hf_xclip(config_dict)
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        config_dict, kwargs = cls.get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") not in (None, "xclip", cls.model_type):
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a `{config_dict['model_type']}` config, not an X-CLIP one "
                f"(`{cls.model_type}` or transformers' `xclip`)."
            )
        return cls.from_dict(config_dict, **kwargs)


def _fix_default_heads(section: dict, width_key: str, heads_key: str, where: str) -> None:
    width = section.get(width_key)
    heads = section.get(heads_key)
    if width is None:
        return
    if heads is None or (heads == _TRANSFORMERS_DEFAULT_HEADS and width % 64 == 0 and width // 64 != heads):
        if heads is not None:
            logger.warning(
                f"{where}.{heads_key}={heads} is transformers' default, not what the original X-CLIP uses for width "
                f"{width}; using {heads_for_width(width)} heads (width // 64) instead."
            )
        section[heads_key] = heads_for_width(width)


def transformers_xclip_dict_to_hf_xclip(config_dict: dict) -> dict:
    """Turn a transformers `xclip` config dict into an hf_xclip one (model types and head defaults)."""
    config_dict = dict(config_dict)
    config_dict["model_type"] = XClipConfig.model_type
    text = dict(config_dict.get("text_config") or {})
    vision = dict(config_dict.get("vision_config") or {})
    text["model_type"] = XClipTextConfig.model_type
    if text.get("eos_token_id", _LEGACY_TRANSFORMERS_EOS) == _LEGACY_TRANSFORMERS_EOS:
        # transformers' X-CLIP pools with argmax(input_ids) and carries eos 2; CLIP's EOT is the last id of the vocab.
        text["eos_token_id"] = text.get("vocab_size", 49408) - 1
    vision["model_type"] = XClipVisionConfig.model_type
    vision.setdefault("mit_hidden_size", 512)
    _fix_default_heads(vision, "mit_hidden_size", "mit_num_attention_heads", "vision_config")
    config_dict.setdefault("projection_dim", 512)
    _fix_default_heads(config_dict, "projection_dim", "prompt_num_attention_heads", "config")
    for key in ("text_config_dict", "vision_config_dict"):
        config_dict.pop(key, None)
    config_dict["text_config"] = text
    config_dict["vision_config"] = vision
    architectures = config_dict.get("architectures") or []
    config_dict["architectures"] = [a.replace("XCLIP", "XClip") for a in architectures] or None
    return config_dict


__all__ = ["XClipConfig", "XClipTextConfig", "XClipVisionConfig", "heads_for_width"]

"""X-CLIP models: CLIP extended to video (Ni et al., "Expanding Language-Image Pretrained Models for General Video
Recognition", ECCV 2022).

Module and parameter names follow transformers' `XCLIPModel`, so its checkpoints (and the Hub's `microsoft/xclip-*`
repositories) load unchanged. Each class names the class of the original implementation (microsoft/VideoX, X-CLIP)
that it corresponds to. What this port adds over transformers': any number of frames (cross-frame attention grouped
by the input's T, interpolated MIT positions), class-label and multi-label losses, reusable text embeddings, EOS
pooling that survives added tokens, peft-reachable `prompts_visual_projection` / `logit_scale`, and heads of the MIT
and prompt generator inferred from widths as in the original.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
from .modeling_prompts import (
    PromptContextAdapterMixin,
    XClipDeepPrompts,
    XClipPromptContext,
    XClipVisionPrompts,
    find_eos_positions,
)
from .modeling_video_text import VideoTextCapabilities, VideoTextModelMixin


def _to_nested_tuple(output: ModelOutput) -> tuple[Any, ...]:
    """`ModelOutput.to_tuple`, with nested outputs (text / vision / MIT) turned into tuples too, as transformers'
    `XCLIPOutput.to_tuple` does."""
    return tuple(value.to_tuple() if isinstance(value, ModelOutput) else value for value in output.values())


@dataclass
class XClipOutput(ModelOutput):
    r"""Output of [`XClipModel.forward`]. Fields are in the order of transformers' `XCLIPOutput`, so tuple access
    (`outputs[0]`, `return_dict=False`) gives the same tensors as transformers.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Cross-entropy over the video-to-label logits when integer `labels` (B,) are given, binary cross-entropy
            when float `labels` (B, K) are given, the symmetric video-text contrastive loss for `return_loss=True`
            without labels (B videos paired with B texts).
        logits_per_text (`torch.FloatTensor` of shape `(num_texts, batch_size)`):
            The transpose of `logits_per_video`.
        text_embeds (`torch.FloatTensor` of shape `(batch_size, num_texts, projection_dim)`):
            L2-normalised text embeddings after the video-specific prompts (one set per video).
        text_model_output (`BaseModelOutputWithPooling`, *optional*):
            Output of [`XClipTextModel`] (absent when `text_embeds` were given instead of `input_ids`).
        vision_model_output (`BaseModelOutputWithPooling`):
            Output of [`XClipVisionModel`] on the `batch_size * num_frames` frames.
        logits_per_video (`torch.FloatTensor` of shape `(batch_size, num_texts)`):
            Scaled cosine similarities between each video and each (video-specifically prompted) text.
        video_embeds (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            L2-normalised video embeddings (output of the MIT, or frame mean for `video_pooling="mean"`).
        mit_output (`BaseModelOutputWithPooling`, *optional*):
            Output of the multi-frame integration transformer.
    """

    loss: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None
    logits_per_video: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    mit_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return _to_nested_tuple(self)


@dataclass
class XClipVideoOutput(ModelOutput):
    r"""Output of [`XClipModel.get_video_features`]. The first four fields are those of the
    `BaseModelOutputWithPooling` transformers' `XCLIPModel.get_video_features` returns, in its order.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size * num_frames, 1 + num_patches, hidden_size)`):
            Last hidden state of the vision tower.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            Video embeddings before normalisation (the original's `video_features`).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            Hidden states of the vision tower, with `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            Attention weights of the vision tower, with `output_attentions=True`.
        frame_embeds (`torch.FloatTensor` of shape `(batch_size, num_frames, projection_dim)`):
            Projected per-frame class embeddings (the MIT's input).
        prompt_features (`torch.FloatTensor` of shape `(batch_size, num_patches, projection_dim)`, *optional*):
            Frame-averaged, projected patch tokens the prompt generator attends to; computed when asked for.
        vision_model_output (`BaseModelOutputWithPooling`):
            Output of [`XClipVisionModel`].
        mit_output (`BaseModelOutputWithPooling`, *optional*):
            Output of the multi-frame integration transformer.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    frame_embeds: torch.FloatTensor | None = None
    prompt_features: torch.FloatTensor | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None
    mit_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return _to_nested_tuple(self)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention on (batch, heads, length, head_dim) inputs; returns (batch, length, heads, head_dim)."""
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def _attention_interface(config: Any) -> Callable:
    return ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)


class XClipDropPath(nn.Module):
    """Stochastic depth per sample (original: `timm.models.layers.DropPath`); identity at inference."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        mask = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * mask / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class XClipAttention(nn.Module):
    """Multi-head self-attention (original: `nn.MultiheadAttention` with a fused `in_proj`, split into q/k/v here).

    `config` only provides the attention implementation (`eager`, `sdpa`, `flash_attention_2`, ...).
    """

    def __init__(self, config: Any, embed_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.dropout = dropout
        self.is_causal = False
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        queries = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        keys = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        values = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        attn_output, attn_weights = _attention_interface(self.config)(
            self,
            queries,
            keys,
            values,
            attention_mask,
            scaling=self.scale,
            dropout=self.dropout if self.training else 0.0,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.out_proj(attn_output), attn_weights


class XClipMLP(nn.Module):
    """Transformer MLP (original: `mlp` with `c_fc`, QuickGELU, `c_proj`)."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str) -> None:
        super().__init__()
        self.activation_fn = ACT2FN[hidden_act]
        self.quick_gelu = hidden_act == "quick_gelu"
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.fc1(hidden_states)
        if self.quick_gelu and not (torch.is_grad_enabled() and hidden_states.requires_grad):
            # QuickGELU's own operations (x * sigmoid(1.702 * x)), done in place: two (tokens, intermediate_size)
            # buffers alive at once instead of three, which is the peak of an inference forward.
            hidden_states = hidden_states.mul_((hidden_states * 1.702).sigmoid_())
        else:
            hidden_states = self.activation_fn(hidden_states)
        return self.fc2(hidden_states)


class XClipEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block of the text encoder and the MIT (original: `ResidualAttentionBlock`)."""

    def __init__(
        self,
        config: Any,
        hidden_size: int,
        intermediate_size: int,
        num_heads: int,
        hidden_act: str,
        layer_norm_eps: float,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.self_attn = XClipAttention(config, hidden_size, num_heads, attention_dropout)
        self.layer_norm1 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = XClipMLP(hidden_size, intermediate_size, hidden_act)
        self.layer_norm2 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(self.layer_norm1(hidden_states), attention_mask=attention_mask, **kwargs)
        hidden_states = hidden_states + attn_output
        del attn_output  # not needed by the MLP: free it before the MLP's peak
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class XClipVisionEncoderLayer(GradientCheckpointingLayer):
    """Vision block with cross-frame communication (original: `CrossFramelAttentionBlock`).

    Each frame's CLS token becomes a message token (`message_fc`); the T message tokens of a video attend to each
    other (`message_ln`, `message_attn`); each frame then attends over its tokens plus its message token, which is
    dropped before the MLP. Frames of one video are adjacent in the batch (batch outer, time inner) and are grouped
    by the `num_frames` of the input. Without `use_cross_frame_attention` this is a plain CLIP block.
    """

    def __init__(self, config: XClipVisionConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.use_cross_frame_attention = config.use_cross_frame_attention
        self.self_attn = XClipAttention(config, width, config.num_attention_heads, config.attention_dropout)
        self.layer_norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp = XClipMLP(width, config.intermediate_size, config.hidden_act)
        self.layer_norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        if self.use_cross_frame_attention:
            self.message_fc = nn.Linear(width, width)
            self.message_ln = nn.LayerNorm(width, eps=config.layer_norm_eps)
            self.message_attn = XClipAttention(config, width, config.num_attention_heads, config.attention_dropout)
        self.drop_path = XClipDropPath(config.drop_path_rate) if config.drop_path_rate > 0 else nn.Identity()

    def _add_message_tokens(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        batch_time, _, width = hidden_states.shape
        messages = self.message_fc(hidden_states[:, 0, :]).view(batch_time // num_frames, num_frames, width)
        messages = messages + self.drop_path(self.message_attn(self.message_ln(messages))[0])
        return torch.cat([hidden_states, messages.reshape(batch_time, 1, width)], dim=1)

    def forward(self, hidden_states: torch.Tensor, num_frames: int, **kwargs) -> torch.Tensor:
        residual = hidden_states
        if self.use_cross_frame_attention:
            hidden_states = self._add_message_tokens(hidden_states, num_frames)
        attn_output, _ = self.self_attn(self.layer_norm1(hidden_states), **kwargs)
        # The message token is dropped after the attention: add the residual to the frame's own tokens only, which
        # also keeps the result contiguous (no copy inside the next LayerNorm).
        hidden_states = residual + self.drop_path(attn_output[:, : residual.shape[1]])
        del attn_output  # not needed by the MLP: free it before the MLP's peak
        return hidden_states + self.drop_path(self.mlp(self.layer_norm2(hidden_states)))


class XClipLayerStack(nn.Module):
    """A stack of encoder layers, each preceded by its own deep prompt tokens (IVLP) when the model has them."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.gradient_checkpointing = False

    def _run_layers(
        self, hidden_states: torch.Tensor, layer_args: tuple, deep_prompts: XClipDeepPrompts | None, kwargs: dict
    ) -> BaseModelOutput:
        for index, layer in enumerate(self.layers):
            if deep_prompts is not None:  # this layer's own prompt tokens (IVLP), if it has any
                hidden_states = deep_prompts(index, hidden_states)
            hidden_states = layer(hidden_states, *layer_args, **kwargs)
        return BaseModelOutput(last_hidden_state=hidden_states)


class XClipEncoder(XClipLayerStack):
    """Stack of [`XClipEncoderLayer`] (original: `Transformer`)."""

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        deep_prompts: XClipDeepPrompts | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        return self._run_layers(inputs_embeds, (attention_mask,), deep_prompts, kwargs)


class XClipVisionEncoder(XClipLayerStack):
    """Stack of [`XClipVisionEncoderLayer`] (original: `CrossFrameCommunicationTransformer.transformer`)."""

    def __init__(self, config: XClipVisionConfig) -> None:
        super().__init__([XClipVisionEncoderLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self, inputs_embeds: torch.Tensor, num_frames: int, deep_prompts: XClipDeepPrompts | None = None, **kwargs
    ) -> BaseModelOutput:
        return self._run_layers(inputs_embeds, (num_frames,), deep_prompts, kwargs)


class XClipVisionEmbeddings(nn.Module):
    """Patch, class and position embeddings of the ViT (original: `conv1`, `class_embedding`, `positional_embedding`)."""

    def __init__(self, config: XClipVisionConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.class_embedding = nn.Parameter(torch.randn(self.embed_dim))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, self.embed_dim, kernel_size=self.patch_size, stride=self.patch_size, bias=False
        )
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Embedding(self.num_positions, self.embed_dim)
        self.register_buffer("position_ids", torch.arange(self.num_positions).expand((1, -1)), persistent=False)

    def interpolate_pos_encoding(self, height: int, width: int) -> torch.Tensor:
        """Bicubically resize the patch position grid to a `height` x `width` input."""
        position_embedding = self.position_embedding.weight.unsqueeze(0)
        class_pos, patch_pos = position_embedding[:, :1], position_embedding[:, 1:]
        side = int(math.sqrt(self.num_patches))
        patch_pos = patch_pos.reshape(1, side, side, self.embed_dim).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(
            patch_pos, size=(height // self.patch_size, width // self.patch_size), mode="bicubic", align_corners=False
        )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, self.embed_dim)
        return torch.cat((class_pos, patch_pos), dim=1)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        batch_size, _, height, width = pixel_values.shape
        if not interpolate_pos_encoding and (height != self.image_size or width != self.image_size):
            raise ValueError(
                f"pixel_values frames are {height}x{width} but the model expects {self.image_size}x{self.image_size}; "
                "resize them (the processor does) or pass `interpolate_pos_encoding=True`."
            )
        patch_embeds = self.patch_embedding(pixel_values.to(dtype=self.patch_embedding.weight.dtype))
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
        class_embeds = self.class_embedding.to(patch_embeds.dtype).expand(batch_size, 1, -1)
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        if interpolate_pos_encoding and (height != self.image_size or width != self.image_size):
            return embeddings + self.interpolate_pos_encoding(height, width)
        return embeddings + self.position_embedding(self.position_ids)


class XClipTextEmbeddings(nn.Module):
    """Token and position embeddings (original: `token_embedding`, `positional_embedding`)."""

    def __init__(self, config: XClipTextConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        seq_length = input_ids.shape[-1] if input_ids is not None else inputs_embeds.shape[-2]
        max_positions = self.position_embedding.weight.shape[0]
        if seq_length > max_positions:
            what = "input_ids have" if input_ids is not None else "inputs_embeds have"
            raise ValueError(
                f"{what} {seq_length} tokens but the text model takes at most {max_positions}; tokenize with "
                "truncation=True (and a max_length that leaves room for prompt-context or virtual tokens)."
            )
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        if inputs_embeds is None:
            inputs_embeds = self.token_embedding(input_ids)
        return inputs_embeds + self.position_embedding(position_ids)


class XClipPreTrainedModel(PromptContextAdapterMixin, PreTrainedModel):
    """Base class: weight initialisation (CLIP's scheme; the original's truncated normal for the MIT and the prompt
    generator, torch's defaults for the message modules), attention implementations, gradient checkpointing.

    Every scale comes from the config (a tower's own config for the tower's layers, as in transformers): its
    `initializer_factor` multiplies all of them (as in CLIP, the message modules' torch-default bounds included),
    the MIT uses `vision_config.initializer_range` and the prompt generator `0.02` (CLIP's token-embedding std) times
    the factor. The defaults reproduce the original's values, so a zero-init config zeroes every weight matrix."""

    config: XClipConfig
    config_class = XClipConfig
    base_model_prefix = "x_clip"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["XClipTextEmbeddings", "XClipEncoderLayer", "XClipVisionEmbeddings", "XClipVisionEncoderLayer"]

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False) -> None:
        # transformers skips modules without parameters of their own when the model is custom code (to protect
        # loaded weights from in-place init); `_init_weights` below only uses `transformers.initialization`,
        # which already skips loaded parameters, and needs those parent modules (attention, MLP, layers).
        super()._initialize_weights(module, is_custom_code=False)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        factor = getattr(self.config, "initializer_factor", 1.0)
        if isinstance(module, XClipTextEmbeddings):
            init.normal_(module.token_embedding.weight, mean=0.0, std=factor * 0.02)
            init.normal_(module.position_embedding.weight, mean=0.0, std=factor * 0.02)
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
        elif isinstance(module, XClipVisionEmbeddings):
            init.normal_(module.class_embedding, mean=0.0, std=module.embed_dim**-0.5 * factor)
            init.normal_(module.patch_embedding.weight, std=module.config.initializer_range * factor)
            init.normal_(module.position_embedding.weight, std=module.config.initializer_range * factor)
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
        elif isinstance(module, XClipAttention):
            layers = max(1, getattr(module.config, "num_hidden_layers", 1))
            in_proj_std = (module.embed_dim**-0.5) * ((2 * layers) ** -0.5) * factor
            for proj in (module.q_proj, module.k_proj, module.v_proj):
                init.normal_(proj.weight, std=in_proj_std)
            init.normal_(module.out_proj.weight, std=(module.embed_dim**-0.5) * factor)
        elif isinstance(module, XClipMLP):
            hidden = module.fc1.in_features
            init.normal_(module.fc1.weight, std=(2 * hidden) ** -0.5 * factor)
            init.normal_(module.fc2.weight, std=hidden**-0.5 * factor)
        elif isinstance(module, XClipModel):
            init.normal_(module.text_projection.weight, std=module.text_embed_dim**-0.5 * factor)
            init.normal_(module.visual_projection.weight, std=module.vision_embed_dim**-0.5 * factor)
        elif isinstance(module, XClipPromptsVisualProjection):
            init.normal_(module.weight, std=factor)  # the original's torch.randn
        elif isinstance(module, XClipLogitScale):
            init.constant_(module.logit_scale, module.init_value)
        elif isinstance(module, XClipPromptGenerator):
            init.constant_(module.alpha, module.alpha_init)
        elif isinstance(module, (XClipPromptContext, XClipVisionPrompts, XClipDeepPrompts)):
            # learned prompts sized by the config: N(0, 0.02) as the original's context vectors and VPT tokens
            for param in module.parameters(recurse=False):
                init.normal_(param, std=0.02 * factor)
        # The original initialises the MIT and the prompt generator with its own `_init_weights`
        # (truncated normal 0.02 for Linear weights and position embeddings, zero biases). Parents are
        # initialised after their children, so this overrides the CLIP scheme above for their layers.
        if isinstance(module, XClipVisionEncoderLayer) and module.use_cross_frame_attention:
            _init_like_torch_defaults(module.message_fc, module.message_attn, factor)
        if isinstance(module, XClipMultiframeIntegrationTransformer):
            std = getattr(self.config, "vision_config", self.config).initializer_range * factor
            _init_truncated_normal(module, std)
            init.trunc_normal_(module.position_embedding, std=std)
        elif isinstance(module, XClipPromptGenerator):
            _init_truncated_normal(module, 0.02 * factor)


def _init_truncated_normal(module: nn.Module, std: float) -> None:
    """The original's `_init_weights` of the MIT and the prompt generator: truncated normal Linear weights (at +-2,
    absolute, as timm's `trunc_normal_`), zero biases, unit LayerNorms."""
    for submodule in module.modules():
        if isinstance(submodule, nn.Linear):
            init.trunc_normal_(submodule.weight, std=std)
            if submodule.bias is not None:
                init.zeros_(submodule.bias)
        elif isinstance(submodule, nn.LayerNorm):
            init.ones_(submodule.weight)
            init.zeros_(submodule.bias)


def _init_like_torch_defaults(message_fc: nn.Linear, message_attn: XClipAttention, factor: float = 1.0) -> None:
    """The original creates the message modules as `nn.Linear` and `nn.MultiheadAttention` and keeps torch's
    initialisation: Kaiming-uniform Linear, Xavier-uniform over the fused (3D, D) `in_proj` with zero biases.
    Every bound is multiplied by `factor` (the config's `initializer_factor`, 1 by default)."""
    fan_in = message_fc.in_features
    # Kaiming-uniform with a = sqrt(5) is uniform(+-1 / sqrt(fan_in)), the same bound as torch's Linear bias.
    linear_bound = fan_in**-0.5 * factor
    init.uniform_(message_fc.weight, -linear_bound, linear_bound)
    init.uniform_(message_fc.bias, -linear_bound, linear_bound)
    bound = math.sqrt(6.0 / (fan_in + 3 * fan_in)) * factor
    for proj in (message_attn.q_proj, message_attn.k_proj, message_attn.v_proj):
        init.uniform_(proj.weight, -bound, bound)
        init.zeros_(proj.bias)
    init.uniform_(message_attn.out_proj.weight, -linear_bound, linear_bound)
    init.zeros_(message_attn.out_proj.bias)


def _pool_eos(last_hidden_state: torch.Tensor, input_ids: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """Hidden state at the first `eos_token_id` of each row (the original's `argmax(input_ids)` for CLIP ids, where
    EOT is the largest id); rows without it fall back to the argmax."""
    positions = find_eos_positions(input_ids.to(last_hidden_state.device), eos_token_id)
    return last_hidden_state[torch.arange(last_hidden_state.shape[0], device=last_hidden_state.device), positions]


class XClipTextModel(XClipPreTrainedModel):
    """CLIP text transformer with EOS pooling (original: `XCLIP.encode_text` without `text_projection`).

    Learned text prompts (empty by default): `prompt_context` (CoOp context vectors after the start token) and
    `deep_prompts` (IVLP: layers 1..depth-1 replace the context positions by their own vectors).
    """

    config: XClipTextConfig
    config_class = XClipTextConfig
    input_modalities = ("text",)
    _input_embed_layer = "token_embedding"
    _can_record_outputs = {
        "hidden_states": XClipEncoderLayer,
        "attentions": OutputRecorder(XClipAttention, layer_name="self_attn", index=1),
    }

    def __init__(self, config: XClipTextConfig) -> None:
        super().__init__(config)
        self.embeddings = XClipTextEmbeddings(config)
        self.encoder = XClipEncoder(
            [
                XClipEncoderLayer(
                    config,
                    config.hidden_size,
                    config.intermediate_size,
                    config.num_attention_heads,
                    config.hidden_act,
                    config.layer_norm_eps,
                    config.attention_dropout,
                )
                for _ in range(config.num_hidden_layers)
            ]
        )
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.prompt_context = XClipPromptContext(
            config.hidden_size, config.max_position_embeddings, config.num_prompt_tokens
        )
        self.deep_prompts = XClipDeepPrompts(config.hidden_size, "text", config.num_prompt_tokens, config.prompt_depth)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.token_embedding = value

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""Encode token ids (K, L).

        Args:
            input_ids (`torch.LongTensor` of shape `(num_texts, sequence_length)`):
                Token ids (CLIP tokenizer). Also used for EOS pooling when `inputs_embeds` are given.
            attention_mask (`torch.Tensor` of shape `(num_texts, sequence_length)`, *optional*):
                Padding mask; combined with the causal mask. It does not change the pooled output.
            inputs_embeds (`torch.FloatTensor` of shape `(num_texts, sequence_length, hidden_size)`, *optional*):
                Token embeddings to use instead of looking up `input_ids` (e.g. with learned context vectors).
                Without `input_ids` the last position of `attention_mask` is pooled.

        Returns:
            `BaseModelOutputWithPooling`: `last_hidden_state` (K, L, width) after the final LayerNorm and
            `pooler_output` (K, width), the EOS token's state.
        """
        if input_ids is None and inputs_embeds is None:
            raise ValueError("XClipTextModel needs `input_ids` or `inputs_embeds`.")
        if input_ids is not None and input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (num_texts, sequence_length), got {tuple(input_ids.shape)}.")
        if inputs_embeds is not None and inputs_embeds.ndim != 3:
            raise ValueError(
                f"inputs_embeds must have shape (num_texts, sequence_length, hidden_size), got {tuple(inputs_embeds.shape)}."
            )
        if input_ids is None and attention_mask is None:
            raise ValueError(
                "With `inputs_embeds` only, pass `attention_mask` (or `input_ids`) to locate the EOS token."
            )
        self.deep_prompts.check_matches(self.prompt_context.num_context, "prompt context")
        input_ids, prompted_embeds, attention_mask = self.prompt_context(
            input_ids, inputs_embeds, attention_mask, self.embeddings.token_embedding, self.config.eos_token_id
        )
        if prompted_embeds is not inputs_embeds and position_ids is not None:
            raise ValueError("`position_ids` cannot be combined with a prompt context (it lengthens every text).")
        inputs_embeds = prompted_embeds
        hidden_states = self.embeddings(input_ids=input_ids, position_ids=position_ids, inputs_embeds=inputs_embeds)
        # Positional: the fourth argument is `past_key_values` before transformers 5.24 and `cache` after (no cache).
        causal_mask = create_causal_mask(self.config, hidden_states, attention_mask, None)
        kwargs.pop("is_causal", None)
        encoder_outputs = self.encoder(
            hidden_states,
            attention_mask=causal_mask,
            deep_prompts=self.deep_prompts,
            is_causal=True,
            **kwargs,
        )
        last_hidden_state = self.final_layer_norm(encoder_outputs.last_hidden_state)
        if input_ids is not None:
            pooled = _pool_eos(last_hidden_state, input_ids, self.config.eos_token_id)
        else:
            last = attention_mask.to(last_hidden_state.device).long().cumsum(-1).argmax(-1)
            pooled = last_hidden_state[torch.arange(last_hidden_state.shape[0], device=last.device), last]
        return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state, pooler_output=pooled)


class XClipVisionModel(XClipPreTrainedModel):
    """Cross-frame communication ViT (original: `CrossFrameCommunicationTransformer` without `proj`).

    Takes `pixel_values` of shape (B, T, C, H, W), or flat frames (B*T, C, H, W) as transformers' `XCLIPVisionModel`
    does: grouped by `num_frames` when given, else by `config.num_frames` (a clear error when the frame count is not a
    multiple of it, where transformers would group frames of different videos together or fail in a reshape).
    `pooler_output` is `post_layernorm(CLS)` per frame; `last_hidden_state` is before `post_layernorm`. Learned
    vision prompt tokens (`prompt_tokens`, VPT / IVLP, and `deep_prompts` for later layers; empty by default) are
    appended after the patch tokens.
    """

    config: XClipVisionConfig
    config_class = XClipVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    _input_embed_layer = "patch_embedding"
    _can_record_outputs = {
        "hidden_states": XClipVisionEncoderLayer,
        "attentions": OutputRecorder(XClipAttention, layer_name="self_attn", index=1),
    }

    def __init__(self, config: XClipVisionConfig) -> None:
        super().__init__(config)
        self.embeddings = XClipVisionEmbeddings(config)
        self.prompt_tokens = XClipVisionPrompts(config.hidden_size, config.num_prompt_tokens)
        self.deep_prompts = XClipDeepPrompts(
            config.hidden_size, "vision", config.num_prompt_tokens, config.prompt_depth
        )
        self.pre_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = XClipVisionEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor,
        num_frames: int | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""Encode frames.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Videos; or flat frames `(batch_size * num_frames, num_channels, height, width)`, video after video.
            num_frames (`int`, *optional*):
                Frames per video for flat frames (cross-frame attention groups this many adjacent frames);
                defaults to `config.num_frames`, as in transformers.

        Returns:
            `BaseModelOutputWithPooling` with `last_hidden_state` (B*T, 1 + patches + prompt tokens, width; learned
            vision prompts, if any, come last) and `pooler_output` (B*T, width).
        """
        pixel_values, num_frames = _flatten_frames(pixel_values, num_frames, self.config)
        hidden_states = self.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
        self.deep_prompts.check_matches(self.prompt_tokens.num_tokens, "first layer's prompt tokens")
        hidden_states = self.pre_layernorm(self.prompt_tokens(hidden_states))
        encoder_outputs = self.encoder(hidden_states, num_frames, deep_prompts=self.deep_prompts, **kwargs)
        last_hidden_state = encoder_outputs.last_hidden_state
        pooled = self.post_layernorm(last_hidden_state[:, 0, :])
        return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state, pooler_output=pooled)


def _flatten_frames(
    pixel_values: torch.Tensor, num_frames: int | None, config: XClipVisionConfig
) -> tuple[torch.Tensor, int]:
    """(B*T, C, H, W) frames and T: 5-D input is flattened; flat input is grouped by `num_frames`, by default
    `config.num_frames` (transformers' convention), and must hold whole videos."""
    if not isinstance(pixel_values, torch.Tensor):
        raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
    if pixel_values.ndim == 5:
        batch_size, frames, channels, height, width = pixel_values.shape
        if num_frames is not None and num_frames != frames:
            raise ValueError(
                f"num_frames={num_frames} does not match pixel_values of shape {tuple(pixel_values.shape)}."
            )
        num_frames = frames
        pixel_values = pixel_values.reshape(batch_size * frames, channels, height, width)
    elif pixel_values.ndim == 4:
        given = num_frames is not None
        num_frames = num_frames if given else config.num_frames
        if num_frames <= 0 or pixel_values.shape[0] % num_frames != 0:
            source = "num_frames" if given else "config.num_frames"
            raise ValueError(
                f"pixel_values hold {pixel_values.shape[0]} flat frames, not a multiple of {source}={num_frames}: "
                "frames would be mixed across videos. Pass pixel_values as (batch_size, num_frames, channels, "
                "height, width), or the frames per video as `num_frames`."
            )
    else:
        raise ValueError(
            "pixel_values must have shape (batch_size, num_frames, channels, height, width), "
            f"got {tuple(pixel_values.shape)}."
        )
    if pixel_values.shape[1] != config.num_channels:
        raise ValueError(
            f"pixel_values have {pixel_values.shape[1]} channels, the model expects {config.num_channels} "
            "(layout is (batch_size, num_frames, channels, height, width))."
        )
    return pixel_values, num_frames


class XClipMultiframeIntegrationTransformer(nn.Module):
    """Temporal transformer over the projected frame embeddings (original: `MultiframeIntegrationTransformer`).

    Adds a learned (1, T, D) position embedding (linearly interpolated when the input has another number of
    frames), runs `mit_num_hidden_layers` blocks, adds the input back and averages over time.
    """

    def __init__(self, config: XClipVisionConfig) -> None:
        super().__init__()
        self.position_embedding = nn.Parameter(torch.empty(1, config.num_frames, config.mit_hidden_size))
        self.encoder = XClipEncoder(
            [
                XClipEncoderLayer(
                    config,
                    config.mit_hidden_size,
                    config.mit_intermediate_size,
                    config.mit_num_attention_heads,
                    config.hidden_act,
                    config.layer_norm_eps,
                    config.attention_dropout,
                )
                for _ in range(config.mit_num_hidden_layers)
            ]
        )

    def position_embedding_for(self, num_frames: int) -> torch.Tensor:
        """The (1, num_frames, D) position embedding: the learned one, or its linear interpolation.

        While exporting (ONNX, `torch.export`) the interpolation is always traced, so that the exported graph takes
        any number of frames; at the learned length it returns the learned embedding exactly.
        """
        if not torch.compiler.is_exporting() and num_frames == self.position_embedding.shape[1]:
            return self.position_embedding
        resized = F.interpolate(
            self.position_embedding.transpose(1, 2), size=num_frames, mode="linear", align_corners=False
        )
        return resized.transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        residual = hidden_states
        hidden_states = hidden_states + self.position_embedding_for(hidden_states.shape[1]).to(hidden_states.dtype)
        last_hidden_state = self.encoder(hidden_states, **kwargs).last_hidden_state
        last_hidden_state = last_hidden_state.to(residual.dtype) + residual
        return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state, pooler_output=last_hidden_state.mean(1))


class XClipCrossAttention(nn.Module):
    """Text-to-video cross-attention of the prompt generator (original: `MulitHeadAttention` in
    `prompt.py`): bias-free q/k/v projections, biased output projection `proj`."""

    def __init__(self, config: XClipConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.projection_dim
        self.num_heads = config.prompt_num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.is_causal = False
        self.attn_drop = config.prompt_attention_dropout
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
        self.proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.proj_drop = nn.Dropout(config.prompt_projection_dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, **kwargs) -> torch.Tensor:
        batch_size, query_length, _ = queries.shape
        key_length = keys.shape[1]
        queries = self.q_proj(queries).view(batch_size, query_length, -1, self.head_dim).transpose(1, 2)
        keys = self.k_proj(keys).view(batch_size, key_length, -1, self.head_dim).transpose(1, 2)
        values = self.v_proj(values).view(batch_size, key_length, -1, self.head_dim).transpose(1, 2)
        attn_output, _ = _attention_interface(self.config)(
            self,
            queries,
            keys,
            values,
            None,
            scaling=self.scale,
            dropout=self.attn_drop if self.training else 0.0,
        )
        attn_output = attn_output.reshape(batch_size, query_length, -1).contiguous()
        return self.proj_drop(self.proj(attn_output))


class XClipPromptGeneratorLayer(nn.Module):
    """One decoder layer of the prompt generator (original: `PromptGeneratorLayer`)."""

    def __init__(self, config: XClipConfig) -> None:
        super().__init__()
        embed_dim = config.projection_dim
        eps = config.text_config.layer_norm_eps
        self.cross_attn = XClipCrossAttention(config)
        self.norm1 = nn.LayerNorm(embed_dim, eps=eps)
        self.norm3 = nn.LayerNorm(embed_dim, eps=eps)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, embed_dim * 4),
            ACT2FN[config.prompt_hidden_act],
            nn.Dropout(config.prompt_attention_dropout),
            nn.Linear(embed_dim * 4, embed_dim),
        )

    def forward(self, hidden_states: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.cross_attn(self.norm1(hidden_states), visual, visual)
        return hidden_states + self.mlp(self.norm3(hidden_states))


class XClipPromptGenerator(nn.Module):
    """Video-specific prompt generator (original: `VideoSpecificPrompt`): text embeddings attend to the video's
    patch tokens; the result, scaled per channel by `alpha`, is added to the text embeddings."""

    def __init__(self, config: XClipConfig) -> None:
        super().__init__()
        embed_dim = config.projection_dim
        self.alpha_init = config.prompt_alpha
        self.layernorm = nn.LayerNorm(embed_dim, eps=config.vision_config.layer_norm_eps)
        self.decoder = nn.ModuleList([XClipPromptGeneratorLayer(config) for _ in range(config.prompt_layers)])
        self.alpha = nn.Parameter(torch.ones(embed_dim) * config.prompt_alpha)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        visual = self.layernorm(visual)
        for layer in self.decoder:
            text = layer(text, visual)
        return self.alpha * text


class XClipPromptsVisualProjection(nn.Module):
    """Projection of the patch tokens into the joint space (original: bare parameter `prompts_visual_proj`).

    A module (rather than a root parameter) so peft can save it (`modules_to_save`) or target its `weight`
    (`target_parameters`). `weight` keeps the original (vision_width, projection_dim) layout and is saved under the
    key `prompts_visual_projection`, as in transformers' checkpoints.
    """

    def __init__(self, vision_width: int, projection_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vision_width, projection_dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states @ self.weight.to(hidden_states.dtype)


class XClipLogitScale(nn.Module):
    """Learned log temperature (original: `logit_scale`), saved under the key `logit_scale`.

    A module so peft can save or train it; `forward()` returns `exp(logit_scale)`.
    """

    def __init__(self, init_value: float) -> None:
        super().__init__()
        self.init_value = init_value
        self.logit_scale = nn.Parameter(torch.tensor(float(init_value)))

    def forward(self) -> torch.Tensor:
        return self.logit_scale.exp()


# transformers' XCLIPModel keeps two root parameters that live in modules here (so that peft can train and save them):
# its name -> ours. Saved files use transformers' names (the conversion mapping below); `XClipModel.load_state_dict`
# accepts both.
TRANSFORMERS_PARAMETER_RENAMES: dict[str, str] = {
    "prompts_visual_projection": "prompts_visual_proj.weight",
    "logit_scale": "logit_scale_module.logit_scale",
}


def _rename_transformers_keys(state_dict: dict, prefix: str) -> None:
    """Rename transformers' `XCLIPModel` keys under `prefix` to this module's names, in place."""
    for theirs, ours in TRANSFORMERS_PARAMETER_RENAMES.items():
        if prefix + theirs not in state_dict:
            continue
        if prefix + ours in state_dict:
            raise ValueError(
                f"The state dict has both `{prefix + theirs}` (transformers' name) and `{prefix + ours}` (hf_xclip's "
                "name) for one parameter; keep one of them."
            )
        state_dict[prefix + ours] = state_dict.pop(prefix + theirs)


def _classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    if labels.is_floating_point():
        if labels.shape != logits.shape:
            raise ValueError(
                f"float labels are multi-label targets and must have shape {tuple(logits.shape)} "
                f"(batch_size, num_texts), got {tuple(labels.shape)}."
            )
        return F.binary_cross_entropy_with_logits(logits.float(), labels.to(torch.float32))
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"integer labels must have shape ({logits.shape[0]},) (one class index per video), got {tuple(labels.shape)}."
        )
    return F.cross_entropy(logits.float(), labels.to(logits.device), label_smoothing=label_smoothing)


def video_text_contrastive_loss(logits_per_video: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy for B videos paired with B texts (the i-th text describes the i-th video)."""
    if logits_per_video.shape[0] != logits_per_video.shape[1]:
        raise ValueError(
            f"The contrastive loss pairs video i with text i, so it needs as many texts as videos; got logits of shape "
            f"{tuple(logits_per_video.shape)}. For class prompts pass `labels` (class index per video) instead."
        )
    targets = torch.arange(logits_per_video.shape[0], device=logits_per_video.device)
    logits = logits_per_video.float()
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


class XClipModel(VideoTextModelMixin, XClipPreTrainedModel):
    """X-CLIP (original: `XCLIP` in `models/xclip.py`): text encoder, cross-frame vision encoder, MIT, video-specific
    prompt generator.

    Example:

    ```python
    >>> import torch
    >>> from hf_xclip import XClipConfig, XClipModel
    >>> config = XClipConfig(
    ...     projection_dim=64,
    ...     text_config={"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
    ...                  "num_attention_heads": 2, "max_position_embeddings": 16},
    ...     vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
    ...                    "image_size": 32, "patch_size": 16, "num_frames": 4, "mit_hidden_size": 64,
    ...                    "mit_intermediate_size": 128},
    ... )
    >>> model = XClipModel(config).eval()
    >>> out = model(input_ids=torch.randint(0, 99, (3, 16)), pixel_values=torch.randn(2, 6, 3, 32, 32))
    >>> out.logits_per_video.shape
    torch.Size([2, 3])
    ```
    """

    config: XClipConfig
    config_class = XClipConfig

    def __init__(self, config: XClipConfig) -> None:
        super().__init__(config)
        text_config, vision_config = config.text_config, config.vision_config
        self.projection_dim = config.projection_dim
        self.text_embed_dim = text_config.hidden_size
        self.vision_embed_dim = vision_config.hidden_size

        self.text_model = XClipTextModel(text_config)
        self.vision_model = XClipVisionModel(vision_config)
        self.visual_projection = nn.Linear(self.vision_embed_dim, self.projection_dim, bias=False)
        self.text_projection = nn.Linear(self.text_embed_dim, self.projection_dim, bias=False)
        self.logit_scale_module = XClipLogitScale(config.logit_scale_init_value)
        if config.video_pooling == "mit":
            self.mit = XClipMultiframeIntegrationTransformer(vision_config)
        if config.use_prompt_generator:
            self.prompts_visual_layernorm = nn.LayerNorm(self.vision_embed_dim, eps=vision_config.layer_norm_eps)
            self.prompts_visual_proj = XClipPromptsVisualProjection(self.vision_embed_dim, self.projection_dim)
            self.prompts_generator = XClipPromptGenerator(config)
        self.post_init()

    @property
    def capabilities(self) -> VideoTextCapabilities:
        """What the video-text model interface (`hf_xclip.modeling_video_text`) says about this model."""
        return VideoTextCapabilities(
            family="xclip",
            video_conditioned_prompts=bool(self.config.use_prompt_generator),
            clean_texts=True,
            learned_prompts=True,
            onnx_export=True,
        )

    @property
    def num_frames(self) -> int:
        """Frames per clip the model was trained with (the default of every tool)."""
        return int(cast(XClipVisionConfig, self.config.vision_config).num_frames)  # a config after __post_init__

    # transformers' attribute names, kept for code written against XCLIPModel
    @property
    def logit_scale(self) -> nn.Parameter:
        return self.logit_scale_module.logit_scale

    @property
    def prompts_visual_projection(self) -> nn.Parameter:
        return self.prompts_visual_proj.weight

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.text_model.set_input_embeddings(value)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # `load_state_dict` also takes transformers' names (`prompts_visual_projection`, `logit_scale`), so
        # `model.load_state_dict(transformers_model.state_dict())` works; torch hands each module its own copy.
        _rename_transformers_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling | tuple:
        r"""Encode texts once for any number of videos.

        Returns:
            `BaseModelOutputWithPooling` of the text model whose `pooler_output` (num_texts, projection_dim) is the
            projected text embedding before the video-specific prompts (the original's `encode_text`). Pass it as
            `text_embeds` to [`forward`] to score videos without re-encoding the texts. A tuple in that order with
            `return_dict=False` (or `config.return_dict=False`).
        """
        text_outputs = self.text_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        text_outputs.pooler_output = self.text_projection(text_outputs.pooler_output)
        return text_outputs

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        interpolate_pos_encoding: bool = False,
        output_prompt_features: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> XClipVideoOutput | tuple:
        r"""Encode videos.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Any number of frames.
            output_prompt_features (`bool`, *optional*, defaults to `False`):
                Also compute the patch features the prompt generator attends to (skipped otherwise).

        Returns:
            [`XClipVideoOutput`] whose `pooler_output` (batch_size, projection_dim) is the video embedding; a tuple
            in its field order with `return_dict=False` (or `config.return_dict=False`).
        """
        _check_video_shape(pixel_values)
        batch_size, num_frames = pixel_values.shape[:2]
        vision_outputs = self.vision_model(
            pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True, **kwargs
        )
        frame_embeds = self.visual_projection(vision_outputs.pooler_output).view(batch_size, num_frames, -1)
        mit_outputs = None
        if self.config.video_pooling == "mit":
            mit_outputs = self.mit(frame_embeds)
            video_embeds = mit_outputs.pooler_output
        else:
            video_embeds = frame_embeds.mean(dim=1)
        prompt_features = None
        if output_prompt_features and self.config.use_prompt_generator:
            patch_size = self.config.vision_config.patch_size
            num_patches = (pixel_values.shape[-2] // patch_size) * (pixel_values.shape[-1] // patch_size)
            patches = vision_outputs.last_hidden_state[:, 1 : 1 + num_patches, :]  # without learned prompt tokens
            prompt_features = self._prompt_features(patches, batch_size, num_frames)
        return XClipVideoOutput(
            last_hidden_state=vision_outputs.last_hidden_state,
            pooler_output=video_embeds,
            hidden_states=vision_outputs.hidden_states,
            attentions=vision_outputs.attentions,
            frame_embeds=frame_embeds,
            prompt_features=prompt_features,
            vision_model_output=vision_outputs,
            mit_output=mit_outputs,
        )

    def _prompt_features(self, patches: torch.Tensor, batch_size: int, num_frames: int) -> torch.Tensor:
        # The original projects every frame's patch tokens, then averages over frames; the projection is linear,
        # so averaging first gives the same result with T times fewer multiplications.
        patches = self.prompts_visual_layernorm(patches)
        patches = patches.view(batch_size, num_frames, patches.shape[1], patches.shape[2]).mean(dim=1)
        return self.prompts_visual_proj(patches)

    def get_logits(
        self, video_embeds: torch.Tensor, text_embeds: torch.Tensor, prompt_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Video-to-text logits from unnormalised embeddings.

        Args:
            video_embeds: (batch_size, projection_dim), `get_video_features(...).pooler_output`.
            text_embeds: (num_texts, projection_dim), `get_text_features(...).pooler_output`.
            prompt_features: (batch_size, num_patches, projection_dim), required with the prompt generator.

        Returns:
            `(logits_per_video, text_embeds)`: logits (batch_size, num_texts) and the normalised, video-specifically
            prompted text embeddings (batch_size, num_texts, projection_dim).
        """
        batch_size = video_embeds.shape[0]
        video = video_embeds / video_embeds.norm(p=2, dim=-1, keepdim=True)
        if not self.config.use_prompt_generator:
            # Every video sees the same texts: normalise them once and score with one matmul instead of
            # materialising batch_size copies of them.
            text = text_embeds / text_embeds.norm(p=2, dim=-1, keepdim=True)
            logits_per_video = video @ (self.logit_scale_module() * text).T
            return logits_per_video, text.unsqueeze(0).expand(batch_size, -1, -1)
        if prompt_features is None:
            raise ValueError("This model has a prompt generator: pass `prompt_features` to get_logits.")
        text = text_embeds.unsqueeze(0).expand(batch_size, -1, -1)
        text = text + self.prompts_generator(text, prompt_features)
        text = text / text.norm(p=2, dim=-1, keepdim=True)
        logits_per_video = torch.einsum("bd,bkd->bk", video, self.logit_scale_module() * text)
        return logits_per_video, text

    def multi_label_logits(self, logits_per_video: torch.Tensor) -> torch.Tensor:
        r"""Logits of the sigmoid head: ``multi_label_scale * cosine + multi_label_bias`` from `logits_per_video`
        (``logit_scale * cosine``); ``sigmoid`` of them are independent per-label probabilities. Without a head
        (``config.multi_label_scale is None``) `logits_per_video` is returned unchanged."""
        if self.config.multi_label_scale is None:
            return logits_per_video
        cosine = logits_per_video / self.logit_scale_module().to(logits_per_video.dtype)
        return self.config.multi_label_scale * cosine + self.config.multi_label_bias

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        text_embeds: torch.FloatTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> XClipOutput | tuple:
        r"""Score B videos against K texts.

        Args:
            input_ids (`torch.LongTensor` of shape `(num_texts, sequence_length)`):
                Tokenised texts (class names or captions).
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Videos with any number of frames.
            text_embeds (`torch.FloatTensor` of shape `(num_texts, projection_dim)`, *optional*):
                Precomputed `get_text_features(...).pooler_output`, used instead of `input_ids`.
            inputs_embeds (`torch.FloatTensor` of shape `(num_texts, sequence_length, hidden_size)`, *optional*):
                Token embeddings fed to the text model instead of looking up `input_ids`.
            labels (`torch.Tensor`, *optional*):
                `(batch_size,)` class indices into the K texts: cross-entropy (with `config.label_smoothing`);
                `(batch_size, num_texts)` floats in [0, 1]: multi-label binary cross-entropy on the logits (on the
                sigmoid head's logits, `multi_label_logits`, when the config has a head).
            return_loss (`bool`, *optional*):
                Without `labels`, the symmetric video-text contrastive loss (needs K == B).

        Returns:
            [`XClipOutput`]; with `return_dict=False` (or `config.return_dict=False`) the tuple of its non-`None`
            fields in transformers' order, nested outputs as tuples.
        """
        if pixel_values is None:
            raise ValueError("XClipModel.forward needs `pixel_values` of shape (batch_size, num_frames, C, H, W).")
        text_outputs = None
        if text_embeds is None:
            if input_ids is None and inputs_embeds is None:
                raise ValueError("Pass `input_ids` (tokenised texts) or precomputed `text_embeds`.")
            # `text_model_output` is the text model's own output (unprojected `pooler_output`), as in transformers.
            text_outputs = self.text_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                inputs_embeds=inputs_embeds,
                return_dict=True,
                **kwargs,
            )
            text_embeds = self.text_projection(text_outputs.pooler_output)
        elif text_embeds.ndim != 2 or text_embeds.shape[-1] != self.projection_dim:
            raise ValueError(
                f"text_embeds must have shape (num_texts, {self.projection_dim}), got {tuple(text_embeds.shape)}."
            )

        video_outputs = self.get_video_features(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_prompt_features=self.config.use_prompt_generator,
            return_dict=True,
            **kwargs,
        )
        logits_per_video, prompted_text = self.get_logits(
            video_outputs.pooler_output, text_embeds, video_outputs.prompt_features
        )
        video_embeds = video_outputs.pooler_output
        video_embeds = video_embeds / video_embeds.norm(p=2, dim=-1, keepdim=True)

        loss = None
        if labels is not None:
            scored = self.multi_label_logits(logits_per_video) if labels.is_floating_point() else logits_per_video
            loss = _classification_loss(scored, labels, self.config.label_smoothing)
        elif return_loss:
            loss = video_text_contrastive_loss(logits_per_video)

        return XClipOutput(
            loss=loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.T,
            text_embeds=prompted_text,
            video_embeds=video_embeds,
            text_model_output=text_outputs,
            vision_model_output=video_outputs.vision_model_output,
            mit_output=video_outputs.mit_output,
        )


def _check_video_shape(pixel_values: torch.Tensor) -> None:
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 5:
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(
            f"pixel_values must have shape (batch_size, num_frames, channels, height, width), got {shape}."
        )
    if pixel_values.shape[0] == 0 or pixel_values.shape[1] == 0:
        raise ValueError(f"pixel_values has an empty batch or no frames: shape {tuple(pixel_values.shape)}.")


# Checkpoint keys stay those of transformers' XCLIPModel; the two former root parameters live in modules.
register_checkpoint_conversion_mapping(
    "XClipModel",
    [WeightRenaming(theirs, ours) for theirs, ours in TRANSFORMERS_PARAMETER_RENAMES.items()],
    overwrite=True,
)

__all__ = [
    "XClipModel",
    "XClipOutput",
    "XClipPreTrainedModel",
    "XClipTextModel",
    "XClipVideoOutput",
    "XClipVisionModel",
]

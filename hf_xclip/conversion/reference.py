"""An independent functional forward pass of the original X-CLIP (and of ViFi-CLIP / CLIP per frame) that works
directly on an original-naming state dict, fused ``in_proj`` weights included.

Conversions check the converted hf_xclip model against it (`torch.testing.assert_close`); the tests check it against
the outputs of the original code itself (``shared/reference/xclip-original-tiny/expected.pt``, the ViFi-CLIP fixtures).

Learned prompts of ViFi-CLIP's prompted CLIP (IVLP) are applied as the original applies them: ``visual.VPT`` tokens
appended after the patch tokens, ``prompt_learner.ctx`` in place of the "X" tokens after SOT, and the layers'
``VPT_shallow`` replacing those positions, the vision and deep prompts rounded to fp16 (the original's ``.half()``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..configuration_xclip import heads_for_width
from .hyperparameters import layer_indices

Weights = dict[str, torch.Tensor]


def _layer_norm(x: torch.Tensor, weights: Weights, prefix: str) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], weights[prefix + "weight"], weights[prefix + "bias"], eps=1e-5)


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def _fused_attention(x: torch.Tensor, weights: Weights, prefix: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """`nn.MultiheadAttention` self-attention on (batch, length, width) with the fused `in_proj` parameters."""
    batch, length, width = x.shape
    heads = heads_for_width(width)
    qkv = F.linear(x, weights[prefix + "in_proj_weight"], weights[prefix + "in_proj_bias"])
    q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    scores = (q @ k.transpose(-2, -1)) * (width // heads) ** -0.5
    if mask is not None:
        scores = scores + mask
    out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, length, width)
    return F.linear(out, weights[prefix + "out_proj.weight"], weights[prefix + "out_proj.bias"])


def _mlp(x: torch.Tensor, weights: Weights, first: str, second: str) -> torch.Tensor:
    hidden = _quick_gelu(F.linear(x, weights[first + "weight"], weights[first + "bias"]))
    return F.linear(hidden, weights[second + "weight"], weights[second + "bias"])


def _residual_block(x: torch.Tensor, weights: Weights, prefix: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    x = x + _fused_attention(_layer_norm(x, weights, prefix + "ln_1."), weights, prefix + "attn.", mask)
    return x + _mlp(_layer_norm(x, weights, prefix + "ln_2."), weights, prefix + "mlp.c_fc.", prefix + "mlp.c_proj.")


def _cross_frame_block(x: torch.Tensor, weights: Weights, prefix: str, num_frames: int) -> torch.Tensor:
    frames, length, width = x.shape
    messages = F.linear(x[:, 0], weights[prefix + "message_fc.weight"], weights[prefix + "message_fc.bias"])
    messages = messages.reshape(frames // num_frames, num_frames, width)
    normed = _layer_norm(messages, weights, prefix + "message_ln.")
    messages = messages + _fused_attention(normed, weights, prefix + "message_attn.")
    x = torch.cat([x, messages.reshape(frames, 1, width)], dim=1)
    x = x + _fused_attention(_layer_norm(x, weights, prefix + "ln_1."), weights, prefix + "attn.")
    x = x[:, :length]
    return x + _mlp(_layer_norm(x, weights, prefix + "ln_2."), weights, prefix + "mlp.c_fc.", prefix + "mlp.c_proj.")


def _as_original_prompt(tokens: torch.Tensor, rows: int) -> torch.Tensor:
    """The original casts its vision and deep prompts with `.half()` inside the forward (then concatenates them with
    fp32 tokens, which promotes them back)."""
    return tokens.half().to(torch.float32).expand(rows, -1, -1)


def _replace(x: torch.Tensor, start: int, tokens: torch.Tensor) -> torch.Tensor:
    tokens = _as_original_prompt(tokens, x.shape[0])
    return torch.cat([x[:, :start], tokens, x[:, start + tokens.shape[1] :]], dim=1)


def encode_frames(weights: Weights, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 3, H, W) -> projected CLS per frame (B, T, D) and patch tokens before ``ln_post`` (B*T, N, width)."""
    batch, num_frames = pixel_values.shape[:2]
    conv = weights["visual.conv1.weight"]
    x = F.conv2d(pixel_values.flatten(0, 1), conv, stride=conv.shape[-1]).flatten(2).transpose(1, 2)
    cls = weights["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + weights["visual.positional_embedding"]
    num_patches = x.shape[1] - 1
    if "visual.VPT" in weights:
        x = torch.cat([x, _as_original_prompt(weights["visual.VPT"], x.shape[0])], dim=1)
    x = _layer_norm(x, weights, "visual.ln_pre.")
    cross_frame = "visual.transformer.resblocks.0.message_fc.weight" in weights
    for index in layer_indices(weights, "visual.transformer.resblocks."):
        prefix = f"visual.transformer.resblocks.{index}."
        if prefix + "VPT_shallow" in weights:
            x = _replace(x, x.shape[1] - weights[prefix + "VPT_shallow"].shape[0], weights[prefix + "VPT_shallow"])
        x = _cross_frame_block(x, weights, prefix, num_frames) if cross_frame else _residual_block(x, weights, prefix)
    frame_embeds = _layer_norm(x[:, 0], weights, "visual.ln_post.") @ weights["visual.proj"]
    return frame_embeds.reshape(batch, num_frames, -1), x[:, 1 : 1 + num_patches]


def encode_text(weights: Weights, input_ids: torch.Tensor) -> torch.Tensor:
    """(K, L) ids -> (K, D) projected EOT features (EOT = the largest id, as `argmax` in the original).

    With a learned context (``prompt_learner.ctx``, n vectors) the ids are those of the text without it (template
    ``"{}."``); the original's prompt ``[SOT] X..X name. [EOT]`` is rebuilt by inserting n placeholders after SOT
    (the texts must leave room for them), whose embeddings are the context."""
    context = weights.get("prompt_learner.ctx")
    if context is not None:
        placeholders = input_ids.new_zeros(input_ids.shape[0], context.shape[0])
        input_ids = torch.cat([input_ids[:, :1], placeholders, input_ids[:, 1:]], dim=1)[:, : input_ids.shape[1]]
    length = input_ids.shape[1]
    x = weights["token_embedding.weight"][input_ids]
    if context is not None:
        x = torch.cat([x[:, :1], context.expand(x.shape[0], -1, -1), x[:, 1 + context.shape[0] :]], dim=1)
    x = x + weights["positional_embedding"][:length]
    mask = torch.full((length, length), float("-inf"), dtype=x.dtype).triu(1)
    for index in layer_indices(weights, "transformer.resblocks."):
        prefix = f"transformer.resblocks.{index}."
        if prefix + "VPT_shallow" in weights:
            x = _replace(x, 1, weights[prefix + "VPT_shallow"])
        x = _residual_block(x, weights, prefix, mask)
    x = _layer_norm(x, weights, "ln_final.")
    return x[torch.arange(x.shape[0]), input_ids.argmax(dim=-1)] @ weights["text_projection"]


def _mit(weights: Weights, frame_embeds: torch.Tensor) -> torch.Tensor:
    x = frame_embeds + weights["mit.positional_embedding"]
    for index in layer_indices(weights, "mit.resblocks."):
        x = _residual_block(x, weights, f"mit.resblocks.{index}.")
    return (x + frame_embeds).mean(dim=1)


def _prompts(weights: Weights, text: torch.Tensor, patches: torch.Tensor, batch: int) -> torch.Tensor:
    visual = _layer_norm(patches, weights, "prompts_visual_ln.") @ weights["prompts_visual_proj"]
    visual = visual.reshape(batch, -1, visual.shape[1], visual.shape[2]).mean(dim=1)
    visual = _layer_norm(visual, weights, "prompts_generator.norm.")
    width = text.shape[-1]
    heads = heads_for_width(width)
    for index in layer_indices(weights, "prompts_generator.decoder."):
        prefix = f"prompts_generator.decoder.{index}."
        query = _layer_norm(text, weights, prefix + "norm1.")

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], t.shape[1], heads, width // heads).transpose(1, 2)

        q = split(F.linear(query, weights[prefix + "cross_attn.q_proj.weight"]))
        k = split(F.linear(visual, weights[prefix + "cross_attn.k_proj.weight"]))
        v = split(F.linear(visual, weights[prefix + "cross_attn.v_proj.weight"]))
        attended = ((q @ k.transpose(-2, -1)) * (width // heads) ** -0.5).softmax(dim=-1) @ v
        attended = attended.transpose(1, 2).reshape(text.shape)
        projection = prefix + "cross_attn.proj."
        text = text + F.linear(attended, weights[projection + "weight"], weights[projection + "bias"])
        text = text + _mlp(_layer_norm(text, weights, prefix + "norm3."), weights, prefix + "mlp.0.", prefix + "mlp.3.")
    return weights["prompts_generator.alpha"] * text


@torch.no_grad()
def original_forward(weights: Weights, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of the original model for B videos (B, T, 3, H, W) and K texts (K, L).

    Returns a dict with ``logits_per_video`` (B, K), ``video_features`` (B, D, before normalisation: the MIT
    output, or the frame mean without MIT) and ``text_features_before_prompts`` (K, D).
    """
    batch = pixel_values.shape[0]
    frame_embeds, patches = encode_frames(weights, pixel_values)
    video = _mit(weights, frame_embeds) if "mit.positional_embedding" in weights else frame_embeds.mean(dim=1)
    text_features = encode_text(weights, input_ids)
    text = text_features.unsqueeze(0).expand(batch, -1, -1)
    if "prompts_visual_proj" in weights:
        text = text + _prompts(weights, text, patches, batch)
    video_n = video / video.norm(dim=-1, keepdim=True)
    text_n = text / text.norm(dim=-1, keepdim=True)
    logits = torch.einsum("bd,bkd->bk", video_n, weights["logit_scale"].exp() * text_n)
    return {"logits_per_video": logits, "video_features": video, "text_features_before_prompts": text_features}

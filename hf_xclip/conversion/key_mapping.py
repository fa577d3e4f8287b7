"""Renaming between the original X-CLIP state dict and hf_xclip's (= transformers' `XCLIPModel`) checkpoint keys.

One regex table, :data:`ORIGINAL_TO_HF`, applied in order to every key (like transformers' newer conversion
scripts), and one helper per special case:

* :func:`split_fused_in_proj`: ``nn.MultiheadAttention`` stores q, k and v stacked by rows in ``in_proj_weight`` /
  ``in_proj_bias``; the Linear layers want three tensors;
* :data:`TRANSPOSED_KEYS`: ``visual.proj`` and ``text_projection`` are ``(in, out)`` matrices used as ``x @ W``;
  a Linear stores ``(out, in)``. ``prompts_visual_proj`` keeps its ``(vision_width, projection_dim)`` layout;
* :func:`stack_deep_prompts`: the learned prompts of ViFi-CLIP's prompted CLIP (IVLP) are stored per layer
  (``visual.transformer.resblocks.N.VPT_shallow``, ``transformer.resblocks.N.VPT_shallow`` for N = 1..depth-1);
  hf_xclip keeps one ``(depth - 1, tokens, width)`` tensor per tower. The first layer's prompts (``visual.VPT``,
  ``prompt_learner.ctx``) are renamed by the table.

:func:`original_to_hf` does the whole conversion and :func:`hf_to_original` inverts it exactly (used to build
original-format checkpoints of any shape in tests, and by `convert_clip_to_xclip` to read transformers' CLIP).
"""

from __future__ import annotations

import re

import torch

# (pattern, replacement), applied in this order with re.sub to each original key.
ORIGINAL_TO_HF: list[tuple[str, str]] = [
    # ViT (the cross-frame communication transformer)
    (r"^visual\.class_embedding$", "vision_model.embeddings.class_embedding"),
    (r"^visual\.positional_embedding$", "vision_model.embeddings.position_embedding.weight"),
    (r"^visual\.conv1\.", "vision_model.embeddings.patch_embedding."),
    (r"^visual\.ln_pre\.", "vision_model.pre_layernorm."),
    (r"^visual\.ln_post\.", "vision_model.post_layernorm."),
    (r"^visual\.proj$", "visual_projection.weight"),
    (r"^visual\.transformer\.resblocks\.", "vision_model.encoder.layers."),
    # text transformer
    (r"^token_embedding\.", "text_model.embeddings.token_embedding."),
    (r"^positional_embedding$", "text_model.embeddings.position_embedding.weight"),
    (r"^ln_final\.", "text_model.final_layer_norm."),
    (r"^text_projection$", "text_projection.weight"),
    (r"^transformer\.resblocks\.", "text_model.encoder.layers."),
    # multi-frame integration transformer
    (r"^mit\.positional_embedding$", "mit.position_embedding"),
    (r"^mit\.resblocks\.", "mit.encoder.layers."),
    # video-specific prompt generator
    (r"^prompts_visual_ln\.", "prompts_visual_layernorm."),
    (r"^prompts_visual_proj$", "prompts_visual_projection"),
    (r"^prompts_generator\.norm\.", "prompts_generator.layernorm."),
    # learned prompts of ViFi-CLIP's prompted CLIP (vision tokens after the patches, text context after SOT)
    (r"^visual\.VPT$", "vision_model.prompt_tokens.tokens"),
    (r"^prompt_learner\.ctx$", "text_model.prompt_context.context"),
    # inside every residual block (text, vision, MIT); `message_attn` and `cross_attn` keep their names
    (r"\.attn\.in_proj_(weight|bias)$", r".self_attn.in_proj_\1"),
    (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
    (r"\.ln_1\.", ".layer_norm1."),
    (r"\.ln_2\.", ".layer_norm2."),
    (r"\.mlp\.c_fc\.", ".mlp.fc1."),
    (r"\.mlp\.c_proj\.", ".mlp.fc2."),
]

# hf keys whose tensor is the transpose of the original one
TRANSPOSED_KEYS: frozenset[str] = frozenset({"visual_projection.weight", "text_projection.weight"})

# per-layer deep prompts (original) <-> one stacked tensor per tower (hf)
DEEP_PROMPTS: dict[str, str] = {
    "visual.transformer.resblocks.": "vision_model.deep_prompts.tokens",
    "transformer.resblocks.": "text_model.deep_prompts.tokens",
}
_DEEP_PROMPT = re.compile(r"^(?P<prefix>(visual\.)?transformer\.resblocks\.)(?P<index>\d+)\.VPT_shallow$")
# the text context is (n, width) in the original, (1, n, width) (one unified row) in hf_xclip
CONTEXT_KEY = "text_model.prompt_context.context"

_FUSED = re.compile(r"^(?P<prefix>.*)\.in_proj_(?P<kind>weight|bias)$")
_QKV = re.compile(r"^(?P<prefix>.*)\.(?P<proj>q|k|v)_proj\.(?P<kind>weight|bias)$")
# Only these modules are nn.MultiheadAttention in the original (the prompt generator's q/k/v are separate Linears).
_FUSED_MODULES = re.compile(r"(\.self_attn|\.message_attn)$")

# The inverse table: hf -> original. Block-internal names first, then the prefixes.
HF_TO_ORIGINAL: list[tuple[str, str]] = [
    (r"\.self_attn\.in_proj_(weight|bias)$", r".attn.in_proj_\1"),
    (r"\.self_attn\.out_proj\.", ".attn.out_proj."),
    (r"\.layer_norm1\.", ".ln_1."),
    (r"\.layer_norm2\.", ".ln_2."),
    (r"\.mlp\.fc1\.", ".mlp.c_fc."),
    (r"\.mlp\.fc2\.", ".mlp.c_proj."),
    (r"^vision_model\.embeddings\.class_embedding$", "visual.class_embedding"),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.positional_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.", "visual.conv1."),
    (r"^vision_model\.pre_lay(?:er|r)norm\.", "visual.ln_pre."),  # transformers' CLIP spells it `pre_layrnorm`
    (r"^vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"^visual_projection\.weight$", "visual.proj"),
    (r"^vision_model\.encoder\.layers\.", "visual.transformer.resblocks."),
    (r"^text_model\.embeddings\.token_embedding\.", "token_embedding."),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^text_projection\.weight$", "text_projection"),
    (r"^text_model\.encoder\.layers\.", "transformer.resblocks."),
    (r"^mit\.position_embedding$", "mit.positional_embedding"),
    (r"^mit\.encoder\.layers\.", "mit.resblocks."),
    (r"^prompts_visual_layernorm\.", "prompts_visual_ln."),
    (r"^prompts_visual_projection$", "prompts_visual_proj"),
    (r"^prompts_generator\.layernorm\.", "prompts_generator.norm."),
    (r"^vision_model\.prompt_tokens\.tokens$", "visual.VPT"),
    (r"^text_model\.prompt_context\.context$", "prompt_learner.ctx"),
]


def rename_key(key: str, table: list[tuple[str, str]] = ORIGINAL_TO_HF) -> str:
    """Apply every rule of `table` in order."""
    for pattern, replacement in table:
        key = re.sub(pattern, replacement, key)
    return key


def split_fused_in_proj(key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """``<prefix>.in_proj_weight`` (3 * width, width) -> ``<prefix>.{q,k,v}_proj.weight`` (rows 0..w, w..2w, 2w..3w)."""
    match = _FUSED.match(key)
    if match is None:
        return {key: tensor}
    if tensor.shape[0] % 3 != 0:
        raise ValueError(f"{key}: a fused q/k/v projection needs 3 * width rows, got shape {tuple(tensor.shape)}.")
    prefix, kind = match["prefix"], match["kind"]
    return {
        f"{prefix}.{proj}_proj.{kind}": chunk.clone()
        for proj, chunk in zip(("q", "k", "v"), torch.chunk(tensor, 3, dim=0))
    }


def stack_deep_prompts(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split off the per-layer ``...resblocks.N.VPT_shallow`` prompts and stack them per tower (N = 1..depth-1 in
    order, the original's layers with their own prompts). Returns (the other weights, hf key -> stacked tensor)."""
    rest: dict[str, torch.Tensor] = {}
    layers: dict[str, dict[int, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        match = _DEEP_PROMPT.match(key)
        if match is None:
            rest[key] = tensor
        else:
            layers.setdefault(match["prefix"], {})[int(match["index"])] = tensor
    stacked = {}
    for prefix, per_layer in layers.items():
        indices = sorted(per_layer)
        if indices != list(range(1, len(indices) + 1)):
            raise ValueError(
                f"deep prompts `{prefix}N.VPT_shallow` exist for layers {indices}; the original gives them to layers "
                f"1..depth-1 without gaps."
            )
        shapes = {tuple(per_layer[i].shape) for i in indices}
        if len(shapes) != 1:
            raise ValueError(f"deep prompts `{prefix}N.VPT_shallow` have different shapes {sorted(shapes)}.")
        stacked[DEEP_PROMPTS[prefix]] = torch.stack([per_layer[i] for i in indices])
    return rest, stacked


def original_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert an original (OpenAI CLIP naming) X-CLIP state dict into hf_xclip checkpoint keys."""
    state_dict, converted = stack_deep_prompts(state_dict)
    for key, tensor in state_dict.items():
        new_key = rename_key(key)
        if new_key in TRANSPOSED_KEYS:
            tensor = tensor.t()
        if new_key == CONTEXT_KEY and tensor.ndim == 2:
            tensor = tensor.unsqueeze(0)
        for split_key, split_tensor in split_fused_in_proj(new_key, tensor).items():
            if split_key in converted:
                raise ValueError(f"two original keys map to {split_key!r} (the second is {key!r}).")
            converted[split_key] = split_tensor.contiguous()
    return converted


def hf_to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`original_to_hf`: fuse q/k/v of the text, vision, message and MIT attentions back into
    ``in_proj_*``, transpose the projections and restore the original names."""
    fused: dict[str, dict[str, torch.Tensor]] = {}
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        prefix = next((prefix for prefix, hf_key in DEEP_PROMPTS.items() if hf_key == key), None)
        if prefix is not None:
            converted.update({f"{prefix}{i + 1}.VPT_shallow": layer.contiguous() for i, layer in enumerate(tensor)})
            continue
        if key == CONTEXT_KEY and tensor.shape[0] == 1:
            tensor = tensor[0]
        match = _QKV.match(key)
        if match is not None and _FUSED_MODULES.search(match["prefix"]):
            fused.setdefault(f"{match['prefix']}.in_proj_{match['kind']}", {})[match["proj"]] = tensor
            continue
        if key in TRANSPOSED_KEYS:
            tensor = tensor.t()
        converted[rename_key(key, HF_TO_ORIGINAL)] = tensor.contiguous()
    for key, parts in fused.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"{key}: found only the {sorted(parts)} projections, need q, k and v.")
        converted[rename_key(key, HF_TO_ORIGINAL)] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return converted

"""Learned prompts that an X-CLIP model owns, and the adapter-loading hook peft needs for them.

Shipped with `save_pretrained` (imported relatively by `modeling_xclip.py`), so that a saved model that carries
learned prompts loads with `trust_remote_code=True` where hf_xclip is not installed. Everything peft-specific about
these modules lives here; `peft_utils.py` builds adapters from them.

* [`XClipPromptContext`]: CoOp context vectors inserted after the start token (IVLP's first-layer text prompts).
* [`XClipVisionPrompts`]: VPT / IVLP vision prompt tokens appended after the patch tokens.
* [`XClipDeepPrompts`]: the deep prompts of independent vision-language prompting (IVLP): each later layer replaces
  the prompt positions by its own tokens (text: the context positions; vision: the appended tokens).
* [`PromptContextAdapterMixin`]: transformers' `load_adapter` that also restores saved prompts.

Each module holds one parameter, so that peft can save and restore it as a module to save (see `_LazyPrompts`).

The modules start empty (no parameter, no checkpoint key, inputs returned unchanged). A config asks for prompts with
`text_config.num_prompt_tokens` / `prompt_depth` and `vision_config.num_prompt_tokens` / `prompt_depth` (e.g. a
converted prompted ViFi-CLIP); peft creates them on a base model for `vl-prompts` / `coop` adapters.
"""

from __future__ import annotations

import torch
from torch import nn


def find_eos_positions(input_ids: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """Index of the first `eos_token_id` in each row of `input_ids`; rows without it fall back to the largest id
    (CLIP's EOT has the largest id, the original pools at `argmax(input_ids)`)."""
    positions = input_ids.to(torch.int).argmax(dim=-1)
    if eos_token_id is not None:
        is_eos = input_ids == eos_token_id
        positions = torch.where(is_eos.any(dim=-1), is_eos.to(torch.int).argmax(dim=-1), positions)
    return positions


def insert_after_start(
    context: torch.Tensor,
    input_ids: torch.LongTensor,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None,
    eos_token_id: int | None,
    max_positions: int,
) -> tuple[torch.LongTensor, torch.Tensor, torch.Tensor | None]:
    """Insert `context` (num_texts, n, hidden) after the start token of every text: `[SOT] class [EOT] pad...`
    becomes `[SOT] ctx_1..ctx_n class [EOT] pad...`, at most `max_positions` long (the EOT token is moved to the last
    position where the class tokens had to be cut). The inserted positions get token id 0 and attention 1.

    Returns `(input_ids, inputs_embeds, attention_mask)` of the longer texts (the embeddings carry the gradient of
    `context`; CoOp contexts and the language-model label prompter both insert through here).
    """
    num_texts, seq_length = input_ids.shape
    num_context = context.shape[1]
    context = context.to(inputs_embeds.dtype)
    new_length = min(seq_length + num_context, max_positions)
    eos_positions = find_eos_positions(input_ids, eos_token_id)
    moved = eos_positions + num_context >= new_length
    last = torch.arange(new_length, device=input_ids.device) == new_length - 1
    rows_index = torch.arange(num_texts, device=input_ids.device)

    embeds = torch.cat([inputs_embeds[:, :1], context, inputs_embeds[:, 1:]], dim=1)[:, :new_length]
    eos_embeds = inputs_embeds[rows_index, eos_positions]
    embeds = torch.where((moved[:, None] & last[None, :])[..., None], eos_embeds[:, None, :], embeds)

    filler = input_ids.new_zeros(num_texts, num_context)
    ids = torch.cat([input_ids[:, :1], filler, input_ids[:, 1:]], dim=1)[:, :new_length]
    ids = torch.where(moved[:, None] & last[None, :], input_ids[rows_index, eos_positions][:, None], ids)
    if attention_mask is not None:
        ones = attention_mask.new_ones(num_texts, num_context)
        attention_mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)[:, :new_length]
        attention_mask = torch.where(moved[:, None] & last[None, :], torch.ones_like(attention_mask), attention_mask)
    return ids, embeds, attention_mask


class _LazyPrompts(nn.Module):
    """One parameter (named `lazy_parameter`) that exists only once set: none, and no checkpoint key, by default.

    An empty module reports a placeholder key from a direct `state_dict()` call on itself (never inside a model's
    state dict), so that peft, which lists the keys of a module to save from that call, maps a saved key onto a fresh
    copy; loading a saved tensor creates the parameter with its shape. A module holds a single parameter because
    peft requires every listed key to be present in the saved adapter.
    """

    lazy_parameter: str = ""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.register_parameter(self.lazy_parameter, None)
        # Non-persistent, empty: tells a lazily created parameter which device to live on.
        self.register_buffer("device_anchor", torch.empty(0), persistent=False)

    @property
    def is_empty(self) -> bool:
        return getattr(self, self.lazy_parameter) is None

    def _install(self, value: torch.Tensor | None) -> None:
        parameter = None if value is None else nn.Parameter(value.detach().to(self.device_anchor.device).clone())
        setattr(self, self.lazy_parameter, parameter)

    def clear(self) -> None:
        """Remove the learned prompts (back to the keyless default)."""
        setattr(self, self.lazy_parameter, None)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.is_empty and prefix == "":
            destination[self.lazy_parameter] = self.device_anchor.new_empty(0)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        key = prefix + self.lazy_parameter
        saved = state_dict.get(key)
        current = getattr(self, self.lazy_parameter)
        if saved is not None and saved.numel() == 0:
            state_dict.pop(key)
        elif saved is not None and (current is None or current.shape != saved.shape):
            self._install(torch.zeros(saved.shape, dtype=saved.dtype))
            getattr(self, self.lazy_parameter).requires_grad_(False)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _replace_tokens(hidden_states: torch.Tensor, start: int, tokens: torch.Tensor) -> torch.Tensor:
    """`hidden_states` (N, L, D) with positions start..start+n replaced by `tokens` (n, D) in every row."""
    end = start + tokens.shape[0]
    tokens = tokens.to(hidden_states.dtype).expand(hidden_states.shape[0], -1, -1)
    return torch.cat([hidden_states[:, :start], tokens, hidden_states[:, end:]], dim=1)


class XClipPromptContext(_LazyPrompts):
    """Learned CoOp context vectors inserted after the start token of every text (hook for PEFT prompt learning;
    in IVLP the first text layer's prompts, original ViFi-CLIP: `VLPromptLearner.ctx`).

    Empty by default: no parameter, no checkpoint key, `forward` returns its inputs unchanged. Once `context`
    (shape `(1 or num_classes, num_context, hidden_size)`) is set, each text `[SOT] class [EOT] pad...` becomes
    `[SOT] ctx_1..ctx_n class [EOT] pad...`: `n` positions longer, padding dropped beyond `max_positions`, and the
    class tokens truncated where needed so that the EOT token stays (it is moved to the last position). A context
    with `num_classes` rows is class-specific: row `k` is used for the `k`-th text. With `num_context` (from
    `text_config.num_prompt_tokens`) a unified context of that size is created at once (values from the checkpoint).

    peft trains and saves it as a module to save (`modules_to_save=["prompt_context"]`).
    """

    lazy_parameter = "context"

    def __init__(self, hidden_size: int, max_positions: int, num_context: int = 0) -> None:
        super().__init__(hidden_size)
        self.max_positions = max_positions
        if num_context:
            self.set_context(torch.zeros(1, num_context, hidden_size))

    @property
    def num_context(self) -> int:
        return 0 if self.context is None else self.context.shape[1]

    def set_context(self, context: torch.Tensor) -> None:
        """Install context vectors `(num_context, hidden_size)` (unified) or `(rows, num_context, hidden_size)`."""
        context = context.detach()
        if context.ndim == 2:
            context = context.unsqueeze(0)
        if context.ndim != 3 or context.shape[-1] != self.hidden_size or 0 in context.shape:
            raise ValueError(
                f"context must have shape (num_context, {self.hidden_size}) or (num_classes, num_context, "
                f"{self.hidden_size}), got {tuple(context.shape)}."
            )
        if context.shape[1] >= self.max_positions - 1:
            raise ValueError(
                f"{context.shape[1]} context vectors leave no room for a class name in {self.max_positions} positions."
            )
        self._install(context)

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        token_embedding: nn.Module,
        eos_token_id: int | None,
    ) -> tuple[torch.LongTensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Return `(input_ids, inputs_embeds, attention_mask)` with the context inserted (unchanged when empty)."""
        if self.context is None:
            return input_ids, inputs_embeds, attention_mask
        if input_ids is None:
            raise ValueError("A prompt context needs `input_ids` to locate the start and end tokens of each text.")
        if inputs_embeds is None:
            inputs_embeds = token_embedding(input_ids)
        num_texts = input_ids.shape[0]
        rows = self.context.shape[0]
        if rows not in (1, num_texts):
            raise ValueError(
                f"This class-specific prompt context has {rows} classes but {num_texts} texts were given; pass the "
                f"{rows} class names in training order."
            )
        context = self.context.expand(num_texts, -1, -1)
        return insert_after_start(context, input_ids, inputs_embeds, attention_mask, eos_token_id, self.max_positions)

    def extra_repr(self) -> str:
        shape = None if self.context is None else tuple(self.context.shape)
        return f"context={shape}"


class XClipVisionPrompts(_LazyPrompts):
    """Learned vision prompt tokens of the first layer (VPT / IVLP; original ViFi-CLIP: `image_encoder.VPT`).

    Empty by default: no parameter, no checkpoint key, `forward` returns its input unchanged. With `tokens`
    `(num_tokens, hidden_size)` set, `forward` appends them after the patch tokens of every frame: after the
    position embeddings (they have none) and before the pre-LayerNorm. Only the class token is pooled, so they act
    through attention; [`XClipDeepPrompts`] gives later layers their own.

    peft trains and saves it as a module to save (`modules_to_save=["vision_model.prompt_tokens"]`).
    """

    lazy_parameter = "tokens"

    def __init__(self, hidden_size: int, num_tokens: int = 0) -> None:
        super().__init__(hidden_size)
        if num_tokens:
            self.set_tokens(torch.zeros(num_tokens, hidden_size))

    @property
    def num_tokens(self) -> int:
        return 0 if self.tokens is None else self.tokens.shape[0]

    def set_tokens(self, tokens: torch.Tensor) -> None:
        """Install the tokens `(num_tokens, hidden_size)`."""
        if tokens.ndim != 2 or tokens.shape[-1] != self.hidden_size or tokens.shape[0] == 0:
            raise ValueError(f"tokens must have shape (num_tokens, {self.hidden_size}), got {tuple(tokens.shape)}.")
        self._install(tokens)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(frames, 1 + patches, width)` -> `(frames, 1 + patches + num_tokens, width)`."""
        if self.tokens is None:
            return hidden_states
        tokens = self.tokens.to(hidden_states.dtype).expand(hidden_states.shape[0], -1, -1)
        return torch.cat([hidden_states, tokens], dim=1)

    def extra_repr(self) -> str:
        return f"tokens={None if self.tokens is None else tuple(self.tokens.shape)}"


class XClipDeepPrompts(_LazyPrompts):
    """Deep prompts of independent vision-language prompting (IVLP; original ViFi-CLIP: the `VPT_shallow` of
    `ResidualAttentionBlock_ViFi_CLIP` in layers 1..depth-1 of either tower).

    Empty by default: no parameter, no checkpoint key, every layer sees its input unchanged. With `tokens`
    `(depth - 1, num_tokens, hidden_size)` set, `forward(i, hidden_states)` (called before encoder layer `i`)
    replaces the prompt positions by `tokens[i - 1]` for 1 <= i < depth: positions 1..num_tokens (`position="text"`,
    the context after the start token) or the last num_tokens (`position="vision"`, the appended tokens). Layers
    from `depth` on see the previous layer's outputs at those positions.

    peft trains and saves it as a module to save (`modules_to_save=["text_model.deep_prompts"]` /
    `["vision_model.deep_prompts"]`).
    """

    lazy_parameter = "tokens"

    def __init__(self, hidden_size: int, position: str, num_tokens: int = 0, depth: int = 1) -> None:
        super().__init__(hidden_size)
        if position not in ("text", "vision"):
            raise ValueError(f"position must be 'text' or 'vision', got {position!r}.")
        self.position = position
        if num_tokens and depth > 1:
            self.set_tokens(torch.zeros(depth - 1, num_tokens, hidden_size))

    @property
    def num_tokens(self) -> int:
        return 0 if self.tokens is None else self.tokens.shape[1]

    @property
    def num_layers(self) -> int:
        """Layers with their own prompts (depth - 1)."""
        return 0 if self.tokens is None else self.tokens.shape[0]

    def set_tokens(self, tokens: torch.Tensor) -> None:
        """Install `(depth - 1, num_tokens, hidden_size)` tokens."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.hidden_size or 0 in tokens.shape:
            raise ValueError(
                f"deep prompts must have shape (depth - 1, num_tokens, {self.hidden_size}), got {tuple(tokens.shape)}."
            )
        self._install(tokens)

    def check_matches(self, num_tokens: int, what: str) -> None:
        """Raise unless the deep prompts (if any) have `num_tokens` tokens per layer, the first layer's count."""
        if self.tokens is not None and self.tokens.shape[1] != num_tokens:
            raise ValueError(
                f"The deep {self.position} prompts have {self.tokens.shape[1]} tokens per layer but the {what} has "
                f"{num_tokens}: each layer replaces exactly those positions."
            )

    def forward(self, layer_index: int, hidden_states: torch.Tensor) -> torch.Tensor:
        """`hidden_states` (N, L, width) before encoder layer `layer_index`, with that layer's prompts in place."""
        if self.tokens is None or not 1 <= layer_index <= self.tokens.shape[0]:
            return hidden_states
        tokens = self.tokens[layer_index - 1]
        start = 1 if self.position == "text" else hidden_states.shape[1] - tokens.shape[0]
        return _replace_tokens(hidden_states, start, tokens)

    def extra_repr(self) -> str:
        return f"position={self.position}, tokens={None if self.tokens is None else tuple(self.tokens.shape)}"


class PromptContextAdapterMixin:
    """Mixed into `XClipPreTrainedModel`: transformers' `load_adapter` with support for learned prompts.

    An empty prompt module has no parameter for the loader to fill, so each prompt the adapter holds is created on
    the base module with its saved shape before peft copies the module into the adapter, and removed from the base
    module afterwards.
    """

    def load_adapter(self, peft_model_id: str | None = None, *args, **kwargs):
        """transformers' `load_adapter`, which also restores learned prompts (CoOp context, vision prompt tokens,
        deep prompts)."""
        shapes = saved_prompt_shapes(peft_model_id, kwargs.get("adapter_state_dict"))
        created = []
        for module_name, module in self.named_modules():
            if isinstance(module, _LazyPrompts) and module.is_empty:
                key = f"{module_name}.{module.lazy_parameter}"
                shape = next((shape for saved, shape in shapes.items() if saved.endswith(key)), None)
                if shape is not None:
                    module._install(torch.zeros(shape))
                    created.append(module)
        try:
            return super().load_adapter(peft_model_id, *args, **kwargs)
        finally:
            for module in created:
                module.clear()


def saved_prompt_shapes(adapter: str | None, state_dict: dict | None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every non-empty tensor stored in an adapter (a state dict, or a folder / Hub repo)."""
    if state_dict is not None:
        shapes = {key: tuple(value.shape) for key, value in state_dict.items()}
    elif adapter is None:
        return {}
    else:
        from safetensors import safe_open
        from transformers.utils import cached_file

        path = cached_file(
            adapter,
            "adapter_model.safetensors",
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        if path is None:
            return {}
        with safe_open(path, framework="pt") as weights:
            shapes = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}
    return {key: shape for key, shape in shapes.items() if 0 not in shape}  # placeholders of empty prompts: none


__all__ = [
    "PromptContextAdapterMixin",
    "XClipDeepPrompts",
    "XClipPromptContext",
    "XClipVisionPrompts",
    "find_eos_positions",
    "insert_after_start",
    "saved_prompt_shapes",
]

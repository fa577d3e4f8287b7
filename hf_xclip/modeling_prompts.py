"""Learned prompts that an X-CLIP model owns, and the adapter-loading hook peft needs for them.

Shipped with `save_pretrained` (imported relatively by `modeling_xclip.py`), so that a saved model that carries a
prompt context loads with `trust_remote_code=True` where hf_xclip is not installed. Everything peft-specific about
these modules lives here; `peft_utils.py` builds adapters from them.

* [`XClipPromptContext`]: CoOp context vectors inserted after the start token (empty, keyless by default).
* [`PromptContextAdapterMixin`]: transformers' `load_adapter` that also restores a saved prompt context.
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


class XClipPromptContext(nn.Module):
    """Learned CoOp context vectors inserted after the start token of every text (hook for PEFT prompt learning).

    Empty by default: no parameter, no checkpoint key, `forward` returns its inputs unchanged. Once `context`
    (shape `(1 or num_classes, num_context, hidden_size)`) is set, each text `[SOT] class [EOT] pad...` becomes
    `[SOT] ctx_1..ctx_n class [EOT] pad...`: `n` positions longer, padding dropped beyond `max_positions`, and the
    class tokens truncated where needed so that the EOT token stays (it is moved to the last position). A context
    with `num_classes` rows is class-specific: row `k` is used for the `k`-th text.

    peft trains and saves it as a module to save (`modules_to_save=["prompt_context"]`). An empty instance
    reports a placeholder `context` key from a direct `state_dict()` call (never inside a model's state dict), so
    that peft maps the saved key onto a fresh copy; loading a context creates the parameter with the saved shape.
    """

    def __init__(self, hidden_size: int, max_positions: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.max_positions = max_positions
        self.register_parameter("context", None)
        # Non-persistent, empty: tells a lazily created context which device to live on.
        self.register_buffer("device_anchor", torch.empty(0), persistent=False)

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
        self.context = nn.Parameter(context.to(self.device_anchor.device).clone())

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.context is None and prefix == "":
            destination["context"] = self.device_anchor.new_empty(0)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "context")
        if saved is not None and saved.numel() == 0:
            state_dict.pop(prefix + "context")
        elif saved is not None and (self.context is None or self.context.shape != saved.shape):
            self.set_context(torch.zeros(saved.shape, dtype=saved.dtype))
            self.context.requires_grad_(False)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
        num_texts, seq_length = input_ids.shape
        rows, num_context = self.context.shape[:2]
        if rows not in (1, num_texts):
            raise ValueError(
                f"This class-specific prompt context has {rows} classes but {num_texts} texts were given; pass the "
                f"{rows} class names in training order."
            )
        context = self.context.to(inputs_embeds.dtype).expand(num_texts, -1, -1)
        new_length = min(seq_length + num_context, self.max_positions)
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

    def extra_repr(self) -> str:
        shape = None if self.context is None else tuple(self.context.shape)
        return f"context={shape}"


class PromptContextAdapterMixin:
    """Mixed into `XClipPreTrainedModel`: transformers' `load_adapter` with CoOp context support.

    An empty prompt context has no parameter for the loader to fill, so one of the saved shape is created on the
    base module before peft copies it into the adapter, and removed from the base module afterwards.
    """

    def load_adapter(self, peft_model_id: str | None = None, *args, **kwargs):
        """transformers' `load_adapter`, which also restores learned CoOp context vectors (`prompt_context`)."""
        shape = saved_prompt_context_shape(peft_model_id, kwargs.get("adapter_state_dict"))
        empty = [m for m in self.modules() if isinstance(m, XClipPromptContext) and m.context is None]
        empty = empty if shape is not None else []
        for module in empty:
            module.set_context(torch.zeros(shape))
        try:
            return super().load_adapter(peft_model_id, *args, **kwargs)
        finally:
            for module in empty:
                module.context = None


def saved_prompt_context_shape(adapter: str | None, state_dict: dict | None) -> tuple[int, ...] | None:
    """Shape of the prompt context stored in an adapter (a state dict, or a folder / Hub repo), if any."""
    if state_dict is not None:
        shapes = [tuple(v.shape) for k, v in state_dict.items() if k.endswith("prompt_context.context")]
        return shapes[0] if shapes else None
    if adapter is None:
        return None
    from safetensors import safe_open
    from transformers.utils import cached_file

    path = cached_file(
        adapter,
        "adapter_model.safetensors",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    if path is None:
        return None
    with safe_open(path, framework="pt") as weights:
        for key in weights.keys():
            if key.endswith("prompt_context.context"):
                return tuple(weights.get_slice(key).get_shape())
    return None


__all__ = ["PromptContextAdapterMixin", "XClipPromptContext", "find_eos_positions", "saved_prompt_context_shape"]

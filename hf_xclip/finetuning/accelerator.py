"""The `accelerate.Accelerator` that training and evaluation run under (device, mixed precision, processes)."""

from __future__ import annotations

import torch


def resolve_mixed_precision(mixed_precision: str) -> str:
    """`"auto"` -> bf16 on a GPU that supports it, fp16 on other GPUs, `"no"` without a GPU."""
    if mixed_precision != "auto":
        return mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(mixed_precision: str = "auto", gradient_accumulation_steps: int = 1):
    """An `accelerate.Accelerator`. In a single process whose accelerate state was set up with another precision
    (a notebook, a test session) that state is reset; under `accelerate launch` the launcher's setting must match."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    mixed_precision = resolve_mixed_precision(mixed_precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps)


__all__ = ["make_accelerator", "resolve_mixed_precision"]

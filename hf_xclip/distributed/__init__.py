"""Batch inference beyond one process: Ray Data (`XClipPredictor` for `map_batches`) and resumable jobs that write
Parquet parts (`run_job`) or index shards (`run_index_job`). Importing this package does not import Ray."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .predictor import MODES, PredictorConfig, XClipPredictor, output_schema

__all__ = ["MODES", "PredictorConfig", "XClipPredictor", "output_schema"]


def __getattr__(name: str) -> Any:
    # Lazy: the command parsers import `hf_xclip.distributed.arguments`, which must not import torch.
    if name in __all__:
        return getattr(importlib.import_module(".predictor", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

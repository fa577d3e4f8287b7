"""Batch inference beyond one process: Ray Data (`XClipPredictor` for `map_batches`) and resumable jobs that write
Parquet parts (`run_job`) or index shards (`run_index_job`). Importing this package does not import Ray."""

from .predictor import MODES, PredictorConfig, XClipPredictor, output_schema

__all__ = ["MODES", "PredictorConfig", "XClipPredictor", "output_schema"]

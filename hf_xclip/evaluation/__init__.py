"""Evaluation of a model (or a peft model) on labelled videos: accuracy, multi-label AP / mAP / F1, and fitting the
sigmoid head on labelled clips."""

from .evaluate import (
    Calibration,
    EvaluationResult,
    MultiLabelResult,
    average_precision,
    calibrate_sigmoid_head,
    evaluate_multi_label,
    evaluate_videos,
    multi_label_metrics,
    multi_label_scores,
)

__all__ = [
    "Calibration",
    "EvaluationResult",
    "MultiLabelResult",
    "average_precision",
    "calibrate_sigmoid_head",
    "evaluate_multi_label",
    "evaluate_videos",
    "multi_label_metrics",
    "multi_label_scores",
]

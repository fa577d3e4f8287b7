"""Evaluation of a model (or a peft model) on labelled videos: accuracy, multi-label AP / mAP / F1, and fitting the
sigmoid head on labelled clips. Exports the public names of `evaluate`."""

from . import evaluate as _evaluate
from .evaluate import *  # noqa: F403

__all__ = list(_evaluate.__all__)

"""Procedurally generated video-text data: coloured shapes moving on noisy backgrounds (see `rendering` for what a
clip shows), as torch datasets and video files (`datasets`), with a small tokenizer of the captions (`tokenizer`).
The names of the three modules are exported here (``from hf_xclip.data.synthetic import write_video_folder``)."""

from . import datasets as _datasets
from . import rendering as _rendering
from . import tokenizer as _tokenizer
from .datasets import *  # noqa: F403
from .rendering import *  # noqa: F403
from .tokenizer import *  # noqa: F403

__all__ = [*_rendering.__all__, *_datasets.__all__, *_tokenizer.__all__]

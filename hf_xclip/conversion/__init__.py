"""Conversion of original X-CLIP, ViFi-CLIP and CLIP checkpoints into hf_xclip models (``hf-xclip convert``).

* :func:`convert_xclip_checkpoint`: a checkpoint of the original X-CLIP training code (microsoft/VideoX);
* :func:`convert_vificlip_checkpoint`: a ViFi-CLIP checkpoint (CLIP per frame, mean over frames);
* :func:`convert_clip_to_xclip`: a new X-CLIP initialised from CLIP as the paper starts training;
* :func:`build_clip_tokenizer`, :func:`clean_text`: the original tokenizer and text cleaning;
* :func:`read_original_checkpoint`: safe reading of the original files (no yacs, no arbitrary unpickling).

Every hyperparameter is read from the weights, the output is checked against an independent forward pass of the
original weights, and nothing is written unless everything succeeded.
"""

from .checkpoint import ConversionError, UnsafeCheckpointError, read_original_checkpoint
from .clip_init import convert_clip_to_xclip, init_xclip_modules
from .export import ConversionResult, ExportOptions
from .hyperparameters import build_config, infer_sizes
from .key_mapping import ORIGINAL_TO_HF, hf_to_original, original_to_hf
from .reference import original_forward
from .releases import RELEASED_CHECKPOINTS
from .tokenizer import build_clip_tokenizer, clean_text
from .vificlip import convert_vificlip_checkpoint
from .xclip import convert_xclip_checkpoint

__all__ = [
    "ORIGINAL_TO_HF",
    "RELEASED_CHECKPOINTS",
    "ConversionError",
    "ConversionResult",
    "ExportOptions",
    "UnsafeCheckpointError",
    "build_clip_tokenizer",
    "build_config",
    "clean_text",
    "convert_clip_to_xclip",
    "convert_vificlip_checkpoint",
    "convert_xclip_checkpoint",
    "init_xclip_modules",
    "hf_to_original",
    "infer_sizes",
    "original_forward",
    "original_to_hf",
    "read_original_checkpoint",
]

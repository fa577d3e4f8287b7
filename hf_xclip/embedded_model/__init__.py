"""The small default model embedded in the package (its files are in ``hf_xclip/default_model/``): where it lives
(`location.default_model_path`) and how it is trained on synthetic clips (`training`)."""

from .location import DEFAULT_MODEL_DIR, default_model_path

__all__ = ["DEFAULT_MODEL_DIR", "default_model_path"]

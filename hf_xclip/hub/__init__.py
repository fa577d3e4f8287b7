"""The Hugging Face Hub side: pushing a model with its code and pipeline attached (`push`), and every model card
(`model_cards`)."""

from .push import add_remote_code, has_pipeline_files, push_model, remove_remote_code

__all__ = ["add_remote_code", "has_pipeline_files", "push_model", "remove_remote_code"]

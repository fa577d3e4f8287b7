"""Uploading a converted directory to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload X-CLIP converted with hf_xclip",
) -> str:
    """Upload a converted directory with `hf_xclip.hub.push_model` and return the commit URL.

    The upload is the one every hf_xclip push makes: the model code is shipped for ``trust_remote_code=True`` (and
    the zero-shot pipeline too when the directory has a tokenizer), the card gains a section on loading without
    hf_xclip, and the card is checked before anything is sent. `folder` itself is not modified.
    """
    from ..hub import has_pipeline_files, push_model  # hf_xclip.hub imports the model-card helpers of this package

    pipeline = has_pipeline_files(folder)
    info = push_model(folder, repo_id, token=token, private=private, commit_message=commit_message, pipeline=pipeline)
    return str(getattr(info, "commit_url", info))

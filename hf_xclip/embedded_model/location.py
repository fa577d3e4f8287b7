"""Where the embedded default model lives (``hf_xclip/default_model/``, trained by
:mod:`hf_xclip.embedded_model.training`)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"


def default_model_path() -> str:
    """Path of the small X-CLIP shipped inside the package, trained on :mod:`hf_xclip.data.synthetic` clips.

    It loads like any model folder: ``XClipModel.from_pretrained(path)``, ``XClipProcessor.from_pretrained(path)``
    or ``pipeline("zero-shot-video-classification", model=path)``.

    Raises:
        FileNotFoundError: when the package was installed without its model files.
    """
    for name in ("config.json", "model.safetensors"):
        if not (DEFAULT_MODEL_DIR / name).is_file():
            raise FileNotFoundError(
                f"the embedded default model is missing {DEFAULT_MODEL_DIR / name}; reinstall hf_xclip "
                "(`pip install .` ships hf_xclip/default_model/) or retrain it with "
                "`python -m hf_xclip.embedded_model.training --output-dir hf_xclip/default_model`."
            )
    return str(DEFAULT_MODEL_DIR)


__all__ = ["DEFAULT_MODEL_DIR", "default_model_path"]

"""The one place that registers hf_xclip with transformers' Auto classes (and, once available, the pipeline).

`import hf_xclip` does not import torch or transformers (the `hf-xclip` command starts in well under a second):
`register_on_transformers_import` registers at once when transformers is already imported, else right after the
first import of transformers completes (or, when hf_xclip's own modules import it, after the outermost of them is
done), so ``import hf_xclip; pipeline("zero-shot-video-classification")`` and ``AutoModel.from_pretrained`` keep
working exactly as with an eager registration."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

_REGISTERED = False
_REGISTERING = False


def _register_processors() -> None:
    from transformers import AutoProcessor

    # Imported from its module: `transformers.AutoVideoProcessor` is a placeholder without torchvision, but the
    # class itself (which processors use to load their video processor) works and X-CLIP's needs no torchvision.
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    from .configuration_xclip import XClipConfig
    from .processing_xclip import XClipProcessor
    from .video_processing_xclip import XClipVideoProcessor

    AutoProcessor.register(XClipConfig, XClipProcessor, exist_ok=True)
    AutoVideoProcessor.register(XClipConfig, XClipVideoProcessor, exist_ok=True)


def _ship_code_when_saving() -> None:
    """Make `save_pretrained` copy the code next to the files and record it in `auto_map`, so that a saved
    directory (or Hub repo) loads with `AutoModel` / `AutoProcessor` ``.from_pretrained(..., trust_remote_code=True)``
    where hf_xclip is not installed. The model, config and processor modules only import each other relatively."""
    from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
    from .modeling_xclip import XClipModel, XClipTextModel, XClipVisionModel
    from .processing_xclip import XClipProcessor
    from .video_processing_xclip import XClipVideoProcessor

    for config_class in (XClipConfig, XClipTextConfig, XClipVisionConfig):
        config_class.register_for_auto_class("AutoConfig")
    for model_class in (XClipModel, XClipTextModel, XClipVisionModel):
        model_class.register_for_auto_class("AutoModel")
    XClipProcessor.register_for_auto_class("AutoProcessor")
    XClipVideoProcessor.register_for_auto_class("AutoVideoProcessor")


def register() -> None:
    """Register configs, models, processors and the zero-shot video pipeline. Idempotent."""
    global _REGISTERED, _REGISTERING
    if _REGISTERED or _REGISTERING:
        return
    _REGISTERING = True
    try:
        _register_all()
    finally:
        _REGISTERING = False
    _REGISTERED = True
    _remove_finder()


def _register_all() -> None:
    from transformers import AutoConfig, AutoModel

    from .configuration_xclip import XClipConfig, XClipTextConfig, XClipVisionConfig
    from .modeling_xclip import XClipModel, XClipTextModel, XClipVisionModel

    for config_class in (XClipConfig, XClipTextConfig, XClipVisionConfig):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for config_class, model_class in (
        (XClipConfig, XClipModel),
        (XClipTextConfig, XClipTextModel),
        (XClipVisionConfig, XClipVisionModel),
    ):
        AutoModel.register(config_class, model_class, exist_ok=True)
    _register_processors()
    _ship_code_when_saving()
    from .pipeline_zero_shot_video_classification import register_pipeline

    register_pipeline()  # pipeline("zero-shot-video-classification")


def _initializing(module: ModuleType | None) -> bool:
    """Whether `module` is still being executed by an import (a partially initialised module)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register_if_ready(executed: str | None = None) -> None:
    """Register when transformers is imported and no hf_xclip module (other than `executed`, whose code has just
    run, and the package root) is half-way through its import: registering imports them."""
    if _REGISTERED or _REGISTERING or "transformers" not in sys.modules:
        return
    for name, module in list(sys.modules.items()):
        if name.startswith("hf_xclip.") and name != executed and _initializing(module):
            return  # that module's own import finishing calls this again
    try:
        register()
    except Exception as err:  # an import hook must not break the import that triggered it
        warnings.warn(f"hf_xclip could not register with transformers: {err!r}", stacklevel=2)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Wraps the loading of `transformers` and of hf_xclip's modules: after one of them has run, register if ready.

    Only file-based modules are wrapped (their loader belongs to that one import); other specs are left to the
    finders after this one."""

    def find_spec(self, fullname, path=None, target=None):
        if _REGISTERED or not (fullname == "transformers" or fullname.startswith("hf_xclip.")):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if not isinstance(loader, (importlib.machinery.SourceFileLoader, importlib.machinery.SourcelessFileLoader)):
            return None
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            _register_if_ready(executed=fullname)

        loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def _remove_finder() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _RegisterAfterImport)]


def register_on_transformers_import() -> None:
    """Register now when transformers is already imported, else as soon as it is (see the module docstring)."""
    if _REGISTERED:
        return
    if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
    _register_if_ready()

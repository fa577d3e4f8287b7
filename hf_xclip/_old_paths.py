"""Module paths from before the feature packages (layout v2), kept importable: ``import hf_xclip.video_search``
returns the module object of its new home (`hf_xclip.search.index`), so imports, attribute access and
``unittest.mock.patch("hf_xclip.video_search.x")`` keep working. New code imports the new paths.

The old paths are aliases instead of re-export files so that the moves stay pure renames for git. ``hf_xclip.timeline``,
``hf_xclip.evaluation`` and ``hf_xclip.hub`` became packages that re-export the old modules' public names;
``hf_xclip.video_index`` (split into `search.format`, `search.faiss_index`, `search.model` and `search.build`) is the
`hf_xclip.search` package and ``hf_xclip.peft_utils`` (split into `finetuning.peft_config` and
`finetuning.peft_model`) the `hf_xclip.finetuning` package, which export all of their public names."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED_MODULES = {
    "hf_xclip.accelerator": "hf_xclip.finetuning.accelerator",
    "hf_xclip.adapters": "hf_xclip.finetuning.adapters",
    "hf_xclip.default_model_training": "hf_xclip.embedded_model.training",
    "hf_xclip.defaults": "hf_xclip.embedded_model.location",
    "hf_xclip.language_models": "hf_xclip.language.causal_lm",
    "hf_xclip.llm_prompter": "hf_xclip.language.prompter",
    "hf_xclip.model_cards": "hf_xclip.hub.model_cards",
    "hf_xclip.onnx_export": "hf_xclip.export.onnx_export",
    "hf_xclip.peft_utils": "hf_xclip.finetuning",
    "hf_xclip.synthetic": "hf_xclip.data.synthetic",
    "hf_xclip.training": "hf_xclip.finetuning.training",
    "hf_xclip.video_data": "hf_xclip.data.folders",
    "hf_xclip.video_dataset": "hf_xclip.data.clip_dataset",
    "hf_xclip.video_index": "hf_xclip.search",
    "hf_xclip.video_search": "hf_xclip.search.index",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path (one module object, two names)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module):
        pass  # the module at the new path is already executed

    def get_code(self, fullname):
        """`python -m hf_xclip.<old path>` runs the module of the new path."""
        source = f"import runpy\nrunpy.run_module({MOVED_MODULES[fullname]!r}, run_name='__main__', alter_sys=True)\n"
        return compile(source, f"<{fullname} -> {MOVED_MODULES[fullname]}>", "exec")


def install() -> None:
    """Put the finder on `sys.meta_path` (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())  # before editable-install finders that know old files

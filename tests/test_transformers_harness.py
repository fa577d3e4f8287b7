"""transformers' own test harness (`ProcessorTesterMixin`, `ModelTesterMixin`) on our classes and on transformers'.

The pip wheel of transformers does not ship its ``tests/`` folder; the source distribution of the same release does
(the mixin modules, not the per-model test files). ``.ci/run`` unpacks it into ``.cache/transformers-tests/<version>``
(ignored by git); ``HF_XCLIP_TRANSFORMERS_TESTS`` points elsewhere (a transformers checkout or unpacked sdist: the
folder that holds ``tests/``). Without it every test here skips, saying why.

Each harness runs twice with the same tiny components: on transformers' X-CLIP class (the reference) and on ours.
A test the reference passes must pass for ours, except the ones in `EXPECTED_DIFFERENCES` (one place, each with its
reason; also listed in docs/comparison.md), which are strict expected failures for ours: when one starts passing,
the entry must go. Tests the reference itself fails under this harness (the mixin's generic expectations that
transformers' own X-CLIP test file overrides) are in `HARNESS_OVERRIDES`, applied to both classes alike.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import types
import unittest
from pathlib import Path

import pytest
import transformers

REPO = Path(__file__).resolve().parents[1]
HARNESS_ENV = "HF_XCLIP_TRANSFORMERS_TESTS"
PACKAGE = "_transformers_tests"

# test name -> why our class deliberately differs from transformers' on it (strict xfail for ours).
EXPECTED_DIFFERENCES: dict[str, dict[str, str]] = {
    "processor": {},
    "model": {},
}
# test name -> why transformers' X-CLIP class fails it too (the mixin's generic rule that transformers' own
# tests/models/x_clip file overrides or skips); applied to both classes, so reference and ours are held to the same.
HARNESS_OVERRIDES: dict[str, dict[str, str]] = {
    "processor": {},
    "model": {},
}


def harness_root() -> Path:
    """The folder holding transformers' ``tests/``: ``$HF_XCLIP_TRANSFORMERS_TESTS``, else the CI cache of the
    installed release."""
    given = os.environ.get(HARNESS_ENV)
    return Path(given) if given else REPO / ".cache" / "transformers-tests" / transformers.__version__


def _shim(name: str, **attributes) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module


def _load_harness(root: Path) -> types.ModuleType:
    """transformers' ``tests/`` as the package `PACKAGE` (our own ``tests`` keeps its name). The sdist lacks three
    helper modules the mixins import; only where a file is absent, a stand-in is registered: the export tests'
    mixin (its tests then do not run), the generation mixin (X-CLIP does not generate), the config kwargs table
    (used by `ConfigTester` only, which is not run here) and the Hub fixture fetcher (local paths pass through)."""
    tests = root / "tests"
    if not (tests / "test_processing_common.py").is_file():
        pytest.skip(
            f"transformers' test harness not found in {tests} (transformers {transformers.__version__}); "
            f"`.ci/run` fetches it, or set {HARNESS_ENV} to a folder holding transformers' tests/",
            allow_module_level=True,
        )
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(tests)]
        sys.modules[PACKAGE] = package
        missing = {
            "exporters/test_export.py": (f"{PACKAGE}.exporters.test_export", {"ExportTesterMixin": type("ExportTesterMixin", (), {})}),
            "generation/test_utils.py": (f"{PACKAGE}.generation.test_utils", {"GenerationTesterMixin": type("GenerationTesterMixin", (), {})}),
            "utils/test_configuration_utils.py": (f"{PACKAGE}.utils.test_configuration_utils", {"config_common_kwargs": {}}),
        }
        for relative, (name, attributes) in missing.items():
            if not (tests / relative).is_file():
                parent = name.rsplit(".", 1)[0]
                if parent not in sys.modules:
                    _shim(parent, __path__=[])
                _shim(name, **attributes)
        if not (root / "utils" / "fetch_hub_objects_for_ci.py").is_file() and "fetch_hub_objects_for_ci" not in sys.modules:
            _shim("fetch_hub_objects_for_ci", url_to_local_path=lambda url, *args, **kwargs: url)
    return sys.modules[PACKAGE]


_load_harness(harness_root())
try:
    processing_common = importlib.import_module(f"{PACKAGE}.test_processing_common")
except ImportError as err:
    pytest.skip(f"transformers' processor harness does not import here: {err}", allow_module_level=True)

from testing_utils import save_tokenizer  # noqa: E402

from hf_xclip import XClipProcessor, XClipVideoProcessor  # noqa: E402

CROP = 32


def _mark(cls: type, kind: str, differences: bool) -> type:
    """Strict expected failures: the harness overrides for both classes, the documented differences for ours."""
    tables = [HARNESS_OVERRIDES[kind], *([EXPECTED_DIFFERENCES[kind]] if differences else [])]
    for table in tables:
        for name, reason in table.items():
            if not hasattr(cls, name):
                raise AttributeError(f"{cls.__name__} has no test {name!r}: remove it from the table")
            setattr(cls, name, pytest.mark.xfail(reason=reason, strict=True)(getattr(cls, name)))
    return cls


class _TinyProcessorComponents:
    """The same tiny components for both processors: a CLIP tokenizer (character-level, or CLIP's BPE when the
    reference files are present) and a 32-pixel video / image processor."""

    videos_input_name = "pixel_values"

    @classmethod
    def _setup_tokenizer(cls):
        return save_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")


class TransformersXCLIPProcessorHarness(_TinyProcessorComponents, processing_common.ProcessorTesterMixin, unittest.TestCase):
    """The reference: transformers' `XCLIPProcessor` (a VideoMAE image processor + CLIP tokenizer)."""

    processor_class = transformers.XCLIPProcessor

    @classmethod
    def _setup_image_processor(cls):
        return transformers.VideoMAEImageProcessor(size={"shortest_edge": CROP}, crop_size=CROP)


class XClipProcessorHarness(_TinyProcessorComponents, processing_common.ProcessorTesterMixin, unittest.TestCase):
    """Ours: `XClipProcessor` (`XClipVideoProcessor` + CLIP tokenizer)."""

    processor_class = XClipProcessor

    @classmethod
    def _setup_video_processor(cls):
        return XClipVideoProcessor(crop_size=CROP)


_mark(TransformersXCLIPProcessorHarness, "processor", differences=False)
_mark(XClipProcessorHarness, "processor", differences=True)


# ------------------------------------------------------------------------------------------------ model harness
try:
    modeling_common = importlib.import_module(f"{PACKAGE}.test_modeling_common")
except ImportError as err:  # the processor harness above still runs
    modeling_common = None
    MODEL_HARNESS_MISSING = f"transformers' model harness does not import here: {err}"
else:
    MODEL_HARNESS_MISSING = ""

import torch  # noqa: E402

from testing_utils import XClipModelTester  # noqa: E402

from hf_xclip import XClipConfig, XClipModel  # noqa: E402


class _HarnessModelTester:
    """What `ModelTesterMixin` asks of a model tester, built on our `XClipModelTester` sizes (the same tiny
    architecture as transformers' X-CLIP tests: 32-wide towers of 2 layers, 30-pixel frames, 64-wide MIT)."""

    batch_size = 2
    is_training = True

    def __init__(self, parent, config_class):
        self.parent = parent
        self.tester = XClipModelTester(seq_length=7, patch_size=6)
        self.config_class = config_class
        self.num_hidden_layers = 2
        self.hidden_size = 32
        self.num_attention_heads = 4
        self.seq_length = self.tester.seq_length
        self.image_size = self.tester.image_size

    def get_config(self):
        return self.tester.config() if self.config_class is XClipConfig else self.tester.transformers_config()

    def prepare_config_and_inputs_for_common(self):
        input_ids = self.tester.input_ids(self.batch_size, seed=torch.randint(0, 1000, ()).item())
        inputs = {
            "input_ids": input_ids,
            "attention_mask": (input_ids != 0).long(),
            "pixel_values": self.tester.pixel_values(self.batch_size, seed=torch.randint(0, 1000, ()).item()),
            "return_loss": True,
        }
        return self.get_config(), inputs


if modeling_common is not None:

    class _ModelHarness(modeling_common.ModelTesterMixin):
        """The settings transformers' own X-CLIP model test uses (no head masking / pruning / embedding resizing /
        torchscript / separate attention-output test)."""

        config_class = None
        test_head_masking = False
        test_pruning = False
        test_resize_embeddings = False
        test_attention_outputs = False
        test_torchscript = False
        fx_compatible = False

        def setUp(self):
            self.model_tester = _HarnessModelTester(self, self.config_class)

    class TransformersXCLIPModelHarness(_ModelHarness, unittest.TestCase):
        """The reference: transformers' `XCLIPModel`."""

        all_model_classes = (transformers.XCLIPModel,)
        config_class = transformers.XCLIPConfig

    class XClipModelHarness(_ModelHarness, unittest.TestCase):
        """Ours: `XClipModel`."""

        all_model_classes = (XClipModel,)
        config_class = XClipConfig

    _mark(TransformersXCLIPModelHarness, "model", differences=False)
    _mark(XClipModelHarness, "model", differences=True)
else:

    def test_model_harness():
        pytest.skip(MODEL_HARNESS_MISSING)

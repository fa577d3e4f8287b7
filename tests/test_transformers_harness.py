"""transformers' own test harness (`ProcessorTesterMixin`, `ModelTesterMixin`) on our classes and on transformers'.

The pip wheel of transformers does not ship its ``tests/`` folder; the source distribution of the same release does
(the mixin modules, not the per-model test files). ``.ci/run`` unpacks it into ``.cache/transformers-tests/<version>``
(ignored by git); ``HF_XCLIP_TRANSFORMERS_TESTS`` points elsewhere (a transformers checkout or unpacked sdist: the
folder that holds ``tests/``). Without it every test here skips, saying why.

Each harness runs twice with the same tiny components: on transformers' X-CLIP class (the reference) and on ours
(the reference model run, minutes on 2 cores, only with ``HF_XCLIP_HARNESS_REFERENCE=1``; the model harness is
marked slow).
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
# The reference model run doubles the model harness (minutes on 2 cores): it runs when this is set to 1.
REFERENCE_ENV = "HF_XCLIP_HARNESS_REFERENCE"
reference_run = pytest.mark.skipif(
    os.environ.get(REFERENCE_ENV) != "1", reason=f"the reference (transformers' class) run: set {REFERENCE_ENV}=1"
)
PACKAGE = "_transformers_tests"

# test name -> why our class deliberately differs from transformers' on it (strict xfail for ours). Empty: under
# transformers 5.25's harness our classes fail nothing that transformers' X-CLIP classes pass (docs/comparison.md).
EXPECTED_DIFFERENCES: dict[str, dict[str, str]] = {
    "processor": {},
    "model": {},
}
# test name (a trailing ``*``: every parametrisation) -> (classes, why): the tests transformers' X-CLIP class fails
# under the generic mixin too, strict xfail for ``classes`` ("both", or "reference" where ours passes).
HARNESS_OVERRIDES: dict[str, dict[str, tuple[str, str]]] = {
    "processor": {},
    "model": {
        "test_eager_matches_sdpa_inference_*": (
            "both",
            "the generic test feeds the main input (input_ids) and a mask only; X-CLIP also needs pixel_values "
            "(XCLIPModel raises on pixel_values=None alike)",
        ),
        "test_hidden_states_output": (
            "both",
            "expects one hidden-state tuple of the text tower's length; X-CLIP's output nests the text and vision "
            "towers' (transformers' X-CLIP test file skips it: 'tested in individual model tests')",
        ),
        "test_retain_grad_hidden_states_attentions": (
            "both",
            "same nesting as test_hidden_states_output (skipped by transformers' X-CLIP test file)",
        ),
        "test_model_get_set_embeddings": (
            "reference",
            "XCLIPModel has no get_input_embeddings (transformers' X-CLIP test file skips it); ours returns the text "
            "token embedding and passes",
        ),
    },
}


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No Hub: a few harness tests look a tiny checkpoint up on it first (minutes of timeouts where it is
    unreachable); huggingface_hub reads HF_HUB_OFFLINE at import, so its constant is set too."""
    import huggingface_hub

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


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
            "exporters/test_export.py": (
                "exporters.test_export",
                {"ExportTesterMixin": type("ExportTesterMixin", (), {})},
            ),
            "generation/test_utils.py": (
                "generation.test_utils",
                {"GenerationTesterMixin": type("GenerationTesterMixin", (), {})},
            ),
            "utils/test_configuration_utils.py": ("utils.test_configuration_utils", {"config_common_kwargs": {}}),
        }
        for relative, (name, attributes) in missing.items():
            name = f"{PACKAGE}.{name}"
            if not (tests / relative).is_file():
                parent = name.rsplit(".", 1)[0]
                if parent not in sys.modules:
                    _shim(parent, __path__=[])
                _shim(name, **attributes)
        fetcher = "fetch_hub_objects_for_ci"
        if not (root / "utils" / f"{fetcher}.py").is_file() and fetcher not in sys.modules:
            _shim(fetcher, url_to_local_path=lambda url, *args, **kwargs: url)
    return sys.modules[PACKAGE]


_load_harness(harness_root())
try:
    processing_common = importlib.import_module(f"{PACKAGE}.test_processing_common")
except ImportError as err:
    pytest.skip(f"transformers' processor harness does not import here: {err}", allow_module_level=True)

from testing_utils import save_tokenizer  # noqa: E402

from hf_xclip import XClipProcessor, XClipVideoProcessor  # noqa: E402

CROP = 32


def _mark(cls: type, kind: str, ours: bool) -> type:
    """Strict expected failures: `HARNESS_OVERRIDES` (for the classes each names) and, for ours,
    `EXPECTED_DIFFERENCES`. A name that matches no test is an error (the tables must not go stale)."""
    marks = {name: reason for name, (who, reason) in HARNESS_OVERRIDES[kind].items() if who == "both" or not ours}
    if ours:
        marks.update(EXPECTED_DIFFERENCES[kind])
    tests = [name for name in dir(cls) if name.startswith("test_")]
    for pattern, reason in marks.items():
        if pattern.endswith("*"):
            names = [name for name in tests if name.startswith(pattern[:-1])]
        else:
            names = [pattern] if pattern in tests else []
        if not names:
            raise AttributeError(f"{cls.__name__} has no test {pattern!r}: remove it from the table")
        for name in names:
            setattr(cls, name, pytest.mark.xfail(reason=reason, strict=True)(getattr(cls, name)))
    return cls


class _TinyProcessorComponents:
    """The same tiny components for both processors: a CLIP tokenizer (character-level, or CLIP's BPE when the
    reference files are present) and a 32-pixel video / image processor."""

    videos_input_name = "pixel_values"

    @classmethod
    def _setup_tokenizer(cls):
        return save_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")


@pytest.mark.slow  # the reference run: CI runs it, iterating need not
class TransformersXCLIPProcessorHarness(
    _TinyProcessorComponents, processing_common.ProcessorTesterMixin, unittest.TestCase
):
    """The reference: transformers' `XCLIPProcessor` (a VideoMAE image processor + CLIP tokenizer)."""

    processor_class = transformers.XCLIPProcessor

    @classmethod
    def _setup_image_processor(cls):
        return transformers.VideoMAEImageProcessor(size={"shortest_edge": CROP}, crop_size=CROP)


@pytest.mark.slow  # ~70 tests that save and load processors: a minute or more on 2 cores; CI runs it
class XClipProcessorHarness(_TinyProcessorComponents, processing_common.ProcessorTesterMixin, unittest.TestCase):
    """Ours: `XClipProcessor` (`XClipVideoProcessor` + CLIP tokenizer)."""

    processor_class = XClipProcessor

    @classmethod
    def _setup_video_processor(cls):
        return XClipVideoProcessor(crop_size=CROP)


_mark(TransformersXCLIPProcessorHarness, "processor", ours=False)
_mark(XClipProcessorHarness, "processor", ours=True)


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

        self.video_model_tester = _VideoInputs(self)

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


class _VideoInputs:
    """The video side alone, for the mixin's ``get_video_features`` tests (X-CLIP's video input is ``pixel_values``,
    the vision tower's 2 layers give the attentions)."""

    num_hidden_layers = 2

    def __init__(self, parent: _HarnessModelTester):
        self.parent = parent

    def prepare_config_and_inputs_for_common(self):
        config, inputs = self.parent.prepare_config_and_inputs_for_common()
        return config, {"pixel_values": inputs["pixel_values"]}


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
        # X-CLIP's vision tower returns per-frame states, (B * T, ...): the batch-size check does not apply
        skip_test_video_features_output_shape = True

        def setUp(self):
            self.model_tester = _HarnessModelTester(self, self.config_class)

    @reference_run
    @pytest.mark.slow  # the model harness takes minutes on 2 cores
    class TransformersXCLIPModelHarness(_ModelHarness, unittest.TestCase):
        """The reference: transformers' `XCLIPModel`."""

        all_model_classes = (transformers.XCLIPModel,)
        config_class = transformers.XCLIPConfig

    @pytest.mark.slow
    class XClipModelHarness(_ModelHarness, unittest.TestCase):
        """Ours: `XClipModel`."""

        all_model_classes = (XClipModel,)
        config_class = XClipConfig

    _mark(TransformersXCLIPModelHarness, "model", ours=False)
    _mark(XClipModelHarness, "model", ours=True)
else:

    def test_model_harness():
        pytest.skip(MODEL_HARNESS_MISSING)

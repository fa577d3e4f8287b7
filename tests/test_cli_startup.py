"""`import hf_xclip` and `hf-xclip --help` start without torch or transformers (fast), while the library keeps
registering with transformers as soon as transformers is used, and the parsers show the library's own choices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_xclip.cli import COMMANDS, static_defaults, static_value

REPO = Path(__file__).resolve().parents[1]


def _run_python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_help_and_argument_errors_import_neither_torch_nor_transformers():
    argvs = [["--help"], ["classify"], ["nosuchcommand"], *([name, "--help"] for name in COMMANDS)]
    argvs += [["labels", "describe", "-h"], ["finetune", "--train-dir", "x"], ["timeline", "v.mp4", "--window", "x"]]
    code = (
        "import contextlib, io, sys\nfrom hf_xclip.cli import main\n"
        f"for argv in {argvs!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        try:\n            main(argv)\n        except SystemExit:\n            pass\n"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    assert _run_python(code) == "[]"


def test_import_hf_xclip_is_light_and_registers_once_transformers_is_used():
    code = (
        "import sys\nimport hf_xclip\nlight = 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "print(light, 'zero-shot-video-classification' in PIPELINE_REGISTRY.get_supported_tasks())"
    )
    assert _run_python(code) == "True True"


def test_importing_a_module_of_the_package_first_registers_the_auto_classes():
    # modeling_xclip imports transformers half-way through its own import: registration waits for it to finish
    code = (
        "from hf_xclip.modeling_xclip import XClipModel\nfrom transformers import AutoConfig, AutoModel\nimport hf_xclip\n"
        "config = AutoConfig.for_model('hf_xclip_vision_model')\n"
        "print(type(config).__module__, type(hf_xclip.XClipModel).__name__)"
    )
    assert _run_python(code) == "hf_xclip.configuration_xclip type"


def test_every_public_name_imports():
    import hf_xclip

    assert set(hf_xclip.__all__) == {*hf_xclip._LAZY_NAMES, "register"}
    for name in hf_xclip.__all__:
        assert getattr(hf_xclip, name) is not None, name
    assert "XClipModel" in dir(hf_xclip)
    with pytest.raises(AttributeError):
        hf_xclip.no_such_name  # noqa: B018


def test_static_values_are_the_library_values():
    from hf_xclip.finetuning.peft_config import LORA_TYPES, METHODS
    from hf_xclip.finetuning.training import MULTI_LABEL_LOSSES, REGULARIZATIONS
    from hf_xclip.language.causal_lm import DEFAULT_DESCRIPTION_PROMPTS
    from hf_xclip.multilabel import MULTI_LABEL_METHODS
    from hf_xclip.timeline import TimelineConfig

    assert static_value("hf_xclip.multilabel", "MULTI_LABEL_METHODS") == MULTI_LABEL_METHODS
    assert static_value("hf_xclip.finetuning.peft_config", "METHODS") == METHODS
    assert static_value("hf_xclip.finetuning.peft_config", "LORA_TYPES") == LORA_TYPES
    assert static_value("hf_xclip.finetuning.training", "MULTI_LABEL_LOSSES") == MULTI_LABEL_LOSSES
    assert static_value("hf_xclip.finetuning.training", "REGULARIZATIONS") == REGULARIZATIONS
    assert static_value("hf_xclip.language.causal_lm", "DEFAULT_DESCRIPTION_PROMPTS") == DEFAULT_DESCRIPTION_PROMPTS
    defaults = static_defaults("hf_xclip.timeline", "TimelineConfig")
    for name in ("window", "batch_size", "smoothing", "min_duration"):
        assert defaults[name] == getattr(TimelineConfig(), name), name


def test_static_dataclass_is_the_training_arguments_without_torch():
    import dataclasses

    from hf_xclip.cli import static_dataclass
    from hf_xclip.finetuning.arguments import FewShotTrainingArguments

    static = static_dataclass("hf_xclip.finetuning.arguments", "FewShotTrainingArguments")
    real = {f.name: f for f in dataclasses.fields(FewShotTrainingArguments)}
    assert [f.name for f in dataclasses.fields(static)] == list(real)
    for field in dataclasses.fields(static):
        if field.metadata.get("cli", True) and real[field.name].default is not dataclasses.MISSING:
            assert field.default == real[field.name].default, field.name
            assert dict(field.metadata) == dict(real[field.name].metadata), field.name

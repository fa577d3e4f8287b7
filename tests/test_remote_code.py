"""Saved hf_xclip models load with trust_remote_code where hf_xclip cannot be imported.

The isolated checks run in a child interpreter (`python -I`, a `sys.meta_path` finder that refuses `hf_xclip`,
the repository removed from `sys.path`) against outputs the parent computed with hf_xclip itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from testing_utils import XClipModelTester, randomise_, save_tokenizer, synthetic_frames
from transformers import pipeline
from transformers.dynamic_module_utils import get_imports

from hf_xclip import XClipModel, XClipProcessor, XClipTextModel, XClipVideoProcessor
from hf_xclip.pipeline_zero_shot_video_classification import TASK

TEXTS = ["a red square moves right", "a green square", "cooking"]
LABELS = ["red square", "green square", "blue square"]
SHIPPED_MODEL_FILES = {"configuration_xclip.py", "modeling_xclip.py"}
SHIPPED_PROCESSOR_FILES = {
    "processing_xclip.py",
    "video_processing_xclip.py",
    "video_io.py",
    "video_sampling.py",
    "video_probe.py",
    "video_decoding.py",
    "video_windows.py",
    "video_processing_config.py",
    "video_processing_inputs.py",
    "video_processing_transforms.py",
}
# What check_imports may demand of a user's environment: hf_xclip's hard dependencies and the standard library.
ALLOWED_IMPORTS = {"torch", "transformers", "huggingface_hub", "safetensors", "numpy"}

CHILD = r'''
import json
import sys
import traceback
from pathlib import Path


class NoHfXclip:
    """Refuse every import of hf_xclip in this interpreter."""

    def find_spec(self, name, path=None, target=None):
        if name == "hf_xclip" or name.startswith("hf_xclip."):
            raise ImportError(f"hf_xclip is blocked in this interpreter ({name})")
        return None


sys.meta_path.insert(0, NoHfXclip())
sys.path[:] = [p for p in sys.path if not (Path(p or ".").resolve() / "hf_xclip").is_dir()]

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline

job = json.loads(sys.argv[1])
expected = torch.load(job["expected"], weights_only=True)
report = {}


def check(name):
    def run(fn):
        if name not in job["checks"]:
            return
        try:
            report[name] = fn() or "ok"
        except Exception:
            report[name] = "FAILED\n" + traceback.format_exc()
    return run


_models = {}


def load_model(directory):
    if directory not in _models:
        _models[directory] = AutoModel.from_pretrained(directory, trust_remote_code=True).eval()
    return _models[directory]


def remote(obj):
    module = type(obj).__module__
    assert module.startswith("transformers_modules."), f"{type(obj).__name__} comes from {module}"


@check("model")
def _():
    config = AutoConfig.from_pretrained(job["model_dir"], trust_remote_code=True)
    model = load_model(job["model_dir"])
    remote(config), remote(model)
    with torch.no_grad():
        out = model(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"],
                    pixel_values=expected["pixel_values"])
    for key in ("logits_per_video", "text_embeds", "video_embeds"):
        torch.testing.assert_close(getattr(out, key), expected[key])


@check("text_model")
def _():
    model = AutoModel.from_pretrained(job["text_model_dir"], trust_remote_code=True).eval()
    remote(model)
    with torch.no_grad():
        out = model(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"])
    torch.testing.assert_close(out.pooler_output, expected["text_pooler_output"])


@check("processor")
def _():
    processor = AutoProcessor.from_pretrained(job["model_dir"], trust_remote_code=True)
    remote(processor), remote(processor.video_processor)
    inputs = processor(text=job["texts"], videos=expected["frames"].numpy())
    for key in ("input_ids", "attention_mask", "pixel_values"):
        torch.testing.assert_close(inputs[key], expected[f"processed_{key}"])
    with torch.no_grad():
        logits = load_model(job["model_dir"])(**inputs).logits_per_video
    torch.testing.assert_close(logits, expected["processed_logits"])


@check("pipeline")
def _():
    classifier = pipeline(job["task"], model=job["pipeline_dir"], trust_remote_code=True)
    remote(classifier), remote(classifier.model)
    results = classifier([f.numpy() for f in expected["pipeline_frames"]], candidate_labels=job["labels"])
    got = [[(r["label"], r["score"]) for r in result] for result in results]
    want = job["pipeline_results"]
    assert [[label for label, _ in r] for r in got] == [[label for label, _ in r] for r in want], (got, want)
    np.testing.assert_allclose([[s for _, s in r] for r in got], [[s for _, s in r] for r in want], rtol=1e-5, atol=1e-6)


@check("hf_xclip_absent")
def _():
    loaded = sorted(name for name in sys.modules if name.split(".")[0] == "hf_xclip")
    assert not loaded, loaded
    try:
        import hf_xclip  # noqa: F401
    except ImportError:
        return "ok"
    raise AssertionError("hf_xclip was importable")


print("REPORT" + json.dumps(report))
'''


def run_without_hf_xclip(job: dict, workdir: Path, timeout: float = 300) -> dict[str, str]:
    """Run `CHILD` with `job` in an interpreter that cannot import hf_xclip; returns its per-check report.

    `job` names the checks to run (``"checks"``), the directories they load and the ``expected.pt`` file."""
    script = workdir / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        HF_MODULES_CACHE=str(workdir / "modules"),  # remote code is copied here, not into the user's cache
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    proc = subprocess.run(
        [sys.executable, "-I", str(script), json.dumps(job)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"child failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-5000:]}"
    return json.loads(lines[-1][len("REPORT") :])


def write_expectations(model_dir: Path, out_file: Path, pipeline_dir: Path | None = None) -> dict:
    """Outputs of hf_xclip itself on `model_dir` (model, processor, pipeline) saved to `out_file`; returns the job
    for `run_without_hf_xclip` with checks ``model``, ``processor``, ``pipeline`` and ``hf_xclip_absent``.
    With `pipeline_dir`, the pipeline is also saved there (``pipe.save_pretrained``) and the check loads it."""
    processor = XClipProcessor.from_pretrained(model_dir)
    model = XClipModel.from_pretrained(model_dir).eval()
    vision = model.config.vision_config
    frames = torch.from_numpy(synthetic_frames(0, num_frames=9, size=(40, 48)))
    inputs = processor(text=TEXTS, videos=frames.numpy())
    expected = {
        "frames": frames,
        **{f"processed_{k}": inputs[k] for k in ("input_ids", "attention_mask", "pixel_values")},
    }
    generator = torch.Generator().manual_seed(1)
    size = vision.image_size
    expected["pixel_values"] = torch.randn(2, vision.num_frames, 3, size, size, generator=generator)
    expected["input_ids"], expected["attention_mask"] = inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        out = model(
            input_ids=expected["input_ids"],
            attention_mask=expected["attention_mask"],
            pixel_values=expected["pixel_values"],
        )
        expected.update(
            logits_per_video=out.logits_per_video, text_embeds=out.text_embeds, video_embeds=out.video_embeds
        )
        expected["processed_logits"] = model(**inputs).logits_per_video

    classifier = pipeline(TASK, model=str(model_dir))
    pipeline_frames = [torch.from_numpy(synthetic_frames(kind, num_frames=7, size=(36, 44))) for kind in range(2)]
    results = classifier([f.numpy() for f in pipeline_frames], candidate_labels=LABELS)
    if pipeline_dir is not None:
        classifier.save_pretrained(pipeline_dir)
    expected["pipeline_frames"] = torch.stack(pipeline_frames)
    torch.save(expected, out_file)
    return {
        "expected": str(out_file),
        "model_dir": str(model_dir),
        "pipeline_dir": str(pipeline_dir or model_dir),
        "texts": TEXTS,
        "labels": LABELS,
        "task": TASK,
        "checks": ["model", "processor", "pipeline", "hf_xclip_absent"],
        "pipeline_results": [[(r["label"], r["score"]) for r in result] for result in results],
    }


def save_tiny_model(model_dir: Path, seed: int = 0) -> XClipModel:
    """A tiny random XClipModel with its XClipProcessor, written with plain `save_pretrained`."""
    tokenizer = save_tokenizer(model_dir)
    config = XClipModelTester.pipeline(len(tokenizer)).config()
    torch.manual_seed(seed)
    model = randomise_(XClipModel(config).eval(), seed, style="perturb")
    model.save_pretrained(model_dir)
    vision = config.vision_config
    video_processor = XClipVideoProcessor(num_frames=vision.num_frames, crop_size=vision.image_size)
    XClipProcessor(video_processor=video_processor, tokenizer=tokenizer).save_pretrained(model_dir)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model + processor saved with plain `save_pretrained`, the same as a pipeline save, a text model,
    and hf_xclip's outputs on them."""
    root = tmp_path_factory.mktemp("remote_code")
    model_dir, pipeline_dir, text_dir = root / "model", root / "pipeline", root / "text_model"
    model = save_tiny_model(model_dir)
    text_model = XClipTextModel(model.config.text_config).eval()
    randomise_(text_model, seed=2, style="perturb")
    text_model.save_pretrained(text_dir)
    job = write_expectations(model_dir, root / "expected.pt", pipeline_dir)
    expected = torch.load(root / "expected.pt", weights_only=True)
    with torch.no_grad():
        expected["text_pooler_output"] = (
            XClipTextModel.from_pretrained(text_dir)
            .eval()(input_ids=expected["input_ids"], attention_mask=expected["attention_mask"])
            .pooler_output
        )
    torch.save(expected, root / "expected.pt")
    job.update(text_model_dir=str(text_dir), checks=["model", "text_model", *job["checks"][1:]])
    return {"root": root, "model_dir": model_dir, "pipeline_dir": pipeline_dir, "text_dir": text_dir, "job": job}


@pytest.fixture(scope="module")
def isolated_report(saved):
    return run_without_hf_xclip(saved["job"], saved["root"])


# ------------------------------------------------------------------------------------------ what gets written


def test_save_pretrained_ships_model_and_processor_code(saved):
    files = {p.name for p in saved["model_dir"].iterdir()}
    assert SHIPPED_MODEL_FILES | SHIPPED_PROCESSOR_FILES <= files
    config = json.loads((saved["model_dir"] / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_xclip.XClipConfig",
        "AutoModel": "modeling_xclip.XClipModel",
    }
    assert "custom_pipelines" not in config  # a plain save keeps `pipeline(task, model=d)` free of trust_remote_code
    processor_config = json.loads((saved["model_dir"] / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_xclip.XClipProcessor"
    video_auto_map = processor_config["video_processor"]["auto_map"]
    assert video_auto_map["AutoVideoProcessor"] == "video_processing_xclip.XClipVideoProcessor"
    text_config = json.loads((saved["text_dir"] / "config.json").read_text())
    assert text_config["auto_map"]["AutoModel"] == "modeling_xclip.XClipTextModel"


def test_pipeline_save_records_the_task(saved):
    config = json.loads((saved["pipeline_dir"] / "config.json").read_text())
    assert config["custom_pipelines"] == {
        TASK: {
            "impl": "pipeline_zero_shot_video_classification.ZeroShotVideoClassificationPipeline",
            "pt": ["AutoModel"],
            "type": "multimodal",
        }
    }
    files = {p.name for p in saved["pipeline_dir"].iterdir()}
    assert {"pipeline_zero_shot_video_classification.py", "model.safetensors", "processor_config.json"} <= files
    assert SHIPPED_MODEL_FILES | SHIPPED_PROCESSOR_FILES <= files


def test_shipped_code_only_imports_itself_and_hard_dependencies(saved):
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted(saved["pipeline_dir"].glob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+hf_xclip\b", source, re.MULTILINE), f"{path.name} imports hf_xclip"
        assert not re.search(r"^\s*from\s+\.\.", source, re.MULTILINE), f"{path.name} imports from a parent package"
        for module in re.findall(r"^\s*from\s+\.(\w*)\s+import", source, re.MULTILINE):
            assert module and (path.parent / f"{module}.py").is_file(), f"{path.name} imports .{module}, not shipped"
        # transformers refuses to load remote code whose (non-`try`) imports are missing: keep them to hard deps
        extra = set(get_imports(path)) - stdlib - ALLOWED_IMPORTS
        assert not extra, f"{path.name} makes trust_remote_code require {sorted(extra)}"


def test_with_hf_xclip_installed_plain_saves_need_no_trust_remote_code(saved):
    frames = synthetic_frames(1, num_frames=6, size=(36, 44))
    result = pipeline(TASK, model=str(saved["model_dir"]))(frames, candidate_labels=LABELS)
    assert sorted(r["label"] for r in result) == sorted(LABELS)
    with pytest.raises(ValueError, match="trust_remote_code"):  # transformers' rule for recorded custom pipelines
        pipeline(TASK, model=str(saved["pipeline_dir"]))


# ------------------------------------------------------------------------------- loading without hf_xclip


@pytest.mark.slow
@pytest.mark.parametrize("check", ["model", "text_model", "processor", "pipeline", "hf_xclip_absent"])
def test_loads_without_hf_xclip(isolated_report, check):
    assert isolated_report.get(check) == "ok", isolated_report.get(check, f"{check} did not run")


@pytest.mark.slow
def test_isolation_blocks_hf_xclip(tmp_path):
    """The child cannot import hf_xclip even with the repository put back on sys.path (else the checks above
    would prove nothing)."""
    repo = Path(__file__).resolve().parents[1]
    prelude = CHILD.split("import numpy as np")[0]
    probe = tmp_path / "probe.py"
    probe.write_text(f"{prelude}\nsys.path.insert(0, {str(repo)!r})\nimport hf_xclip\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [sys.executable, "-I", str(probe)], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "hf_xclip is blocked" in proc.stderr, proc.stderr[-2000:]

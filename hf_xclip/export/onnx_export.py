"""Export an X-CLIP model to ONNX for onnxruntime (`hf-xclip export`), optionally with int8 linear layers.

X-CLIP's video-specific prompt generator makes the text side depend on each video, so one graph would re-encode
every label for every video. The export follows the model's own split instead (what the zero-shot pipeline runs):

* ``text_encoder.onnx``: `XClipModel.get_text_features` (once per label set);
* ``video_encoder.onnx``: `get_video_features(..., output_prompt_features=True)` (vision tower, MIT, prompt
  features), the expensive part, once per video;
* ``scorer.onnx``: `get_logits` (prompt generator, similarity), cheap, once per video and label set.

Batch, frame, label and sequence axes are dynamic (the MIT's position embedding is interpolated inside the graph
for other frame counts, as in torch). Graphs are traced with torch's dynamo exporter (`torch.onnx.export(...,
dynamo=True)`, which needs onnxscript) with eager attention (plain MatMul / Softmax, which onnxruntime fuses),
checked against the torch model before the directory is moved into place, and described in ``onnx_config.json``.
Load the result with `XClipOrtModel.from_pretrained(dir)` or ``pipeline("zero-shot-video-classification",
model=dir)``.

```python
>>> from hf_xclip import XClipModel, default_model_path
>>> from hf_xclip.export.onnx_export import export_onnx
>>> model = XClipModel.from_pretrained(default_model_path())
>>> result = export_onnx(model, "xclip-onnx", quantize="int8")  # doctest: +SKIP
```
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fingerprint import model_fingerprint
from ..labels import class_specific_rows
from ..modeling_ort import (
    GRAPHS,
    INSTALL_HINT,
    INT8_GRAPHS,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    XClipOrtModel,
    check_quantization,
    graph_file,
    quantize_graph,
    quiet_loggers,
    require_onnxruntime,
)
from ..modeling_xclip import XClipModel

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18
# torch.export specialises sizes 0 and 1 and may unify equal sizes: trace with distinct sizes >= 2.
_EXAMPLE_BATCH, _EXAMPLE_FRAMES, _EXAMPLE_LABELS, _EXAMPLE_LENGTH = 2, 5, 3, 7
# A float32 export must match the torch model this closely (logits), or nothing is written.
FP32_LOGIT_TOLERANCE = 1e-3
# Graphs above this size keep their weights in an external `<file>.data` (protobuf's limit is 2 GiB).
_EXTERNAL_DATA_BYTES = 1536 * 2**20


@dataclass
class OnnxExportResult:
    """What `export_onnx` wrote and measured.

    Attributes:
        output_dir: the exported directory.
        manifest: the content of its ``onnx_config.json``.
        max_abs_diff: per output (``logits_per_video``, ``video_embeds``, ``text_embeds``, ...) and precision
            (``float32``, ``int8``), the largest difference from the torch model on the check inputs.
    """

    output_dir: Path
    manifest: dict[str, Any]
    max_abs_diff: dict[str, dict[str, float]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------- graphs
class XClipTextEncoderGraph(nn.Module):
    """What ``text_encoder.onnx`` computes: `XClipModel.get_text_features(...).pooler_output`."""

    def __init__(self, model: XClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


class XClipVideoEncoderGraph(nn.Module):
    """What ``video_encoder.onnx`` computes: the video embedding and (with a prompt generator) the prompt features."""

    def __init__(self, model: XClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        prompts = self.model.config.use_prompt_generator
        out = self.model.get_video_features(pixel_values, output_prompt_features=prompts)
        return (out.pooler_output, out.prompt_features) if prompts else (out.pooler_output,)


class XClipScorerGraph(nn.Module):
    """What ``scorer.onnx`` computes: `XClipModel.get_logits` (prompt generator, scaled cosine similarity)."""

    def __init__(self, model: XClipModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, video_embeds: torch.Tensor, text_embeds: torch.Tensor, prompt_features: torch.Tensor | None = None
    ):
        return self.model.get_logits(video_embeds, text_embeds, prompt_features)


def _graph_specs(model: XClipModel) -> dict[str, dict[str, Any]]:
    """Per graph: the wrapper module, example inputs, input / output names and their axes (names are dynamic)."""
    config = model.config
    text, vision = config.text_config, config.vision_config
    dim, size = config.projection_dim, vision.image_size
    patches = (size // vision.patch_size) ** 2
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, text.vocab_size, (_EXAMPLE_LABELS, _EXAMPLE_LENGTH), generator=generator)
    if text.eos_token_id is not None:
        ids[:, -1] = text.eos_token_id
    prompts = config.use_prompt_generator
    video_out = {"video_embeds": ["batch", dim]}
    scorer_in = {"video_embeds": ["batch", dim], "text_embeds": ["labels", dim]}
    scorer_args = [
        torch.randn(_EXAMPLE_BATCH, dim, generator=generator),
        torch.randn(_EXAMPLE_LABELS, dim, generator=generator),
    ]
    if prompts:
        video_out["prompt_features"] = ["batch", patches, dim]
        scorer_in["prompt_features"] = ["batch", patches, dim]
        scorer_args.append(torch.randn(_EXAMPLE_BATCH, patches, dim, generator=generator))
    return {
        "text_encoder": {
            "module": XClipTextEncoderGraph(model),
            "args": (ids, torch.ones_like(ids)),
            "inputs": {"input_ids": ["labels", "sequence"], "attention_mask": ["labels", "sequence"]},
            "outputs": {"text_embeds": ["labels", dim]},
        },
        "video_encoder": {
            "module": XClipVideoEncoderGraph(model),
            "args": (
                torch.randn(_EXAMPLE_BATCH, _EXAMPLE_FRAMES, vision.num_channels, size, size, generator=generator),
            ),
            "inputs": {"pixel_values": ["batch", "frames", vision.num_channels, size, size]},
            "outputs": video_out,
        },
        "scorer": {
            "module": XClipScorerGraph(model),
            "args": tuple(scorer_args),
            "inputs": scorer_in,
            "outputs": {"logits_per_video": ["batch", "labels"], "prompted_text_embeds": ["batch", "labels", dim]},
        },
    }


def _dynamic_shapes(inputs: dict[str, list]) -> dict[str, dict[int, Any]]:
    dims: dict[str, Any] = {}
    shapes = {}
    for name, axes in inputs.items():
        shapes[name] = {
            i: dims.setdefault(axis, torch.export.Dim(axis)) for i, axis in enumerate(axes) if isinstance(axis, str)
        }
    return shapes


def export_graph(name: str, spec: dict[str, Any], path: Path, opset: int) -> None:
    """Trace one graph to `path` and check that every axis meant to be dynamic stayed dynamic."""
    module = spec["module"].eval()
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    with warnings.catch_warnings(), quiet_loggers("onnxscript", "onnx_ir", "torch.onnx", level=logging.ERROR):
        warnings.simplefilter("ignore")  # the exporter's deprecation and axis-renaming chatter
        torch.onnx.export(
            module,
            spec["args"],
            str(path),
            input_names=list(spec["inputs"]),
            output_names=list(spec["outputs"]),
            dynamic_shapes=_dynamic_shapes(spec["inputs"]),
            opset_version=opset,
            dynamo=True,
            external_data=params > _EXTERNAL_DATA_BYTES,
            verbose=False,
        )
    _check_dynamic_axes(name, path, spec["inputs"])


def _check_dynamic_axes(name: str, path: Path, inputs: dict[str, list]) -> None:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for value in graph.input:
        axes = inputs.get(value.name)
        if axes is None:
            raise RuntimeError(f"{name}: the exported graph has an unexpected input {value.name!r}.")
        dims = value.type.tensor_type.shape.dim
        for index, axis in enumerate(axes):
            if isinstance(axis, str) and dims[index].HasField("dim_value"):
                raise RuntimeError(
                    f"{name}: axis {index} ({axis}) of input {value.name!r} was fixed to {dims[index].dim_value} "
                    "while exporting; the graph would reject other sizes."
                )


# ---------------------------------------------------------------------------------------------------------- export
def export_onnx(
    model: XClipModel,
    output_dir: str | os.PathLike,
    *,
    processor: Any = None,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    verify: bool = True,
    require_processor: bool = False,
) -> OnnxExportResult:
    """Export `model` to `output_dir`: three ONNX graphs, ``onnx_config.json``, ``config.json`` and the processor.

    Guide: docs/deployment.md.

    Args:
        model: an [`XClipModel`] (any dtype / device; it is exported as a float32 CPU copy and left unchanged).
        output_dir: directory to create (must be absent or empty unless `overwrite`). Written atomically: nothing
            is left there when a step fails.
        processor: the `XClipProcessor` to ship (default: the one saved with the model, found through
            `model.name_or_path`). Without one the directory holds the graphs but cannot feed the pipeline.
        quantize: ``"int8"`` also writes ``video_encoder.int8.onnx`` (the vision tower's linear layers in int8, see
            `quantize_graph`) and makes it the directory's default; the float32 graphs stay (``quantize="none"`` at
            load time selects them).
        opset: ONNX opset of the graphs.
        verify: run the exported graphs with onnxruntime on random inputs and compare with the torch model; a
            float32 logit difference above 1e-3 is an error. The differences are recorded in the manifest.
        require_processor: raise instead of exporting without a processor (what `hf-xclip export` does).

    Returns:
        [`OnnxExportResult`].
    """
    _require_export_dependencies()
    from ..conversion.output import staged_output_dir

    quantize = check_quantization(quantize)
    if not isinstance(model, XClipModel):
        raise ValueError(f"export_onnx needs an hf_xclip XClipModel, got {type(model).__name__}.")
    if class_specific_rows(model):
        raise ValueError(
            "this model has a class-specific CoOp context: its text embeddings depend on the order of the labels, "
            "which the exported text encoder cannot know; export the model without it."
        )
    processor = processor if processor is not None else _saved_processor(model)
    if processor is None and require_processor:
        raise ValueError(
            f"no processor / tokenizer found with the model ({model.name_or_path or 'no name_or_path'}): the exported "
            "directory could not feed the pipeline; pass processor= (the XClipProcessor the model was saved with)."
        )
    with staged_output_dir(output_dir, overwrite=overwrite) as staging, _export_copy(model) as exportable:
        specs = _graph_specs(exportable)
        graphs = {}
        for name in GRAPHS:
            spec = specs[name]
            logger.info("exporting %s", name)
            export_graph(name, spec, staging / graph_file(name), opset)
            graphs[name] = {"file": graph_file(name), "inputs": spec["inputs"], "outputs": spec["outputs"]}
        manifest = _manifest(exportable, graphs, opset)
        if quantize is not None:
            manifest["quantization"][quantize] = _quantize_dir(staging, graphs, quantize)
            manifest["default_quantization"] = quantize
        _save_config_and_processor(exportable, processor, staging, manifest)
        _write_manifest(staging, manifest)
        diffs = _verify(exportable, staging, quantize) if verify else {}
        manifest["verification"] = diffs
        _write_manifest(staging, manifest)
    return OnnxExportResult(output_dir=Path(output_dir), manifest=manifest, max_abs_diff=diffs)


def quantize_onnx_dir(model_dir: str | os.PathLike, quantize: str = "int8", *, make_default: bool = True) -> dict:
    """Add int8 graphs to an exported directory (what ``--quantize int8`` does at export time); returns the manifest."""
    from ..modeling_ort import read_manifest

    quantize = check_quantization(quantize)
    if quantize is None:
        raise ValueError("quantize_onnx_dir needs a quantization, e.g. 'int8'.")
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    manifest.setdefault("quantization", {})[quantize] = _quantize_dir(model_dir, manifest["graphs"], quantize)
    if make_default:
        manifest["default_quantization"] = quantize
    _write_manifest(model_dir, manifest)
    return manifest


def _quantize_dir(directory: Path, graphs: dict[str, dict], quantize: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name in INT8_GRAPHS:
        target = graph_file(name, quantize)
        settings[name] = quantize_graph(directory / graphs[name]["file"], directory / target)
        graphs[name].setdefault("quantized", {})[quantize] = target
    return {"graphs": settings}


@contextmanager
def _export_copy(model: XClipModel) -> Iterator[XClipModel]:
    """The model as a float32 CPU module in eval mode with eager attention, without changing the caller's model
    (a copy is made only when the dtype or device differ; the attention setting is restored)."""
    needs_copy = model.dtype != torch.float32 or model.device.type != "cpu"
    exportable = copy.deepcopy(model).to("cpu", torch.float32) if needs_copy else model
    was_training = exportable.training
    attention = exportable.config._attn_implementation
    exportable.eval()
    exportable.set_attn_implementation("eager")
    try:
        yield exportable
    finally:
        exportable.set_attn_implementation(attention)
        exportable.train(was_training)


def _manifest(model: XClipModel, graphs: dict[str, dict], opset: int) -> dict[str, Any]:
    import onnx
    import onnxscript

    from .. import __version__

    return {
        "format": MANIFEST_FORMAT,
        "manifest_version": MANIFEST_VERSION,
        "opset": opset,
        "graphs": graphs,
        "default_quantization": None,
        "quantization": {},
        "source": {
            "name_or_path": str(model.name_or_path or ""),
            "architecture": type(model).__name__,
            "model_type": model.config.model_type,
            "fingerprint": {part: model_fingerprint(model, part) for part in ("text", "video", "all")},
            "num_parameters": sum(p.numel() for p in model.parameters()),
        },
        "export": {
            "exporter": "torch.onnx.export(dynamo=True)",
            "attn_implementation": "eager",
            "hf_xclip": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__,
            "onnxruntime": require_onnxruntime().__version__,
        },
    }


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    import json

    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _saved_processor(model: XClipModel) -> Any:
    """The processor saved with the model (hf_xclip's, or transformers' X-CLIP layout), or None."""
    source = model.name_or_path
    if not source:
        return None
    from ..loading import resolve_components
    from ..processing_xclip import XClipProcessor

    try:
        processor, video_processor, tokenizer = resolve_components(source, None, None, None)
    except (OSError, ValueError) as err:
        logger.warning("no processor found with the model (%s): %s", source, err)
        return None
    return processor or XClipProcessor(video_processor=video_processor, tokenizer=tokenizer)


def _save_config_and_processor(model: XClipModel, processor: Any, directory: Path, manifest: dict) -> None:
    from ..hub.push import remove_remote_code

    model.config.to_json_file(directory / "config.json")
    if processor is None:
        logger.warning("exporting without a processor: load the directory with processor= / tokenizer= given.")
    else:
        processor.save_pretrained(directory)
    remove_remote_code(directory)  # the directory is read by the installed hf_xclip (XClipOrtModel), not as code
    manifest["processor"] = processor is not None


@torch.no_grad()
def _verify(model: XClipModel, directory: Path, quantize: str | None) -> dict[str, dict[str, float]]:
    """Largest differences between torch and onnxruntime on random inputs (2 videos of the model's frame count,
    and 3 frames, against 5 texts); a float32 logit difference above `FP32_LOGIT_TOLERANCE` raises."""
    text, vision = model.config.text_config, model.config.vision_config
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, text.vocab_size, (5, min(9, text.max_position_embeddings)), generator=generator)
    if text.eos_token_id is not None:
        ids[:, -1] = text.eos_token_id
    size = vision.image_size
    videos = [
        torch.randn(2, frames, vision.num_channels, size, size, generator=generator)
        for frames in dict.fromkeys((vision.num_frames, 3))
    ]
    expected = [model(input_ids=ids, pixel_values=pixels) for pixels in videos]
    diffs: dict[str, dict[str, float]] = {}
    for precision, quantization in [("float32", "none")] + ([(quantize, quantize)] if quantize else []):
        ort_model = XClipOrtModel.from_pretrained(directory, quantize=quantization)
        worst: dict[str, float] = {}
        for pixels, reference in zip(videos, expected):
            actual = ort_model(input_ids=ids, pixel_values=pixels)
            for key in ("logits_per_video", "video_embeds", "text_embeds"):
                diff = (actual[key] - reference[key]).abs().max().item()
                worst[key] = max(worst.get(key, 0.0), diff)
            probs = (actual.logits_per_video.softmax(-1) - reference.logits_per_video.softmax(-1)).abs().max().item()
            worst["probabilities"] = max(worst.get("probabilities", 0.0), probs)
        diffs[precision] = {key: float(f"{value:.3g}") for key, value in worst.items()}
    if diffs["float32"]["logits_per_video"] > FP32_LOGIT_TOLERANCE:
        raise RuntimeError(
            f"the exported float32 graphs differ from the torch model by {diffs['float32']['logits_per_video']:.2e} "
            f"in the logits (tolerance {FP32_LOGIT_TOLERANCE}); nothing was written."
        )
    return diffs


def _require_export_dependencies() -> None:
    missing = []
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: {INSTALL_HINT}"
        )


__all__ = ["DEFAULT_OPSET", "OnnxExportResult", "export_onnx", "quantize_onnx_dir"]

"""Generate docs/api.md from the docstrings of hf_xclip's public API.

    python docs/_tools/gen_api.py           # rewrite docs/api.md
    python docs/_tools/gen_api.py --check   # exit 1 if docs/api.md is not what the code says (tests run this)

Each section documents the names a module exports (its ``__all__``, else the explicit list below): signature and
docstring of functions, of classes (constructor) and of the public methods a class defines itself. Docstrings are
printed as they are (they are written in markdown, with ```python examples).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
API_MD = REPO / "docs" / "api.md"

# (module, title, names or None for the module's __all__)
SECTIONS: list[tuple[str, str, list[str] | None]] = [
    ("hf_xclip.configuration_xclip", "Configurations", ["XClipConfig", "XClipTextConfig", "XClipVisionConfig"]),
    (
        "hf_xclip.modeling_xclip",
        "Models",
        ["XClipModel", "XClipTextModel", "XClipVisionModel", "XClipOutput", "XClipVideoOutput"],
    ),
    ("hf_xclip.video_processing_xclip", "Video processor", ["XClipVideoProcessor"]),
    ("hf_xclip.processing_xclip", "Processor", ["XClipProcessor"]),
    (
        "hf_xclip.pipeline_zero_shot_video_classification",
        "Zero-shot video classification pipeline",
        ["ZeroShotVideoClassificationPipeline", "PreparedLabels", "VideoClassificationError"],
    ),
    (
        "hf_xclip.timeline",
        "Timelines of long videos",
        [
            "video_timeline",
            "TimelineConfig",
            "Timeline",
            "Segment",
            "find_segments",
            "window_cells",
            "smooth_scores",
            "evaluate_segments",
            "plot_timeline",
            "timeline_html",
            "format_time",
        ],
    ),
    (
        "hf_xclip.labels",
        "Labels: texts, templates, embeddings, banks",
        [
            "LabelEncoder",
            "LabelBank",
            "normalize_labels",
            "normalize_templates",
            "validate_template",
            "model_template",
            "resolve_templates",
            "read_label_file",
            "read_label_descriptions",
            "normalize_descriptions",
            "find_label_prompter",
            "tokenize_texts",
            "ensemble_text_embeddings",
            "TextEmbeddingCache",
        ],
    ),
    (
        "hf_xclip.video_io",
        "Video decoding",
        [
            "read_video",
            "read_frames",
            "probe_video",
            "sample_frame_indices",
            "sample_frame_indices_by_time",
            "frame_indices_at",
            "iter_windows",
            "window_spans",
            "VideoWindow",
            "VideoWindows",
            "fetch_video",
            "VideoInfo",
            "XClipVideoMetadata",
            "DecodedVideo",
            "VideoDecodeError",
            "torchcodec_status",
            "torchcodec_available",
            "require_backend",
            "DecodeBackendUnavailableError",
            "is_loaded_video",
        ],
    ),
    ("hf_xclip.data", "Writing test videos", ["write_video"]),
    (
        "hf_xclip.search",
        "Video index: building",
        [
            "build_index",
            "IndexingResult",
            "IndexSettings",
            "IndexInfo",
            "IndexModelMismatchError",
            "read_info",
            "read_manifest",
            "Manifest",
            "create_index",
            "write_shard",
            "RowBatch",
            "quantize_prompt_features",
            "dequantize_prompt_features",
            "build_faiss",
            "load_or_build_faiss",
            "FaissInfo",
        ],
    ),
    ("hf_xclip.search.index", "Video index: search", ["VideoIndex", "RankOptions", "exact_scores"]),
    ("hf_xclip.distributed", "Batch inference on Ray Data", ["XClipPredictor", "PredictorConfig", "output_schema"]),
    (
        "hf_xclip.distributed.jobs",
        "Resumable batch jobs",
        ["run_job", "run_index_job", "EngineOptions", "JobResult", "read_predictions", "write_segments"],
    ),
    (
        "hf_xclip.data.folders",
        "Finding and reading labelled videos",
        [
            "VIDEO_EXTENSIONS",
            "find_videos",
            "scan_video_folder",
            "read_annotations",
            "AnnotationError",
            "VideoFolder",
            "VideoItem",
            "select_shots",
            "split_heldout",
            "drop_unreadable",
        ],
    ),
    (
        "hf_xclip.multilabel",
        "Multi-label scores",
        [
            "resolve_method",
            "video_label_scores",
            "scores_from_logits",
            "fit_sigmoid_head",
            "set_sigmoid_head",
            "asymmetric_loss",
            "DEFAULT_BACKGROUND_PROMPTS",
        ],
    ),
    (
        "hf_xclip.loading",
        "Loading models",
        ["load_model", "load_family_model", "as_video_text_model", "XClipAutoModel"],
    ),
    (
        "hf_xclip.modeling_video_text",
        "The video-text model interface and its families",
        [
            "VideoTextModelMixin",
            "VideoTextCapabilities",
            "VideoTextVideoOutput",
            "ImageTextVideoModel",
            "NativeVideoTextModel",
            "ModelFamily",
            "family_for_model_type",
            "UnsupportedModelError",
        ],
    ),
    (
        "hf_xclip.processing_video_text",
        "Video processing of the other families",
        ["FrameVideoProcessor", "VideoTextProcessor"],
    ),
    ("hf_xclip.export.onnx_export", "ONNX export", ["export_onnx", "quantize_onnx_dir", "OnnxExportResult"]),
    (
        "hf_xclip.modeling_ort",
        "ONNX models on onnxruntime",
        ["XClipOrtModel", "quantize_graph", "read_manifest", "is_onnx_model_dir"],
    ),
    ("hf_xclip.hub", "Sharing on the Hub", None),
    (
        "hf_xclip.hub.model_cards",
        "Model cards",
        [
            "converted_model_card",
            "finetuned_model_card",
            "adapter_model_card",
            "default_model_card",
            "check_model_card",
            "card_data",
        ],
    ),
    (
        "hf_xclip.conversion",
        "Conversion of original checkpoints",
        [
            "convert_xclip_checkpoint",
            "convert_vificlip_checkpoint",
            "convert_clip_to_xclip",
            "read_original_checkpoint",
            "build_clip_tokenizer",
            "clean_text",
            "ConversionResult",
            "ExportOptions",
            "ConversionError",
        ],
    ),
    (
        "hf_xclip.finetuning",
        "Parameter-efficient fine-tuning",
        [
            "XClipAdapterConfig",
            "CoOpConfig",
            "VLPromptsConfig",
            "get_xclip_peft_model",
            "lora_target_modules",
            "init_prompt_context",
            "resolve_vl_prompts",
            "init_vl_prompts",
        ],
    ),
    (
        "hf_xclip.finetuning.training",
        "Few-shot training",
        ["FewShotTrainingArguments", "train_few_shot", "wise_interpolate"],
    ),
    (
        "hf_xclip.evaluation",
        "Evaluation",
        [
            "evaluate_videos",
            "EvaluationResult",
            "evaluate_multi_label",
            "MultiLabelResult",
            "multi_label_metrics",
            "average_precision",
            "calibrate_sigmoid_head",
        ],
    ),
    (
        "hf_xclip.finetuning.adapters",
        "Saving and loading adapters",
        ["save_adapter", "load_model_with_adapter", "apply_adapter_head"],
    ),
    (
        "hf_xclip.language.prompter",
        "Language-model label prompter",
        ["LLMPrompterConfig", "XClipLLMPrompter", "attach_label_prompter", "detach_label_prompter"],
    ),
    (
        "hf_xclip.language.causal_lm",
        "Language models for labels",
        ["load_language_model", "language_model_signature", "DescriptionSettings", "describe_labels"],
    ),
    (
        "hf_xclip.data.synthetic",
        "Synthetic data",
        [
            "SyntheticVideoSpec",
            "render_video",
            "render_sequence",
            "distinct_colour_specs",
            "SyntheticVideoDataset",
            "write_video_folder",
            "SyntheticScene",
            "sample_scenes",
            "render_scene",
            "SyntheticSceneDataset",
            "write_scene_videos",
            "base_labels",
            "novel_labels",
            "build_synthetic_tokenizer",
        ],
    ),
    (
        "hf_xclip.app.handlers",
        "The web app (hf-xclip app)",
        [
            "AppConfig",
            "AppState",
            "AppError",
            "classify",
            "timeline",
            "timeline_files",
            "search",
            "search_thumbnails",
            "window_clip",
        ],
    ),
    ("hf_xclip.registration", "Registration", ["register"]),
    ("hf_xclip.embedded_model.location", "Embedded default model", ["default_model_path"]),
]

HEADER = """# API reference

Generated from the docstrings by `python docs/_tools/gen_api.py` (the test suite checks that this file is up to
date: edit the docstrings, then run the script). Everything in the first four sections is importable from
`hf_xclip` directly. Guides: [quickstart](quickstart.md), [zero-shot classification](zero_shot.md),
[conversion](conversion.md), [fine-tuning](finetuning.md).
"""


SECTION_HEADERS = ("Args:", "Arguments:", "Attributes:", "Returns:", "Raises:", "Yields:", "Example:", "Examples:")
ITEM = re.compile(r"^(\*{0,2}[\w.*]+(?:\s*/\s*[\w.*]+)*)(\s*\([^)]*\))?:\s*(.*)$")


def _doc(obj) -> str:
    doc = inspect.getdoc(obj)
    return _markdown(doc.strip()) if doc else "*(no docstring)*"


def _markdown(doc: str) -> str:
    """Google-style sections (``Args:`` + indented items) as bold headings and bullet lists; code kept as is."""
    out, in_code, in_section = [], False, False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            out.append(stripped)
            continue
        if in_code:
            out.append(line[4:] if in_section and line.startswith("    ") else line)
            continue
        if stripped in SECTION_HEADERS:
            in_section = stripped not in ("Example:", "Examples:")
            out += ["", f"**{stripped[:-1]}**", ""]
            continue
        if in_section and line.startswith("    ") and not line.startswith("        "):
            match = ITEM.match(stripped)
            out.append(f"- `{match.group(1)}`{match.group(2) or ''}: {match.group(3)}" if match else f"- {stripped}")
        elif in_section and line.startswith("        "):
            out.append("  " + stripped)
        else:
            if stripped and not line.startswith(" "):
                in_section = False
            out.append(line)
    return "\n".join(out).strip()


def _signature(obj, drop: set[str] = frozenset()) -> str:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    if drop:  # keyword-only base fields (transformers' config kwargs) are summarised; a few positional ones kept
        params = [p for name, p in signature.parameters.items() if name not in drop]
        text = str(signature.replace(parameters=params))
        if text.startswith("(*, "):
            return text.replace("(*, ", "(**base_config_kwargs, ", 1)
    return str(signature).replace("<factory>", "...")


def _inherited_fields(cls) -> set[str]:
    """Dataclass fields that come from a base outside hf_xclip (e.g. transformers' PreTrainedConfig)."""
    fields = set()
    for base in cls.__mro__[1:]:
        if dataclasses.is_dataclass(base) and not base.__module__.startswith("hf_xclip"):
            fields |= {field.name for field in dataclasses.fields(base)}
    return fields


def _own_public_methods(cls) -> list[tuple[str, object]]:
    methods = []
    for name, member in cls.__dict__.items():
        if name.startswith("_") and name != "__call__":
            continue
        function = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
        if inspect.isfunction(function) and function.__doc__ and function.__module__.startswith("hf_xclip"):
            methods.append((name, function))
    return methods


def _render_object(module_name: str, name: str, obj) -> list[str]:
    lines = []
    if inspect.isclass(obj) and typing.is_typeddict(obj):  # keyword arguments: its keys are in its docstring
        header = f"class {module_name}.{name}(TypedDict, total={obj.__total__})"
        lines += [f"### `{name}`", "", f"```python\n{header}\n```", "", _doc(obj), ""]
    elif inspect.isclass(obj):
        kind = "dataclass" if dataclasses.is_dataclass(obj) else "class"
        init = obj if dataclasses.is_dataclass(obj) else obj.__init__
        signature = _signature(init, _inherited_fields(obj) if dataclasses.is_dataclass(obj) else set())
        lines += [f"### `{name}`", "", f"```python\n{kind} {module_name}.{name}{signature}\n```", ""]
        lines += [_doc(obj), ""]
        for method_name, method in _own_public_methods(obj):
            lines += [f"#### `{name}.{method_name}`", "", f"```python\n{method_name}{_signature(method)}\n```", ""]
            lines += [_doc(method), ""]
    elif callable(obj):
        lines += [f"### `{name}`", "", f"```python\n{module_name}.{name}{_signature(obj)}\n```", "", _doc(obj), ""]
    else:
        lines += [f"### `{name}`", "", f"`{module_name}.{name}`: `{type(obj).__name__}`", ""]
    return lines


def render() -> str:
    lines = [HEADER, "## Contents", ""]
    lines += [f"- [{title}](#{title.lower().replace(' ', '-')}) (`{module}`)" for module, title, _ in SECTIONS]
    lines.append("")
    for module_name, title, names in SECTIONS:
        module = importlib.import_module(module_name)
        names = names if names is not None else list(module.__all__)
        lines += [f"## {title}", "", f"`{module_name}`", ""]
        module_doc = inspect.getdoc(module)
        if module_doc:
            lines += [module_doc.strip().split("\n\n")[0], ""]
        for name in names:
            lines += _render_object(module_name, name, getattr(module, name))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with docs/api.md; exit 1 if it differs")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    text = render()
    if args.check:
        current = API_MD.read_text(encoding="utf-8") if API_MD.is_file() else ""
        if current != text:
            print(f"{API_MD} is out of date: run `python docs/_tools/gen_api.py`.", file=sys.stderr)
            return 1
        return 0
    API_MD.write_text(text, encoding="utf-8")
    print(f"wrote {API_MD} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`hf-xclip` command line: one sub-command per module in `hf_xclip.commands`, and what they share (exit codes,
the usage error, the model argument). Commands import the library and this module, never each other."""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import logging
import os
import re
import sys
import types
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

# Each entry is a module of hf_xclip.commands defining `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS: list[str] = [
    "convert",
    "classify",
    "timeline",
    "demo",
    "finetune",
    "evaluate",
    "calibrate",
    "export",
    "labels",
    "index",
    "search",
    "app",
]

# Exit status of every command: success, some items failed (the others were still done), bad input.
EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input (exit status `EXIT_USAGE`)."""


def _static_definition(module: str, name: str) -> ast.stmt:
    """The statement defining `name` in `module` (following ``from .x import name`` re-exports), read from its
    source without importing it."""
    # the file of an hf_xclip module, found without importing its parent packages (which import torch)
    root, _, rest = module.partition(".")
    base = Path(__file__).resolve().parent.joinpath(*rest.split(".")) if rest else Path(__file__).resolve().parent
    is_package = (base / "__init__.py").is_file()
    source = base / "__init__.py" if is_package else base.with_suffix(".py")
    if root != __package__ or not source.is_file():
        raise LookupError(f"no module {module}")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node
        if isinstance(node, ast.Assign) and any(name in _assigned_names(t) for t in node.targets):
            return node
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            package = module if is_package else module.rpartition(".")[0]
            origin = (
                importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                if node.level
                else node.module or ""
            )
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            return _static_definition(origin, original)
    raise LookupError(f"{module} defines no {name}")


def _assigned_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple):
        return [element.id if isinstance(element, ast.Name) else "" for element in target.elts]
    return []


def static_value(module: str, name: str) -> Any:
    """A module-level literal constant (a tuple of choices, a default) without importing its module: the command
    parsers show the library's choices while `hf-xclip ... --help` stays free of torch and transformers."""
    node = _static_definition(module, name)
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        raise LookupError(f"{module}.{name} is not a constant")
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):  # A, B = "a", "b"
        return ast.literal_eval(node.value)[_assigned_names(node.targets[0]).index(name)]
    return ast.literal_eval(node.value)


def static_defaults(module: str, name: str) -> dict[str, Any]:
    """The literal field defaults of dataclass `name` in `module` (``x: int = 1`` or ``field(default=1, ...)``),
    read without importing the module."""
    node = _static_definition(module, name)
    if not isinstance(node, ast.ClassDef):
        raise LookupError(f"{module}.{name} is not a class")
    defaults: dict[str, Any] = {}
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None):
            continue
        value: ast.expr | None = item.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
            value = next((k.value for k in value.keywords if k.arg == "default"), None)
        try:
            defaults[item.target.id] = ast.literal_eval(value) if value is not None else None
        except ValueError:
            continue  # not a literal: not needed by a parser
    return defaults


def static_dataclass(module: str, name: str) -> type:
    """A stand-in for dataclass `name` of `module`, read from its source without importing it: the same fields,
    annotations, literal defaults and metadata (module-level constants resolved), for `add_dataclass_arguments`
    (a command's flags) while `hf-xclip ... --help` stays free of torch. Build the real class from the parsed
    arguments with `dataclass_from_args`."""
    import typing

    node = _static_definition(module, name)
    if not isinstance(node, ast.ClassDef):
        raise LookupError(f"{module}.{name} is not a class")
    constants: dict[str, Any] = {}

    def value(expr: ast.expr) -> Any:
        if isinstance(expr, ast.Name):
            if expr.id not in constants:
                constants[expr.id] = static_value(module, expr.id)
            return constants[expr.id]
        if isinstance(expr, ast.Dict):
            return {value(k): value(v) for k, v in zip(expr.keys, expr.values) if k is not None}
        return ast.literal_eval(expr)

    namespace = {
        "Literal": typing.Literal,
        "int": int,
        "float": float,
        "str": str,
        "bool": bool,
        "tuple": tuple,
        "list": list,
        "dict": dict,
        "None": None,
    }
    fields: list[tuple[str, Any, Any]] = []
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        annotation = eval(ast.unparse(item.annotation), namespace)  # noqa: S307 (this package's own source)
        default: Any = dataclasses.MISSING
        metadata: dict[str, Any] = {}
        if isinstance(item.value, ast.Call) and getattr(item.value.func, "id", None) == "field":
            keywords = {k.arg: k.value for k in item.value.keywords}
            if "default" in keywords:
                default = value(keywords["default"])
            if "metadata" in keywords:
                metadata = value(keywords["metadata"])
        elif item.value is not None:
            default = value(item.value)
        if default is dataclasses.MISSING:
            metadata = {**metadata, "cli": metadata.get("cli", True) and "default_factory" not in ast.unparse(item)}
            default = None
        fields.append((item.target.id, annotation, dataclasses.field(default=default, metadata=metadata)))
    return dataclasses.make_dataclass(name, fields)


def model_or_default(model: str | None) -> str:
    """`--model`, or the embedded default model when it is not given.

    Raises:
        UsageError: no `--model` and the package was installed without its default model.
    """
    if model:
        return model
    from .embedded_model.location import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError as err:
        raise UsageError(f"no --model given and {err}") from None


def add_label_side_arguments(parser: argparse.ArgumentParser, *, bank: bool = True, adapter: bool = True) -> None:
    """The label-side options every command that scores labels shares: descriptions, a label bank, and where the
    language model of an adapter's LLM prompter lives."""
    group = parser.add_argument_group("label side")
    group.add_argument(
        "--label-descriptions",
        type=Path,
        metavar="FILE.json",
        help="JSON object label -> list of sentences (e.g. from `hf-xclip labels describe`), ensembled with each label",
    )
    if bank:
        group.add_argument(
            "--label-bank",
            type=Path,
            metavar="BANK",
            help="label embeddings from `hf-xclip labels encode` (same model and adapter): its labels are not re-encoded",
        )
    if adapter:
        group.add_argument(
            "--language-model",
            metavar="NAME_OR_PATH",
            help="for an adapter with an LLM prompter: where its language model is (default: the name it was trained with)",
        )


def _naming(path: Path | None, err: Exception) -> str:
    """The error's message, led by the file's name when it does not say it (e.g. a file that is not UTF-8)."""
    if isinstance(err, UnicodeDecodeError):
        return (
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); re-save the file "
            "as UTF-8"
        )
    text = str(err)
    return text if path is None or str(path) in text else f"{path}: {text}"


def add_decode_argument(parser: argparse.ArgumentParser) -> None:
    """``--decode-backend``, shared by every command that decodes videos (see `hf_xclip.video_io`)."""
    parser.add_argument(
        "--decode-backend",
        choices=static_value("hf_xclip.video_io", "BACKENDS"),  # the video core's list, read without importing it
        help="video decoder: auto (default: PyAV; torchcodec, then decord, for codecs PyAV cannot decode), "
        "torchcodec (needs FFmpeg's libraries: pip install 'hf_xclip[torchcodec]' and apt-get install ffmpeg), "
        "pyav or decord",
    )


def apply_decode_backend(video_processor: Any, backend: str | None) -> Any:
    """Set ``--decode-backend`` on a video processor (or on the ``video_processor`` of a processor / pipeline);
    ``None`` keeps its own. Returns the previous value (to restore before saving the processor).

    Raises:
        UsageError: the backend cannot run here, naming what to install.
    """
    target = getattr(video_processor, "video_processor", video_processor)
    previous = target.decode_backend
    if backend is None:
        return previous
    from .video_io import require_backend

    try:
        require_backend(backend)
    except ImportError as err:
        raise UsageError(str(err)) from None
    target.decode_backend = backend
    return previous


def read_descriptions_argument(path: Path | None) -> dict[str, list[str]] | None:
    """`--label-descriptions`, read and checked.

    Raises:
        UsageError: naming the file (and label) that is wrong.
    """
    if path is None:
        return None
    from .labels import read_label_descriptions

    try:
        return read_label_descriptions(path)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(_naming(path, err)) from None


def read_bank_argument(path: Path | None) -> Any:
    """`--label-bank`, loaded (a `LabelBank`), or None.

    Raises:
        UsageError: the file is missing or not a label bank.
    """
    if path is None:
        return None
    from .labels import LabelBank

    try:
        return LabelBank.load(path)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(_naming(path, err)) from None


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of the dataclass `cls`, with its type, choices (a ``Literal``), default and help (its
    ``metadata["help"]``, plus the default), so that the dataclass is the one declaration of a command's options.

    A field's metadata may set ``flag`` (e.g. ``"--lr"``; default ``--field-name``), ``group`` (the title of an
    argument group, made once) and ``cli=False`` (no flag). A bool field defaulting to False is a switch; one
    defaulting to True is turned off by its flag (name it ``--no-...``). Read the values back with
    [`dataclass_from_args`].
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if meta.get("cli", True) is False:
            continue
        target = parser
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            target = groups[meta["group"]]
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        kind, choices = _argument_type(hints[field.name])
        help_text = meta.get("help", "")
        if kind is bool:
            action = "store_false" if field.default is True else "store_true"
            target.add_argument(flag, dest=field.name, action=action, help=help_text)
            continue
        if field.default is not None:
            help_text = f"{help_text} (default {field.default})"
        target.add_argument(flag, dest=field.name, type=kind, choices=choices, default=field.default, help=help_text)


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """`cls` built from the flags [`add_dataclass_arguments`] added (and `overrides` for fields without a flag)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def _argument_type(hint: Any) -> tuple[type, tuple | None]:
    """(type for argparse, choices) of a field's type: ``X | None`` is X; a ``Literal`` gives its values."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return type(args[0]), tuple(args)
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _argument_type(args[0]) if len(args) == 1 else (str, None)
    return hint, None


def add_label_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--labels`` / ``--labels-file`` (one of them) and ``--template`` (repeatable); read them with `read_labels`."""
    labels = parser.add_mutually_exclusive_group(required=required)
    labels.add_argument("--labels", help="comma-separated labels, e.g. 'surfing,juggling,cooking'")
    labels.add_argument(
        "--labels-file", type=Path, help="one label per line, or a CSV with a 'name' column (id,name files)"
    )
    parser.add_argument(
        "--template",
        action="append",
        dest="templates",
        metavar="TEMPLATE",
        help="hypothesis template with '{}' for the label (repeat to ensemble; default: the label bank's, else the "
        "model's own, '{}' for X-CLIP, 'a photo of a {}.' for ViFi-CLIP)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--adapter``, ``--device``, ``--dtype`` and ``--quantize``, for `load_pipeline`."""
    parser.add_argument("--adapter", help="PEFT adapter folder or Hub id (from hf-xclip finetune)")
    parser.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: first GPU if any)")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto")
    parser.add_argument(
        "--quantize",
        choices=("int8", "none"),
        help="ONNX exports (hf-xclip export): int8 or float32 graphs (default: the export's own)",
    )


def read_label_arguments(args: argparse.Namespace) -> tuple[list[str] | None, Any, dict[str, list[str]] | None]:
    """``(labels, bank, descriptions)`` from `add_label_arguments` and `add_label_side_arguments`: the labels may be
    left out when a ``--label-bank`` is given (then None: every label of the bank).

    Raises:
        UsageError: no labels at all, or naming the bad label, file or bank.
    """
    bank = read_bank_argument(args.label_bank)
    given = args.labels is not None or args.labels_file is not None
    labels = read_labels(args.labels, args.labels_file) if bank is None or given else None
    return labels, bank, read_descriptions_argument(args.label_descriptions)


def read_labels(labels: str | None, labels_file: Path | None) -> list[str]:
    """Labels from ``--labels`` (comma-separated) or ``--labels-file`` (see `hf_xclip.labels.read_label_file`).

    Raises:
        UsageError: neither is given, or naming the bad label (or file and line).
    """
    from .labels import normalize_labels, read_label_file

    if labels is None and labels_file is None:
        raise UsageError("give the labels: --labels, --labels-file or --label-bank")
    try:
        if labels is not None:
            return normalize_labels(labels, "--labels")
        return read_label_file(cast(Path, labels_file))  # not None: both missing was refused above
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(_naming(labels_file, err)) from None


def unknown_labels(tokenizer: Any, labels: list[str]) -> list[tuple[str, int, int]]:
    """``(label, unknown tokens, tokens)`` for every label whose tokens are at least half the tokenizer's unknown
    token: such labels all look alike to the model, and their scores say little."""
    unknown_id = getattr(tokenizer, "unk_token_id", None)
    if unknown_id is None:
        return []
    found = []
    for label in labels:
        ids = tokenizer(label, add_special_tokens=False)["input_ids"]
        count = sum(1 for token in ids if token == unknown_id)
        if ids and 2 * count >= len(ids):
            found.append((label, count, len(ids)))
    return found


def warn_unknown_labels(tokenizer: Any, labels: list[str], command: str) -> None:
    """Warn on stderr, naming each label that is mostly unknown tokens (see `unknown_labels`)."""
    for label, count, total in unknown_labels(tokenizer, labels):
        print(
            f"hf-xclip {command}: warning: label {label!r} is mostly unknown to the model's tokenizer ({count} of "
            f"{total} tokens): its score says little; use words the model was trained on",
            file=sys.stderr,
        )


def require_matplotlib(option: str = "--plot") -> None:
    """Raises `UsageError` when matplotlib (the ``plot`` extra) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            f"{option} needs matplotlib: pip install 'hf_xclip[plot]' (or pip install matplotlib)"
        ) from None


def load_pipeline(
    model: str,
    device: str | None = None,
    dtype: str = "auto",
    quantize: str | None = None,
    adapter: str | None = None,
    language_model: str | None = None,
) -> Any:
    """`pipeline("zero-shot-video-classification")` for ``--model`` / ``--device`` / ``--dtype``, ``--quantize``
    (ONNX exports, see `hf_xclip.loading.load_model`) and ``--adapter`` (a PEFT adapter from `hf-xclip finetune`,
    applied in place to the base model; ``--language-model`` for an adapter with an LLM prompter).

    Raises:
        UsageError: the model (or adapter) cannot be loaded (see `loading`).
    """
    import torch
    from transformers import pipeline

    from .finetuning.adapters import load_model_with_adapter
    from .loading import check_model_family, load_model
    from .pipeline_zero_shot_video_classification import TASK

    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    model_kwargs = {"quantize": quantize} if quantize else {}
    with _cannot_load(model, adapter), loading(model, adapter):
        if isinstance(model, str):
            check_model_family(model)  # one line for a model without a text side, not transformers' wrapped errors
        if adapter is None:
            # Loaded here rather than by pipeline(), which retries a failed load and buries the first error.
            return pipeline(TASK, model=load_model(model, dtype=torch_dtype, **model_kwargs), device=device)
        if model_kwargs:
            raise UsageError("--quantize loads a model folder: it does not combine with --adapter")
        peft_model, processor, _ = load_model_with_adapter(model, adapter, language_model=language_model)
        # The base model carries the adapter's layers (and label prompter) in place: the pipeline scores through them.
        base = peft_model.get_base_model()
        if torch_dtype != "auto":
            base.to(torch_dtype)
        return pipeline(TASK, model=base, processor=processor, device=device)


@contextlib.contextmanager
def _cannot_load(model: str, adapter: str | None) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as err:  # not one `explain_load_error` knows: transformers' own words, on one line
        with_adapter = f" with adapter {adapter!r}" if adapter else ""
        raise UsageError(f"cannot load model {model!r}{with_adapter}: {' '.join(str(err).split())}") from None


# --- the one place where failures become one line naming the file or field and the fix --------------------------

# model_type values this package's own classes load (a config.json with one of these runs no code it ships).
OWN_MODEL_TYPES = (
    "hf_xclip",
    "hf_xclip_text_model",
    "hf_xclip_vision_model",
    "xclip",
    "xclip_text_model",
    "xclip_vision_model",
)
HUB_PROBE_SECONDS = 3.0


def _looks_like_path(name: str) -> bool:
    """A name that can only be a local path (a Hub id is `name` or `owner/name`)."""
    return (
        name.startswith((".", "~", os.sep))
        or (os.altsep is not None and os.altsep in name)
        or name.count("/") > 1
        or name.endswith("/")
        or os.path.isabs(name)
        or "\\" in name
    )


def _hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether the Hub answers a TCP connection within `timeout` seconds (name resolution included)."""
    import socket
    import threading
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str) or isinstance(
            try_to_load_from_cache(repo_id, "adapter_config.json"), str
        )
    except Exception:  # an id the Hub would refuse anyway
        return False


def check_model_source(name: str | os.PathLike, what: str = "model", trust_remote_code: bool = False) -> None:
    """Fast checks before a model (or adapter) is loaded: a path-like name must exist, a Hub id must be reachable
    (or cached) when offline, and a folder whose config.json names code it ships (``auto_map``) for a model type
    this package does not know is refused unless `trust_remote_code`.

    Raises:
        UsageError: naming the folder, file or id and the fix.
    """
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{what} {text!r} is a file; give the folder that holds its config.json")
        config_file = path / "config.json"
        if not config_file.is_file():
            if what == "model":
                raise UsageError(
                    f"model folder {text!r} has no config.json: give a model folder (hf-xclip convert writes one)"
                )
            return
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"{config_file}: not valid JSON ({err}); restore the file") from None
        if not isinstance(config, dict):
            raise UsageError(f"{config_file}: not a JSON object; restore the file")
        if config.get("auto_map") and config.get("model_type") not in OWN_MODEL_TYPES and not trust_remote_code:
            raise UsageError(
                f"{config_file}: model_type {config.get('model_type')!r} needs the code it ships (auto_map), which "
                "hf-xclip does not run: it loads X-CLIP folders only (in Python, trust_remote_code=True runs such "
                "code; read it first)"
            )
        return
    if _looks_like_path(text):
        raise UsageError(f"no such folder: {text!r} ({what}); check the path")
    if _in_hub_cache(text):
        return
    if _hub_offline():
        raise UsageError(
            f"{what} {text!r} is neither a local folder nor in the Hub cache, and HF_HUB_OFFLINE is set: "
            "give a local folder or unset HF_HUB_OFFLINE"
        )
    if not _hub_reachable():
        raise UsageError(
            f"{what} {text!r} is not a local folder and the Hugging Face Hub cannot be reached (no "
            "network?): give a local folder, or download it first where the Hub is reachable"
        )


def _weights_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("*.onnx")])


def _broken_safetensors(folder: Path) -> Path | None:
    """The first safetensors file of `folder` whose header or size does not check out."""
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with file.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(size))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if file.stat().st_size < 8 + size + end:
                return file
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return file
    return None


# a MISMATCH row of transformers' LOAD REPORT: key, checkpoint shape, model shape
_MISMATCH = re.compile(
    r"^(\S+)\s*\|\s*MISMATCH\s*\|.*ckpt: torch\.Size\((\[[^\]]*\])\) vs model: ?torch\.Size\((\[[^\]]*\])\)"
)


def explain_load_error(err: BaseException, name: str, log: str = "") -> str | None:
    """One line (file or field, and the fix) for a failure to load model `name`; None when `err` is not one of the
    known loading failures. `log` is what transformers logged during the load (its LOAD REPORT)."""
    folder = Path(name).expanduser()
    local = folder.is_dir()
    where = str(folder) if local else repr(name)
    text = str(err)
    kind = type(err).__name__
    if kind == "StrictDataclassFieldValidationError":
        detail = text.strip().splitlines()[-1].strip()
        return f"{folder / 'config.json' if local else where + ' config.json'}: {detail}; fix that value"
    if kind == "UnpicklingError" or "Weights only load failed" in text:
        found = re.search(r"Unsupported global: (GLOBAL \S+)", text)
        files = [p.name for p in folder.glob("*.bin")] if local else []
        shown = f"{folder / files[0]}" if files else where
        return (
            f"{shown}: the pickle holds code objects ({found.group(1) if found else 'not only tensors'}), refused: "
            "load only weights you trust, saved as safetensors"
        )
    if "ignore_mismatched_sizes" in text or "size mismatch" in text:
        for line in log.splitlines():
            match = _MISMATCH.search(line)
            if match:
                key, ckpt, model = match.groups()
                return (
                    f"{where}: tensor {key!r} has shape {ckpt} in the weights but config.json needs {model}: "
                    "the weights and config.json do not belong together (re-save or re-convert the model)"
                )
        return f"{where}: a tensor's shape does not match config.json: re-save or re-convert the model"
    if kind == "SafetensorError" or "HeaderTooLarge" in text or "incomplete metadata" in text:
        broken = _broken_safetensors(folder) if local else None
        return (
            f"{broken or where}: truncated or not a safetensors file ({text.splitlines()[0]}); re-download or "
            "re-save it"
        )
    if "no file named" in text and local:
        return (
            f"{where}: no weights file (model.safetensors or pytorch_model.bin) next to config.json: copy the "
            "weights there, or write the folder with hf-xclip convert"
        )
    onnx_runtime_error = kind in ("Fail", "InvalidProtobuf", "NoSuchFile", "InvalidGraph", "InvalidArgument")
    if onnx_runtime_error or ("onnx" in text.lower() and local and (folder / "onnx_config.json").is_file()):
        graphs = re.findall(r"[\w./-]+\.onnx", text)
        shown = graphs[0] if graphs else where
        missing = graphs and not Path(graphs[0]).is_file() and not (folder / graphs[0]).is_file()
        state = "missing" if missing else "unreadable (truncated or not an ONNX graph)"
        return f"{shown}: ONNX graph {state}; export the model again (hf-xclip export --model ... --output ...)"
    if kind == "UnicodeDecodeError":
        return f"{where}: a file is not UTF-8 text ({text}); re-save it as UTF-8"
    return None


class _CaptureLog(logging.Handler):
    """Collects the records transformers logs while a model loads (its LOAD REPORT), for the error message or to be
    passed on when the load succeeds."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(record.getMessage() for record in self.records)


@contextlib.contextmanager
def loading(
    model: str | os.PathLike, adapter: str | os.PathLike | None = None, trust_remote_code: bool = False
) -> Iterator[None]:
    """Wrap every load of a model (and adapter): fast checks of the names first (`check_model_source`), then any
    known loading failure becomes a `UsageError` of one line (`explain_load_error`); transformers' LOAD REPORT is
    held back while loading and printed only when the model did load.

    Raises:
        UsageError: the model or adapter cannot be loaded.
    """
    check_model_source(model, "model", trust_remote_code)
    if adapter is not None:
        check_model_source(adapter, "adapter", trust_remote_code)
    from transformers.utils import logging as transformers_logging

    logger = transformers_logging.get_logger("transformers")  # configured now: its own handler is not added mid-load
    capture = _CaptureLog()
    handlers, logger.handlers = logger.handlers, [capture]
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    except UsageError:
        raise
    except Exception as err:
        blamed = adapter if adapter is not None and os.fspath(adapter) in str(err) else model
        message = explain_load_error(err, os.fspath(blamed), capture.text())
        if message is None:
            raise
        raise UsageError(message) from None
    finally:
        logger.handlers, logger.propagate = handlers, propagate
    for record in capture.records:  # the load succeeded: pass its warnings on
        logger.handle(record)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-xclip", description="X-CLIP video-text models for Hugging Face.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"hf_xclip.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


# Options naming a file a command writes, and options naming a folder it writes into (checked before any work).
OUTPUT_FILE_OPTIONS = {"json": "--json", "csv": "--csv", "plot": "--plot", "html": "--html"}
OUTPUT_OPTIONS = {"output": "--output", "output_dir": "--output-dir"}


def check_output_path(path: str | os.PathLike, option: str, is_file: bool = False) -> None:
    """An output path must be creatable: no regular file among its parents, not a folder when a file is written,
    not a file when a folder is, and its nearest existing folder writable.

    Raises:
        UsageError: naming the option, the path and what is in the way.
    """
    target = Path(path).expanduser()
    if is_file and target.is_dir():
        raise UsageError(f"{option} {os.fspath(path)}: is a folder; give a file name")
    if not is_file and option == "--output-dir" and target.exists() and not target.is_dir():
        raise UsageError(f"{option} {os.fspath(path)}: is a file; give a folder")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {os.fspath(path)}: {parent} is a file, not a folder; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{option} {os.fspath(path)}: cannot write in {parent} (permission denied)")
            break


def check_output_arguments(args: argparse.Namespace) -> None:
    """`check_output_path` for every output option a command has (``-`` is stdout)."""
    for dest, option in (*OUTPUT_FILE_OPTIONS.items(), *OUTPUT_OPTIONS.items()):
        value = getattr(args, dest, None)
        if isinstance(value, (str, os.PathLike)) and os.fspath(value) != "-":
            check_output_path(value, option, is_file=dest in OUTPUT_FILE_OPTIONS)


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Hide the Hub's and transformers' progress bars (weight loading, downloads) under ``--no-progress``."""
    if enabled:
        yield
        return
    previous = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface_hub / transformers are imported later
    hub = sys.modules.get("huggingface_hub.utils")
    tf_logging = sys.modules.get("transformers.utils.logging")
    hub_was_on = hub is not None and not hub.are_progress_bars_disabled()
    tf_was_on = tf_logging is not None and tf_logging.is_progress_bar_enabled()
    if hub_was_on and hub is not None:
        hub.disable_progress_bars()
    if tf_was_on and tf_logging is not None:
        tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        else:
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = previous
        if hub_was_on and hub is not None:
            hub.enable_progress_bars()
        if tf_was_on and tf_logging is not None:
            tf_logging.enable_progress_bar()


# Warnings a user can do nothing about (raised inside peft / transformers on every run with an adapter).
IGNORED_WARNINGS = (
    r"`is_gradient_checkpointing` is deprecated",  # transformers 5, when peft wraps or loads a model
)


class _JsonStdout:
    """A stdout for ``--json``: the JSON document a command prints (its last output, from a line starting with
    ``{`` or ``[``) goes to stdout, every other line (tables, summaries) to stderr as it comes."""

    def __init__(self, stdout: Any, stderr: Any) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.partial = ""
        self.held: list[str] = []

    def write(self, text: str) -> int:
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            if self.held or line.lstrip().startswith(("{", "[")):
                self.held.append(line)
            else:
                self.stderr.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stderr.flush()

    def isatty(self) -> bool:
        return False

    def close_out(self) -> None:
        if self.partial:
            self.held.append(self.partial)
        text = "\n".join(self.held)
        candidates = [text, self.held[-1]] if self.held else []
        for candidate in candidates:
            try:
                json.loads(candidate)
            except ValueError:
                continue
            before = text[: len(text) - len(candidate)]
            if before.strip():
                self.stderr.write(before)
            self.stdout.write(candidate + "\n")
            break
        else:
            if text:
                self.stderr.write(text + "\n")
        self.stdout.flush()


@contextlib.contextmanager
def _json_alone_on_stdout(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    stream = _JsonStdout(sys.stdout, sys.stderr)
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.close_out()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    name = " ".join(str(part) for part in (args.command, getattr(args, "labels_command", None)) if part)
    json_only = getattr(args, "json", None) is True  # `--json` as a flag: the JSON summary alone on stdout
    try:
        check_output_arguments(args)
        with (
            progress_bars(not getattr(args, "no_progress", False)),
            _json_alone_on_stdout(json_only),
            warnings.catch_warnings(),
        ):
            for message in IGNORED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            return int(args._run(args) or 0)
    except UsageError as err:  # commands report their own; this catches what they let through
        print(f"hf-xclip {name}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

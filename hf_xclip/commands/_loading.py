"""Loading the model of a command: `model_or_default` and `model_options` (``--model`` and the model options),
fast checks of a model or adapter name before anything loads (`check_model_source`), the known loading failures as
one line naming the file or field and the fix (`explain_load_error`, `loading`), the zero-shot pipeline the scoring
commands run (`load_pipeline`) and a model with its adapter (`load_with_adapter`). Re-exported by `hf_xclip.cli`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._options import option_values
from ._usage import UsageError


def model_or_default(model: str | None) -> str:
    """`--model`, or the embedded default model when it is not given.

    Raises:
        UsageError: no `--model` and the package was installed without its default model.
    """
    if model:
        return model
    from ..embedded_model.location import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError as err:
        raise UsageError(f"no --model given and {err}") from None


# the options of `cli.add_model_arguments` and --language-model, named as `load_pipeline` and a predictor take them
MODEL_OPTIONS = ("adapter", "device", "dtype", "quantize", "language_model")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `load_pipeline` (and of a classify / timeline predictor): ``--model``, else the
    embedded default model, and `MODEL_OPTIONS`.

    Raises:
        UsageError: no ``--model`` and the package was installed without its default model.
    """
    return {"model": model_or_default(args.model), **option_values(args, *MODEL_OPTIONS)}


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

    from ..finetuning.adapters import load_model_with_adapter
    from ..loading import check_model_family, load_model
    from ..pipeline_zero_shot_video_classification import TASK

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


def load_with_adapter(model: str, adapter: str | None = None, **kwargs: Any) -> tuple[Any, Any, dict[str, Any]]:
    """`hf_xclip.finetuning.adapters.load_model_with_adapter` under `loading`: the model (a peft model when an
    adapter is given), its processor, and the adapter's metadata (``{}`` without one). `kwargs` go to the loader
    (``language_model``, ...).

    Raises:
        UsageError: the model or adapter cannot be loaded (see `loading`).
    """
    from ..finetuning.adapters import load_model_with_adapter

    with loading(model, adapter):
        loaded, processor, metadata = load_model_with_adapter(model, adapter, **kwargs)
    return loaded, processor, metadata or {}


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

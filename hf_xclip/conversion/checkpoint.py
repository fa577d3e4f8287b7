"""Reading checkpoints of the original X-CLIP / ViFi-CLIP / CLIP code without their code and without unpickling
arbitrary objects.

The original training scripts save ``{"model": state_dict, "optimizer": ..., "lr_scheduler": ..., "max_accuracy":
..., "epoch": ..., "config": yacs.config.CfgNode}``. ``torch.load(weights_only=True)`` refuses the yacs node and a
plain ``torch.load`` would execute whatever the pickle names. :func:`load_checkpoint` instead runs torch's loader
with a restricted unpickler: tensors, storages, ``OrderedDict`` and ``set`` are allowed, ``yacs.config.CfgNode``
becomes :class:`YacsConfig` (a plain ``dict``), and every other global is refused with :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import collections
import hashlib
import pickle
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class ConversionError(ValueError):
    """A checkpoint, tokenizer or option that cannot be converted; the message says what was expected."""


class UnsafeCheckpointError(ConversionError, pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it could run code when unpickled)."""


class YacsConfig(dict):
    """Stand-in for ``yacs.config.CfgNode`` (a ``dict`` subclass): keeps the keys, drops yacs' private state."""

    def __setstate__(self, state: Any) -> None:
        # CfgNode pickles `__immutable__`, `__deprecated_keys__`, ... as instance state; they carry no settings.
        self.yacs_state = state if isinstance(state, dict) else {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("__builtin__", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
        ("yacs.config", "CfgNode"): YacsConfig,
    }
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.bool):
        allowed[("torch", str(dtype).split(".")[-1])] = dtype
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to unpickle `{module}.{name}`: a checkpoint of the original X-CLIP / ViFi-CLIP code holds "
                "only tensors, plain containers and a yacs config. If you trust this file, re-save its weights with "
                "`torch.save(model.state_dict(), path)` and convert that."
            ) from None


def _restricted_pickle_module() -> types.ModuleType:
    module = types.ModuleType("hf_xclip_restricted_pickle")
    module.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: _RestrictedUnpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    module.loads = pickle.loads  # type: ignore[attr-defined]  # unused by torch.load, present for completeness
    return module


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_torchscript_archive(path: str | Path) -> bool:
    """True for a TorchScript zip (`torch.jit.save`, e.g. OpenAI's released CLIP `.pt` files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_checkpoint(path: str | Path) -> Any:
    """`torch.load` a file on CPU with the restricted unpickler; any failure becomes a `ConversionError`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise ConversionError(f"{path} is a directory; expected a checkpoint file written by torch.save (.pth/.pt).")
    if path.stat().st_size == 0:
        raise ConversionError(f"{path} is empty; expected a checkpoint file written by torch.save (.pth/.pt).")
    if is_torchscript_archive(path):
        raise ConversionError(
            f"{path} is a TorchScript archive (torch.jit.save), not a torch.save checkpoint. OpenAI's CLIP `.pt` "
            "files are such archives: pass them to `convert_clip_to_xclip`, which reads their weights."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"{path}: {error}") from None
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for broken files
        raise ConversionError(
            f"cannot read {path} as a PyTorch checkpoint (expected a file written by torch.save, e.g. the original "
            f"X-CLIP `.pth`); the file is corrupt, truncated or of another format: {type(error).__name__}: {error}"
        ) from error


@dataclass
class OriginalCheckpoint:
    """The parts of a training checkpoint a conversion uses.

    Attributes:
        state_dict: weights, with a DDP ``module.`` prefix removed.
        config: the yacs training config as nested dicts (empty for a bare state dict).
        path: the file read.
        extra: other top-level entries (``epoch``, ``max_accuracy``), without optimizer state.
    """

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def config_value(self, *keys: str, default: Any = None) -> Any:
        """``config["DATA"]["NUM_FRAMES"]`` as ``config_value("DATA", "NUM_FRAMES")``, `default` when absent."""
        node: Any = self.config
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(value) for value in node]
    return node


def strip_prefix(state_dict: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Remove a DDP prefix when every key has it."""
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def read_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Read an original training checkpoint (``{"model", "config", ...}``), a bare state dict, or either with a
    ``module.`` prefix. Raises `ConversionError` when the file holds no tensors under string keys."""
    path = Path(path)
    payload = load_checkpoint(path)
    config: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        weights = payload["model"]
        config = _plain(payload.get("config") or {})
        extra = {key: payload[key] for key in ("epoch", "max_accuracy") if key in payload}
    elif isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        weights = payload["state_dict"]
    else:
        weights = payload
    if not isinstance(weights, dict) or not weights:
        raise ConversionError(
            f"{path} holds {type(weights).__name__}, not a state dict; expected the original training checkpoint "
            "(a dict with `model` and `config`) or a state dict (parameter name -> tensor)."
        )
    bad = [key for key, value in weights.items() if not isinstance(key, str) or not isinstance(value, torch.Tensor)]
    if bad:
        raise ConversionError(
            f"{path}: expected a state dict mapping parameter names to tensors, but {len(bad)} entries are not "
            f"(e.g. {bad[0]!r} -> {type(weights[bad[0]]).__name__})."
        )
    return OriginalCheckpoint(state_dict=strip_prefix(weights), config=config, path=path, extra=extra)

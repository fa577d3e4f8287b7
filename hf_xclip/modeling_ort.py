"""X-CLIP on onnxruntime: the three exported graphs of a model directory behind `XClipModel`'s inference API.

A directory written by `hf-xclip export` (:func:`hf_xclip.onnx_export.export_onnx`) holds:

* ``text_encoder.onnx``: ``input_ids``, ``attention_mask`` (labels, sequence) -> ``text_embeds`` (labels, D), the
  projected text embedding before the video-specific prompts (`XClipModel.get_text_features(...).pooler_output`);
* ``video_encoder.onnx``: ``pixel_values`` (batch, frames, 3, S, S) -> ``video_embeds`` (batch, D) and, with a
  prompt generator, ``prompt_features`` (batch, patches, D) (`get_video_features(..., output_prompt_features=True)`);
* ``scorer.onnx``: ``video_embeds``, ``text_embeds`` (, ``prompt_features``) -> ``logits_per_video`` (batch, labels)
  and ``prompted_text_embeds`` (batch, labels, D): the prompt generator and the scaled cosine similarity
  (`XClipModel.get_logits`);
* optionally ``video_encoder.int8.onnx``: the video encoder with int8 linear layers (see :func:`quantize_graph`);
* ``onnx_config.json`` (the manifest: graphs, opset, quantization, the source model's fingerprint), ``config.json``
  and the processor / tokenizer files.

Batch, frame, label and sequence axes are dynamic; frames keep the model's image size. onnxruntime is an optional
dependency (``pip install 'hf_xclip[onnx]'``); it is imported when a model is loaded, not with this module.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_xclip import XClipConfig, XClipVisionConfig
from .modeling_video_text import VideoTextCapabilities, VideoTextModelMixin
from .modeling_xclip import XClipOutput, XClipVideoOutput
from .utils import read_json_file

MANIFEST_NAME = "onnx_config.json"
MANIFEST_FORMAT = "hf_xclip-onnx"
MANIFEST_VERSION = 1
GRAPHS: tuple[str, ...] = ("text_encoder", "video_encoder", "scorer")
QUANTIZATIONS: tuple[str, ...] = ("int8",)
INSTALL_HINT = "pip install 'hf_xclip[onnx]'"
_HUB_KWARGS = frozenset(
    {
        "revision",
        "token",
        "cache_dir",
        "local_files_only",
        "force_download",
        "proxies",
        "subfolder",
        "trust_remote_code",
        "_from_pipeline",
        "_from_auto",
        "device_map",
        "attn_implementation",
    }
)


def graph_file(graph: str, quantization: str | None = None) -> str:
    """File name of an exported graph: ``video_encoder.onnx``, or ``video_encoder.int8.onnx`` when quantized."""
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph {graph!r}; the exported graphs are {GRAPHS}.")
    return f"{graph}.onnx" if quantization is None else f"{graph}.{quantization}.onnx"


def require_onnxruntime():
    """Import onnxruntime, or raise an ImportError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"ONNX models need onnxruntime, which is not installed: {INSTALL_HINT}") from err
    return onnxruntime


def is_onnx_model_dir(path: str | os.PathLike) -> bool:
    """Whether `path` is a local directory exported by `hf-xclip export` (it has an ``onnx_config.json``)."""
    return Path(path, MANIFEST_NAME).is_file()


def read_manifest(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``onnx_config.json`` of an exported directory, checked for the keys the loader relies on."""
    path = Path(model_dir) / MANIFEST_NAME
    manifest = read_json_file(
        path,
        missing=f"{model_dir} is not an exported X-CLIP ONNX model: {MANIFEST_NAME} is missing.",
        invalid=lambda err: f"{path} is not valid JSON: {err}",
    )
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f'{path} is not an hf_xclip ONNX manifest (expected "format": "{MANIFEST_FORMAT}").')
    if manifest.get("manifest_version", 0) > MANIFEST_VERSION:
        raise ValueError(
            f"{path} has manifest_version {manifest['manifest_version']}, newer than this hf_xclip understands "
            f"({MANIFEST_VERSION}); upgrade hf_xclip."
        )
    graphs = manifest.get("graphs")
    if not isinstance(graphs, dict) or set(graphs) != set(GRAPHS):
        raise ValueError(f'{path}: "graphs" must describe exactly {GRAPHS}, got {sorted(graphs or {})}.')
    return manifest


# ---------------------------------------------------------------------------------------------------- quantization
# The int8 recipe: the linear layers of the vision tower's transformer blocks (attention q/k/v/out and the MLP), where
# nearly all the video FLOPs are. Kept in float32: the text encoder (run once per label set, and where int8 costs the
# most agreement), the scorer (tiny), the cross-frame message modules, the MIT and the projections (they see one
# token per frame). Measured trade-off: docs/benchmarks.md (ONNX section).
INT8_GRAPHS: tuple[str, ...] = ("video_encoder",)
INT8_SCOPE = re.compile(r"(^|\.)vision_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$")


def quantize_graph(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    per_channel: bool = True,
    scope: re.Pattern | None = INT8_SCOPE,
) -> dict[str, Any]:
    """Dynamic int8 quantization of linear layers of one graph with onnxruntime.

    Weights of the selected `MatMul` / `Gemm` nodes (constant weight: the linear layers, never attention's
    activation products) are stored as int8, per output channel by default; their activations are quantized to
    uint8 on the fly, per tensor, at each call. Inputs and outputs stay float32.

    Args:
        scope: the linear layers to quantize, matched against the torch module names the exporter records in each
            node (`pkg.torch.onnx.name_scopes`); `None` quantizes every linear layer of the graph.

    Returns:
        The settings and the number of quantized layers, as recorded in the manifest.

    Raises:
        RuntimeError: `scope` matches no node (e.g. a graph exported without module names).
    """
    onnx, QuantType, quantize_dynamic = _quantization_tools()

    op_types = ["MatMul", "Gemm"]
    graph = onnx.load(str(source), load_external_data=False).graph
    linear = [node for node in graph.node if node.op_type in op_types and node.input[1] in _constants(graph)]
    selected = [node.name for node in linear if scope is None or _in_scope(node, scope)]
    if not selected:
        raise RuntimeError(f"no linear layer of {source} matches the int8 scope {scope.pattern if scope else None!r}.")
    excluded = [node.name for node in linear if node.name not in set(selected)]
    with quiet_loggers("", level=logging.ERROR):  # onnxruntime.quantization logs every node on the root logger
        quantize_dynamic(
            Path(source),
            Path(target),
            op_types_to_quantize=op_types,
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            extra_options={"MatMulConstBOnly": True},
        )
    return {
        "method": "dynamic",
        "weight_type": "int8",
        "activation_type": "uint8",
        "per_channel": per_channel,
        "scope": scope.pattern if scope is not None else None,
        "quantized_layers": len(selected),
        "float_layers": len(excluded),
        "tool": f"onnxruntime {require_onnxruntime().__version__}",
    }


def _quantization_tools():
    """(onnx, QuantType, quantize_dynamic); imported inside ``try`` so that this file, shipped with the pipeline's
    remote code, does not make onnx a requirement of ``trust_remote_code`` loading."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as err:
        raise ImportError(f"int8 quantization needs onnx and onnxruntime: {INSTALL_HINT}") from err
    return onnx, QuantType, quantize_dynamic


def _constants(graph: Any) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    return names


def _in_scope(node: Any, scope: re.Pattern) -> bool:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return any(scope.search(name.strip(" '\"")) for name in prop.value.strip("[]").split(","))
    return False


@contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the given loggers (``""``: the root logger) to `level` for the block: the exporter's passes and
    onnxruntime's quantizer log every rewritten node."""
    loggers = [logging.getLogger(name or None) for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(max(level, log.level))
    try:
        yield
    finally:
        for log, old in zip(loggers, levels):
            log.setLevel(old)


def check_quantization(quantize: str | None) -> str | None:
    """`None` / ``"none"`` / ``"fp32"`` -> None; ``"int8"`` -> ``"int8"``; anything else is a ValueError."""
    if quantize is None or quantize in ("none", "fp32", "float32"):
        return None
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS} (or None for float32), got {quantize!r}.")
    return quantize


# ---------------------------------------------------------------------------------------------------------- model
class XClipOrtModel(VideoTextModelMixin):
    """An exported X-CLIP run by onnxruntime, with the inference API of [`XClipModel`].

    It implements what the zero-shot pipeline, `hf-xclip classify` and evaluation code call on a model:
    `get_text_features`, `get_video_features(..., output_prompt_features=True)`, `get_logits`, `forward` (no
    losses), `config`, `dtype` (float32), `device`, `eval()` and `to()`. Outputs are torch tensors; the graphs run
    on the session's execution providers (CPU unless `providers` says otherwise), and `to(device)` only moves the
    outputs. Not supported: training, `inputs_embeds` / `position_ids`, frames of another size than the model's.

    Load with [`~XClipOrtModel.from_pretrained`] (or through `pipeline(..., model=DIR)`).
    """

    main_input_name = "pixel_values"
    input_modalities = ("video", "text")

    @property
    def capabilities(self) -> VideoTextCapabilities:
        """What the video-text model interface (`hf_xclip.modeling_video_text`) says about this model."""
        return VideoTextCapabilities(
            family="xclip", video_conditioned_prompts=bool(self.config.use_prompt_generator), clean_texts=True
        )

    @property
    def num_frames(self) -> int:
        return int(cast(XClipVisionConfig, self.config.vision_config).num_frames)  # a config after __post_init__

    def __init__(
        self,
        sessions: dict[str, Any],
        config: XClipConfig,
        manifest: dict[str, Any],
        name_or_path: str = "",
        quantization: str | None = None,
    ) -> None:
        missing = set(GRAPHS) - set(sessions)
        if missing:
            raise ValueError(f"XClipOrtModel needs a session for each of {GRAPHS}; missing {sorted(missing)}.")
        self.sessions = sessions
        self.config = config
        self.manifest = manifest
        self.name_or_path = name_or_path
        self.quantization = quantization
        self.projection_dim = config.projection_dim
        self._device = torch.device("cpu")

    # -- loading ------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        *,
        quantize: str | None = None,
        providers: Sequence[Any] | None = None,
        session_options: Any = None,
        num_threads: int | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> XClipOrtModel:
        """Load an exported directory.

        Args:
            model_dir: a directory written by `hf-xclip export`.
            quantize: `None` uses the directory's default (``"int8"`` when it was exported with
                ``--quantize int8``, else float32); ``"int8"`` uses the int8 graphs, quantizing the float32 ones
                now (in a temporary folder, a few seconds for a base model) when the directory has none;
                ``"none"`` forces the float32 graphs.
            providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
            session_options: an `onnxruntime.SessionOptions` used as is (overrides `num_threads`).
            num_threads: intra-op threads of each session (default: `torch.get_num_threads()`, so that
                ``OMP_NUM_THREADS`` / `torch.set_num_threads` govern torch and onnxruntime alike). Threads do not
                spin between calls, which keeps them from starving the pipeline's decoding threads.
            dtype: only float32 (or ``"auto"``) is accepted: the graphs take and return float32.
        """
        unknown = set(kwargs) - _HUB_KWARGS
        if unknown:
            raise TypeError(f"XClipOrtModel.from_pretrained got unexpected arguments: {sorted(unknown)}")
        _check_dtype(dtype)
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir} is not a directory; export a model with `hf-xclip export` first.")
        manifest = read_manifest(model_dir)
        ort = require_onnxruntime()
        config = XClipConfig.from_pretrained(model_dir)
        quantization = check_quantization(quantize) if quantize is not None else manifest.get("default_quantization")
        options = session_options or _session_options(ort, num_threads)
        providers = list(providers) if providers is not None else ["CPUExecutionProvider"]
        with tempfile.TemporaryDirectory(prefix="xclip-int8-") as scratch:
            sessions = {}
            for graph in GRAPHS:
                path = _graph_path(model_dir, manifest, graph, quantization, Path(scratch))
                sessions[graph] = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        return cls(sessions, config, manifest, name_or_path=str(model_dir), quantization=quantization)

    # -- torch-model protocol ------------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: Any = None, dtype: Any = None) -> XClipOrtModel:
        """Put the outputs on `device` (the graphs keep running on their providers); only float32 is accepted."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        _check_dtype(dtype)
        if device is not None:
            self._device = torch.device(device)
        return self

    def eval(self) -> XClipOrtModel:
        return self

    def can_generate(self) -> bool:
        return False

    def modules(self) -> Iterator[Any]:
        """No torch modules (code that looks for learned prompt contexts finds none)."""
        return iter(())

    def weights_fingerprint(self, part: str = "all") -> str:
        """`hf_xclip.fingerprint.model_fingerprint` of the exported model's weights, as recorded at export: the
        float32 text graph is the source model's text side, so label banks it encoded match. With int8 graphs the
        video side (and ``"all"``) gets a ``+int8`` suffix: its outputs differ slightly from the source's."""
        recorded = self.manifest.get("source", {}).get("fingerprint") or {}
        if part not in recorded:
            raise ValueError(f"{self.name_or_path}: {MANIFEST_NAME} records no {part!r} fingerprint.")
        quantized = self.quantization is not None and part != "text"
        return recorded[part] + (f"+{self.quantization}" if quantized else "")

    @property
    def providers(self) -> list[str]:
        """Execution providers of the video encoder session (the same for all three)."""
        return self.sessions["video_encoder"].get_providers()

    def __repr__(self) -> str:
        quantization = self.quantization or "float32"
        return f"{type(self).__name__}({self.name_or_path!r}, {quantization}, providers={self.providers})"

    # -- inference ------------------------------------------------------------------------------------------------

    def get_text_features(
        self,
        input_ids: torch.Tensor | np.ndarray | None = None,
        attention_mask: torch.Tensor | np.ndarray | None = None,
        position_ids: Any = None,
        inputs_embeds: Any = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        """Projected text embeddings: `pooler_output` (num_texts, projection_dim), as `XClipModel.get_text_features`."""
        if inputs_embeds is not None or position_ids is not None:
            raise ValueError(
                "The exported text encoder takes `input_ids` (and `attention_mask`) only, not "
                "`inputs_embeds` or `position_ids`."
            )
        if input_ids is None:
            raise ValueError("get_text_features needs `input_ids` of shape (num_texts, sequence_length).")
        ids = _as_numpy(input_ids, np.int64)
        text_config = self.config.text_config
        if ids.ndim != 2 or 0 in ids.shape:
            raise ValueError(f"input_ids must have shape (num_texts, sequence_length), got {ids.shape}.")
        if ids.shape[1] > text_config.max_position_embeddings:
            raise ValueError(
                f"input_ids have {ids.shape[1]} tokens but the text model takes at most "
                f"{text_config.max_position_embeddings}; tokenize with truncation=True."
            )
        if ids.min() < 0 or ids.max() >= text_config.vocab_size:
            raise ValueError(
                f"input_ids hold ids outside [0, {text_config.vocab_size}): min {ids.min()}, max {ids.max()}."
            )
        mask = np.ones_like(ids) if attention_mask is None else _as_numpy(attention_mask, np.int64)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {mask.shape}, input_ids {ids.shape}: they must match.")
        (embeds,) = self._run("text_encoder", {"input_ids": ids, "attention_mask": mask})
        return BaseModelOutputWithPooling(pooler_output=self._tensor(embeds))

    def get_video_features(
        self,
        pixel_values: torch.Tensor | np.ndarray,
        interpolate_pos_encoding: bool = False,
        output_prompt_features: bool = False,
        **kwargs: Any,
    ) -> XClipVideoOutput:
        """Video embeddings `pooler_output` (batch_size, projection_dim) and, when asked, `prompt_features`.

        Only those two fields of [`XClipVideoOutput`] are filled (the exported graph returns nothing else).
        """
        pixels = _as_numpy(pixel_values, np.float32)
        vision = self.config.vision_config
        size = vision.image_size
        if pixels.ndim != 5 or 0 in pixels.shape[:2]:
            raise ValueError(
                f"pixel_values must have shape (batch_size, num_frames, channels, height, width), got {pixels.shape}."
            )
        if pixels.shape[2] != vision.num_channels:
            raise ValueError(f"pixel_values have {pixels.shape[2]} channels, the model expects {vision.num_channels}.")
        if pixels.shape[3:] != (size, size):
            raise ValueError(
                f"pixel_values frames are {pixels.shape[3]}x{pixels.shape[4]} but the exported model takes "
                f"{size}x{size} (interpolate_pos_encoding is not exported); resize them (the processor does)."
            )
        outputs = self._run("video_encoder", {"pixel_values": pixels})
        prompt_features = None
        if output_prompt_features and self.config.use_prompt_generator:
            prompt_features = self._tensor(outputs[1])
        return XClipVideoOutput(pooler_output=self._tensor(outputs[0]), prompt_features=prompt_features)

    def get_logits(
        self,
        video_embeds: torch.Tensor | np.ndarray,
        text_embeds: torch.Tensor | np.ndarray,
        prompt_features: torch.Tensor | np.ndarray | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(logits_per_video, text_embeds)` as `XClipModel.get_logits`: logits (batch_size, num_texts) and the
        normalised, video-specifically prompted text embeddings (batch_size, num_texts, projection_dim)."""
        video = _as_numpy(video_embeds, np.float32)
        text = _as_numpy(text_embeds, np.float32)
        dim = self.projection_dim
        if video.ndim != 2 or video.shape[1] != dim or video.shape[0] == 0:
            raise ValueError(f"video_embeds must have shape (batch_size, {dim}), got {video.shape}.")
        if text.ndim != 2 or text.shape[1] != dim or text.shape[0] == 0:
            raise ValueError(f"text_embeds must have shape (num_texts, {dim}), got {text.shape}.")
        feed = {"video_embeds": video, "text_embeds": text}
        if self.config.use_prompt_generator:
            if prompt_features is None:
                raise ValueError("This model has a prompt generator: pass `prompt_features` to get_logits.")
            features = _as_numpy(prompt_features, np.float32)
            if features.ndim != 3 or features.shape[0] != video.shape[0] or features.shape[2] != dim:
                raise ValueError(
                    f"prompt_features must have shape ({video.shape[0]}, num_patches, {dim}), got {features.shape}."
                )
            feed["prompt_features"] = features
        logits, prompted = self._run("scorer", feed)
        return self._tensor(logits), self._tensor(prompted)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
        labels: Any = None,
        return_loss: bool | None = None,
        **kwargs: Any,
    ) -> XClipOutput:
        """Score B videos against K texts (`input_ids` or precomputed `text_embeds`), as `XClipModel.forward`
        without losses."""
        if labels is not None or return_loss:
            raise ValueError("An exported ONNX model only runs inference: no `labels` / `return_loss`.")
        if pixel_values is None:
            raise ValueError("forward needs `pixel_values` of shape (batch_size, num_frames, C, H, W).")
        if text_embeds is None:
            if input_ids is None:
                raise ValueError("Pass `input_ids` (tokenised texts) or precomputed `text_embeds`.")
            text_embeds = self.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        video = self.get_video_features(pixel_values, output_prompt_features=True)
        logits, prompted = self.get_logits(video.pooler_output, text_embeds, video.prompt_features)
        video_embeds = video.pooler_output / video.pooler_output.norm(p=2, dim=-1, keepdim=True)
        return XClipOutput(
            logits_per_video=logits, logits_per_text=logits.T, text_embeds=prompted, video_embeds=video_embeds
        )

    __call__ = forward

    # -- helpers --------------------------------------------------------------------------------------------------

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[graph].run(None, feed)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor if self._device.type == "cpu" else tensor.to(self._device)


def _as_numpy(value: Any, dtype: np.dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu")
        value = value.float() if dtype == np.float32 else value.long()
        return np.ascontiguousarray(value.numpy())
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value, dtype=dtype)
    raise ValueError(f"expected a torch.Tensor or numpy array, got {type(value).__name__}.")


def _check_dtype(dtype: Any) -> None:
    if dtype is None or dtype == "auto" or dtype == torch.float32 or dtype == "float32":
        return
    raise ValueError(
        f"An exported ONNX X-CLIP runs in float32 (or int8 with quantize='int8'), not {dtype}: leave dtype unset."
    )


def _session_options(ort: Any, num_threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _graph_path(model_dir: Path, manifest: dict, graph: str, quantization: str | None, scratch: Path) -> Path:
    """The file to load for `graph`: the stored int8 graph, one quantized now into `scratch`, or the float32 one."""
    entry = manifest["graphs"][graph]
    stored = entry.get("quantized") or {}
    if quantization is not None and quantization in stored:
        return _existing(model_dir / stored[quantization])
    if quantization is not None and graph in INT8_GRAPHS:
        path = scratch / graph_file(graph, quantization)
        quantize_graph(_existing(model_dir / entry["file"]), path)
        return path
    return _existing(model_dir / entry["file"])


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"exported graph {path} is missing (listed in {MANIFEST_NAME}).")
    return path


__all__ = [
    "GRAPHS",
    "MANIFEST_NAME",
    "XClipOrtModel",
    "graph_file",
    "is_onnx_model_dir",
    "quantize_graph",
    "read_manifest",
    "require_onnxruntime",
]

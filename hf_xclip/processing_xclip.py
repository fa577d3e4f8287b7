"""Processor of X-CLIP: `XClipVideoProcessor` for videos plus a CLIP tokenizer for texts."""

from __future__ import annotations

import html
import json
import os
import re
from functools import lru_cache
from typing import Any

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import PROCESSOR_NAME, cached_file, logging
from transformers.video_processing_utils import VideoProcessorMixin

from .video_processing_xclip import XClipVideoProcessor, as_xclip_video_processor, auto_map_left_in_files

logger = logging.get_logger(__name__)

# CLIP's context length: `clip.tokenize` in the original pads / refuses beyond 77 tokens.
CLIP_CONTEXT_LENGTH = 77
# The text template X-CLIP was trained with: the bare class name. (`labels.py`, the label core, re-exports it.)
DEFAULT_HYPOTHESIS_TEMPLATE = "{}"
_WHITESPACE = re.compile(r"\s+")
# The processor's own options read from processor_config.json (the rest of the file belongs to sub-processors).
_PROCESSOR_KEYS = ("hypothesis_template",)
# Keyword arguments that AutoProcessor / pipelines pass to every from_pretrained and that mean nothing here.
_LOADER_KWARGS = ("_from_auto", "_from_pipeline", "proxies", "use_fast", "code_revision")


@lru_cache(maxsize=1)
def _ftfy_fix_text():
    # Imported on first use: ftfy takes ~0.1 s to import and most callers of hf_xclip never tokenize.
    try:  # a dependency of hf_xclip; optional for code loaded with trust_remote_code
        import ftfy
    except ImportError:
        return None
    return ftfy.fix_text


def clean_text(text: str) -> str:
    """The original CLIP / X-CLIP text cleaning applied before BPE (``SimpleTokenizer.encode``): ``ftfy.fix_text``,
    HTML entities unescaped twice, whitespace runs folded to one space, stripped, lower-cased.

    transformers' CLIP tokenizer only folds whitespace and lower-cases, so without this step text with HTML
    entities, curly quotes, ligatures or full-width characters gets other ids than the original gave it.
    `XClipProcessor`, the zero-shot pipeline and the fine-tuning tools apply it to every text. Without ftfy
    installed (remote code) the ftfy step is skipped.

    >>> clean_text("  Rock &amp;amp; Roll\u2019s  ")
    "rock & roll's"
    """
    if not isinstance(text, str):
        raise TypeError(f"texts must be strings, got {type(text).__name__}: {text!r}")
    fix_text = _ftfy_fix_text()
    if fix_text is not None:
        text = fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


def validate_template(template: Any, name: str = "hypothesis_template") -> str:
    """The one template rule: a string with the label placeholder ``{}`` exactly once (a valid format string).

    Defined here, below the label core (`labels.py` re-exports it), because the processor checks the template it
    carries and the processor files ship without `labels.py`'s dependencies.

    Raises:
        ValueError: naming the template and what is wrong with it.
    """
    if not isinstance(template, str):
        raise ValueError(f"`{name}` entries must be strings, got {template!r}.")
    try:
        filled = template.format("\0")
    except (IndexError, KeyError, ValueError) as err:
        raise ValueError(f"`{name}` {template!r} is not a valid format string with one '{{}}': {err}") from None
    if filled.count("\0") != 1:
        raise ValueError(f"`{name}` {template!r} must contain the label placeholder '{{}}' exactly once.")
    return template


def clean_texts(text: Any) -> Any:
    """`clean_text` on a string or on every string of a (nested) list or tuple; other values unchanged."""
    if isinstance(text, str):
        return clean_text(text)
    if isinstance(text, (list, tuple)):
        return type(text)(clean_texts(item) for item in text)
    return text


class XClipProcessor(ProcessorMixin):
    r"""Wraps an [`XClipVideoProcessor`] and a CLIP tokenizer into one processor.

    ``processor(text=..., videos=...)`` returns ``input_ids`` / ``attention_mask`` (texts padded to the longest,
    truncated to 77 tokens) and ``pixel_values`` (B, T, 3, S, S), or (B * V, T, 3, S, S) plus ``num_views`` = V
    with several clips / crops per video (see [`XClipVideoProcessor`]). Tensors are PyTorch unless
    ``return_tensors`` says otherwise.

    `from_pretrained` reads this package's layout (``processor_config.json``), transformers' X-CLIP layout
    (``processor_config.json`` nesting an ``image_processor``) and the Hub's 2022 layout
    (``preprocessor_config.json`` of a ``VideoMAEFeatureExtractor``), with the CLIP tokenizer files next to them;
    ``num_frames`` comes from the model's ``config.json`` when the processor files do not say.

    Texts go through the original's cleaning first ([`clean_text`]: ftfy, HTML entities, whitespace, lower case),
    so ids match the original tokenizer's for any text; ``clean_text=False`` in the call tokenizes them as given.
    ``images`` is accepted as an alias of ``videos`` (transformers' `XCLIPProcessor` takes videos that way); passing
    both raises, where transformers would silently drop the ``videos``.

    The processor also carries the text template the model was trained with (``hypothesis_template``, saved in
    ``processor_config.json``): ``"{}"`` for X-CLIP, ``"a photo of a {}."`` for ViFi-CLIP, ``"{}."`` for a prompted
    ViFi-CLIP. The zero-shot pipeline, `hf-xclip classify` / `evaluate` / `finetune` use it when no template is
    given; ``processor(text=...)`` itself tokenizes texts as given.

    Args:
        video_processor: an [`XClipVideoProcessor`]; another image / video processor is converted (its crop
            size and statistics are kept) so that ``pixel_values`` always have X-CLIP's layout.
        tokenizer: a CLIP tokenizer.
        hypothesis_template: the model's text template, with one ``{}`` for the label (default ``"{}"``).

    Example:

    ```python
    >>> from hf_xclip import XClipProcessor
    >>> processor = XClipProcessor.from_pretrained("microsoft/xclip-base-patch32")  # doctest: +SKIP
    >>> inputs = processor(text=["playing sports", "eating spaghetti"], videos="video.mp4")  # doctest: +SKIP
    >>> inputs["pixel_values"].shape  # doctest: +SKIP
    torch.Size([1, 8, 3, 224, 224])
    ```
    """

    skip_tensor_conversion = [*ProcessorMixin.skip_tensor_conversion, "num_views"]
    text_kwargs = {"padding": True, "truncation": True, "max_length": CLIP_CONTEXT_LENGTH, "return_tensors": "pt"}
    videos_kwargs = {"return_tensors": "pt"}

    def __init__(
        self,
        video_processor: Any = None,
        tokenizer: Any = None,
        hypothesis_template: str = DEFAULT_HYPOTHESIS_TEMPLATE,
        **kwargs,
    ):
        self.hypothesis_template = validate_template(hypothesis_template)
        super().__init__(as_xclip_video_processor(video_processor), tokenizer, **kwargs)

    def __call__(self, text: Any = None, videos: Any = None, clean_text: bool | None = None, **kwargs) -> BatchFeature:
        """Tokenize ``text`` and preprocess ``videos`` (``images=`` is accepted as an alias of ``videos``, as in
        transformers' X-CLIP processor; it is not in the signature, so transformers' generic callers that offer
        every modality their processor names pass videos only). Options of the video processor (``num_frames``,
        ``num_clips``, ...) and of the tokenizer can be given directly or as ``videos_kwargs`` / ``text_kwargs``.
        Texts are cleaned as the original does unless ``clean_text=False`` (``None``, the default, means clean:
        explicit processor arguments default to ``None`` in transformers)."""
        if clean_text is not False and text is not None:
            text = clean_texts(text)
        images = kwargs.pop("images", None)
        if images is not None:
            if videos is not None:
                raise ValueError("Pass the videos as `videos` (`images` is only an alias of it), not both.")
            videos = images
        if text is None and videos is None:
            raise ValueError("XClipProcessor needs `text`, `videos` or both.")
        return super().__call__(text=text, videos=videos, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        with auto_map_left_in_files(self, self.video_processor):
            return super().save_pretrained(save_directory, *args, **kwargs)

    def check_argument_for_proper_class(self, argument_name: str, argument: Any):
        # transformers resolves "VideoProcessorMixin" through VIDEO_PROCESSOR_MAPPING, a placeholder that raises
        # when torchvision is missing; X-CLIP's video processor does not need torchvision.
        if argument_name == "video_processor":
            if not isinstance(argument, VideoProcessorMixin):
                raise TypeError(f"`video_processor` must be a video processor, got {type(argument).__name__}.")
            return VideoProcessorMixin
        return super().check_argument_for_proper_class(argument_name, argument)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        revision: str = "main",
        **kwargs,
    ) -> XClipProcessor:
        """Load the processor from a directory or Hub repo in any layout a user meets (see the class docstring).

        The files are read here, not through transformers' sub-processor auto-resolution, which changes between
        releases (5.25 resolves the video processor through ``AutoVideoProcessor`` and refuses the Hub's 2022
        layout). ``video_processor`` / ``tokenizer`` objects given as keyword arguments are used as they are;
        other keyword arguments that are video-processor options (``num_frames=16``) go to the video processor,
        ``hypothesis_template`` to the processor.
        """
        hub = {
            "cache_dir": cache_dir,
            "force_download": force_download,
            "local_files_only": local_files_only,
            "token": token,
            "revision": revision,
            "subfolder": kwargs.pop("subfolder", "") or "",
        }
        return_unused = kwargs.pop("return_unused_kwargs", False)
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        for key in _LOADER_KWARGS:
            kwargs.pop(key, None)
        path = os.fspath(pretrained_model_name_or_path)
        processor_dict = read_processor_config(path, hub)
        video_options = {
            k: kwargs.pop(k) for k in list(kwargs) if k in XClipVideoProcessor.valid_kwargs.__annotations__
        }
        video_processor = kwargs.pop("video_processor", None)
        if video_processor is None:
            video_processor = XClipVideoProcessor.from_pretrained(path, **hub, **video_options)
        elif video_options:
            raise ValueError(f"Give video options {sorted(video_options)} or a `video_processor`, not both.")
        init = {key: processor_dict[key] for key in _PROCESSOR_KEYS if processor_dict.get(key) is not None}
        init.update({key: kwargs.pop(key) for key in _PROCESSOR_KEYS if key in kwargs})
        tokenizer = kwargs.pop("tokenizer", None)
        if tokenizer is None:  # the remaining options are the tokenizer's (`cls_token="..."`), as in transformers
            # AutoTokenizer reads config.json too: a model saved with its code (`auto_map`) must not make it ask
            remote = {} if trust_remote_code is None else {"trust_remote_code": trust_remote_code}
            tokenizer = _load_clip_tokenizer(path, **hub, **remote, **kwargs)
            kwargs = {}
        processor = cls(video_processor=video_processor, tokenizer=tokenizer, **init)
        return (processor, kwargs) if return_unused else processor

    @property
    def model_input_names(self) -> list[str]:
        return list(dict.fromkeys([*self.tokenizer.model_input_names, *self.video_processor.model_input_names]))


def read_processor_config(path: str | os.PathLike, hub: dict[str, Any]) -> dict[str, Any]:
    """The top level of ``processor_config.json`` (``{}`` when there is none), read with `cached_file`: our
    layout and transformers' both keep the processor's own options there, next to nested sub-processor dicts."""
    if os.path.isfile(path):
        return {}
    resolved = cached_file(path, PROCESSOR_NAME, _raise_exceptions_for_missing_entries=False, **hub)
    if resolved is None:
        return {}
    with open(resolved, encoding="utf-8") as handle:
        try:
            config = json.load(handle)
        except json.JSONDecodeError as err:
            raise OSError(f"{resolved} is not valid JSON: {err}. Fix or delete the file.") from None
    if not isinstance(config, dict):
        raise OSError(f"{resolved} must hold a JSON object, got {type(config).__name__}.")
    return config


def _load_clip_tokenizer(path: str | os.PathLike, **hub: Any):
    """AutoTokenizer (``tokenizer.json`` / ``tokenizer_config.json``), or a CLIPTokenizer for folders holding only
    ``vocab.json`` + ``merges.txt`` (the Hub's 2022 layout without a tokenizer config)."""
    from transformers import AutoTokenizer, CLIPTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, **hub)
    except (OSError, ValueError, KeyError) as err:
        logger.info(f"AutoTokenizer could not load {path} ({err}); loading it as a CLIPTokenizer.")
        hub.pop("trust_remote_code", None)
        return CLIPTokenizer.from_pretrained(path, **hub)


__all__ = ["DEFAULT_HYPOTHESIS_TEMPLATE", "XClipProcessor", "clean_text", "validate_template"]

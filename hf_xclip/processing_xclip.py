"""Processor of X-CLIP: `XClipVideoProcessor` for videos plus a CLIP tokenizer for texts."""

from __future__ import annotations

import html
import os
import re
from functools import lru_cache
from typing import Any

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import logging
from transformers.video_processing_utils import VideoProcessorMixin

from .video_processing_xclip import XClipVideoProcessor, as_xclip_video_processor, auto_map_left_in_files

logger = logging.get_logger(__name__)

# CLIP's context length: `clip.tokenize` in the original pads / refuses beyond 77 tokens.
CLIP_CONTEXT_LENGTH = 77
# The text template X-CLIP was trained with: the bare class name. (`labels.py`, the label core, re-exports it.)
DEFAULT_HYPOTHESIS_TEMPLATE = "{}"
_WHITESPACE = re.compile(r"\s+")


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

    def __call__(
        self, text: Any = None, videos: Any = None, images: Any = None, clean_text: bool | None = None, **kwargs
    ) -> BatchFeature:
        """Tokenize ``text`` and preprocess ``videos`` (``images`` is accepted as an alias of ``videos``, as in
        transformers' X-CLIP processor). Options of the video processor (``num_frames``, ``num_clips``, ...) and of
        the tokenizer can be given directly or as ``videos_kwargs`` / ``text_kwargs``. Texts are cleaned as the
        original does unless ``clean_text=False`` (``None``, the default, means clean: explicit processor
        arguments default to ``None`` in transformers)."""
        if clean_text is not False and text is not None:
            text = clean_texts(text)
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
    def get_processor_dict(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        processor_dict, kwargs = super().get_processor_dict(pretrained_model_name_or_path, **kwargs)
        for key in ("image_processor", "feature_extractor"):  # transformers' X-CLIP layout nests its own processor
            processor_dict.pop(key, None)
        return processor_dict, kwargs

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        subfolder = kwargs.pop("subfolder", "")
        path = pretrained_model_name_or_path
        video_processor = XClipVideoProcessor.from_pretrained(path, subfolder=subfolder, **kwargs)
        tokenizer = _load_clip_tokenizer(path, subfolder, **kwargs)
        return [video_processor, tokenizer]

    @property
    def model_input_names(self) -> list[str]:
        return list(dict.fromkeys([*self.tokenizer.model_input_names, *self.video_processor.model_input_names]))


def _load_clip_tokenizer(path: str | os.PathLike, subfolder: str, **kwargs):
    """AutoTokenizer, or CLIPTokenizer for folders holding only ``vocab.json`` + ``merges.txt``."""
    from transformers import AutoTokenizer, CLIPTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, subfolder=subfolder, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        logger.info(f"AutoTokenizer could not load {path} ({err}); loading it as a CLIPTokenizer.")
        return CLIPTokenizer.from_pretrained(path, subfolder=subfolder, **kwargs)


__all__ = ["DEFAULT_HYPOTHESIS_TEMPLATE", "XClipProcessor", "clean_text", "validate_template"]

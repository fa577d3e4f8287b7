"""`pipeline("zero-shot-video-classification")`: score videos against free-text labels with X-CLIP.

```python
>>> import hf_xclip  # registers the task
>>> from transformers import pipeline
>>> clf = pipeline("zero-shot-video-classification", model="microsoft/xclip-base-patch32")  # doctest: +SKIP
>>> clf("video.mp4", candidate_labels=["playing guitar", "surfing"])  # doctest: +SKIP
[{'score': 0.97, 'label': 'playing guitar'}, {'score': 0.03, 'label': 'surfing'}]
```

How a call runs:

* labels are validated, each label is put in every hypothesis template, and the texts are encoded once by the
  text tower; encoded texts are cached on the pipeline (same texts on a later call are not encoded again);
* each video is decoded (only the sampled frames), preprocessed into ``num_clips * num_crops`` views, and only the
  vision tower, the MIT, the prompt generator and the similarity run per video;
* for a list of videos, decoding and preprocessing of the next videos run in background threads while the model
  works on the current batch.

Scores (documented in ``docs/zero_shot.md``):

* single-label (default): softmax over the candidate labels of X-CLIP's logits, averaged over the views (the
  original's multi-view testing averages softmax probabilities over temporal clips x spatial crops);
* ``multi_label=True``: for every label independently, a two-way softmax between the label's prompt and a negative
  prompt (``negative_template``, default ``"not {}"``), averaged over the views. A label's score does not depend on
  the other candidate labels.

Prompt ensembling (several ``hypothesis_template``): per label, the templates' text embeddings are L2-normalised
and averaged (CLIP's ensembling); the mean direction is rescaled to the templates' mean norm before the video-specific
prompts are added, because X-CLIP adds them to the unnormalised text embedding. With one template this is exactly
the plain text embedding.
"""

from __future__ import annotations

import collections
import os
import threading
import types
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, Pipeline
from transformers.utils import logging

from .modeling_xclip import XClipModel
from .processing_xclip import clean_text

logger = logging.get_logger(__name__)

TASK = "zero-shot-video-classification"
DEFAULT_HYPOTHESIS_TEMPLATE = "{}"
DEFAULT_NEGATIVE_TEMPLATE = "not {}"
_URL_PREFIXES = ("http://", "https://")


_CALL_PARAMETERS = frozenset(
    {
        "hypothesis_template",
        "top_k",
        "multi_label",
        "negative_template",
        "num_frames",
        "num_clips",
        "num_crops",
        "return_exceptions",
        "timeout",
        "batch_size",
        "num_workers",
    }
)


class VideoClassificationError(ValueError):
    """One video of a batch could not be classified (returned in its place with ``return_exceptions=True``)."""

    def __init__(self, video: str, reason: str):
        self.video = video
        self.reason = reason
        super().__init__(f"{video}: {reason}")

    def __reduce__(self):
        return (type(self), (self.video, self.reason))


# ----------------------------------------------------------------------------------------------------------------
# Argument checks


def normalize_labels(candidate_labels: Any) -> list[str]:
    """Validate candidate labels: a non-empty list of distinct, non-empty strings (or one comma-separated string).

    Raises:
        ValueError: naming the offending label (empty, not a string, duplicated) or saying the list is empty.
    """
    if candidate_labels is None:
        raise ValueError("zero-shot video classification needs `candidate_labels` (a list of label strings).")
    if isinstance(candidate_labels, str):
        candidate_labels = [label.strip() for label in candidate_labels.split(",")]
    elif isinstance(candidate_labels, (bytes, dict)) or not isinstance(candidate_labels, Iterable):
        raise ValueError(
            f"`candidate_labels` must be a list of strings, got {type(candidate_labels).__name__}: {candidate_labels!r}"
        )
    labels = list(candidate_labels)
    if not labels:
        raise ValueError("`candidate_labels` is empty: give at least one label.")
    seen: dict[str, int] = {}
    for index, label in enumerate(labels):
        if not isinstance(label, str):
            raise ValueError(f"candidate label {index} is not a string: {label!r} ({type(label).__name__}).")
        if not label.strip():
            raise ValueError(f"candidate label {index} is empty ({label!r}).")
        if label in seen:
            raise ValueError(f"duplicate candidate label {label!r} (positions {seen[label]} and {index}).")
        seen[label] = index
    return labels


def normalize_templates(templates: Any, name: str = "hypothesis_template") -> tuple[str, ...]:
    """Validate one template or a list of templates; each must contain exactly one ``{}`` placeholder."""
    if isinstance(templates, str):
        templates = [templates]
    elif not isinstance(templates, Sequence) or not templates:
        raise ValueError(f"`{name}` must be a string with '{{}}' or a non-empty list of such strings, got {templates!r}.")
    checked = []
    for template in templates:
        if not isinstance(template, str):
            raise ValueError(f"`{name}` entries must be strings, got {template!r}.")
        try:
            filled = template.format("\0")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(f"`{name}` {template!r} is not a valid format string with one '{{}}': {err}") from None
        if filled.count("\0") != 1:
            raise ValueError(f"`{name}` {template!r} must contain the label placeholder '{{}}' exactly once.")
        checked.append(template)
    if len(set(checked)) != len(checked):
        raise ValueError(f"`{name}` has duplicate templates: {checked!r}.")
    return tuple(checked)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def _video_name(video: Any) -> str:
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    if isinstance(video, (bytes, bytearray, memoryview)):
        return f"<{len(video)} bytes>"
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return f"<{type(video).__name__} of shape {tuple(video.shape)}>"
    return f"<{type(video).__name__}>"


# ----------------------------------------------------------------------------------------------------------------
# Text embedding cache


class TextEmbeddingCache:
    """Projected text embeddings (before the video-specific prompts), keyed by text, for one model and tokenizer.

    Least recently used texts are dropped beyond ``max_texts``. The cache is emptied when the model, tokenizer,
    device or dtype it was filled with changes (weights changed in place, e.g. by training, are not detected: call
    `clear()`).
    """

    def __init__(self, max_texts: int = 50_000) -> None:
        self.max_texts = max_texts
        self._store: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()
        self._owner: tuple | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
        self._owner = None

    def bind(self, owner: tuple) -> None:
        if owner != self._owner:
            self._store.clear()
            self._owner = owner

    def lookup(self, texts: Sequence[str]) -> list[str]:
        """Texts not cached yet (in order, without repeats); marks the cached ones as recently used."""
        missing = []
        for text in dict.fromkeys(texts):
            if text in self._store:
                self._store.move_to_end(text)
                self.hits += 1
            else:
                missing.append(text)
                self.misses += 1
        return missing

    def add(self, texts: Sequence[str], embeddings: torch.Tensor) -> None:
        for text, embedding in zip(texts, embeddings):
            self._store[text] = embedding
            self._store.move_to_end(text)
        while len(self._store) > self.max_texts:
            self._store.popitem(last=False)

    def stack(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.stack([self._store[text] for text in texts])


def _length_chunks(lengths: Sequence[int], max_size: int, min_size: int = 32) -> list[list[int]]:
    """Indices grouped for encoding: sorted by token length, a new group when the length grows and the current
    group has ``min_size`` texts (or ``max_size``). Labels are short and of varied length: padding all of them to
    the longest would double the text work, one group per length would make many tiny forward passes."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks: list[list[int]] = []
    for index in order:
        current = chunks[-1] if chunks else None
        if (
            current is None
            or len(current) >= max_size
            or (len(current) >= min_size and lengths[index] > lengths[current[-1]])
        ):
            chunks.append([index])
        else:
            current.append(index)
    return chunks


def ensemble_text_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    """(K, M, D) embeddings of K labels in M templates -> (K, D).

    The direction is the normalised mean of the normalised template embeddings (CLIP's prompt ensembling); the
    norm is the templates' mean norm, so the result has the scale of a plain text embedding, which X-CLIP's prompt
    generator adds to. With M = 1 the input is returned unchanged.
    """
    if embeddings.shape[1] == 1:
        return embeddings[:, 0]
    norms = embeddings.norm(dim=-1, keepdim=True)
    direction = (embeddings / norms).mean(dim=1)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    return direction * norms.mean(dim=1)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline


@dataclass(frozen=True)
class _LabelSet:
    labels: tuple[str, ...]
    templates: tuple[str, ...]
    negative_template: str | None


class ZeroShotVideoClassificationPipeline(Pipeline):
    """Zero-shot video classification with X-CLIP: a video and free-text `candidate_labels` in, scores out.

    Load it with `pipeline("zero-shot-video-classification", model=...)` (after `import hf_xclip`), where `model` is
    an hf_xclip directory or Hub id, a directory of transformers' X-CLIP (`microsoft/xclip-*` layout), or an
    [`XClipModel`] (a transformers `XCLIPModel` object is converted). Processor and tokenizer are read from the
    model's directory unless given (`processor=`, `video_processor=` / `image_processor=`, `tokenizer=`).

    Call arguments are described in [`~ZeroShotVideoClassificationPipeline.__call__`].
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        video_processor: Any = None,
        processor: Any = None,
        image_processor: Any = None,
        feature_extractor: Any = None,
        text_cache_size: int = 50_000,
        text_batch_size: int = 256,
        **kwargs,
    ) -> None:
        model = as_xclip_model(model)
        source = model.name_or_path or None
        processor, video_processor, tokenizer = _resolve_components(
            source, processor, video_processor or image_processor or feature_extractor, tokenizer,
            config=None if isinstance(model, XClipModel) else model.config,
        )
        super().__init__(model=model, tokenizer=tokenizer, video_processor=video_processor, processor=processor, **kwargs)
        self.model.eval()
        self.text_cache = TextEmbeddingCache(text_cache_size)
        self.text_batch_size = _positive_int(text_batch_size, "text_batch_size")
        self._last_label_set: tuple[Any, _LabelSet, torch.Tensor, torch.Tensor | None] | None = None
        self._lock = threading.Lock()

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save model, processor (or video processor and tokenizer) and the code of this pipeline.

        The directory then loads with ``pipeline("zero-shot-video-classification", model=directory,
        trust_remote_code=True)`` where hf_xclip is not installed (also after ``push_to_hub``). Since
        ``config.custom_pipelines`` then names the task, transformers asks for ``trust_remote_code=True`` with such a
        directory even where hf_xclip is installed.
        """
        from transformers.dynamic_module_utils import custom_object_save

        if os.path.isfile(save_directory):
            raise ValueError(f"Cannot save the pipeline to {os.fspath(save_directory)!r}: it is a file.")
        os.makedirs(save_directory, exist_ok=True)
        self.model.config.custom_pipelines = custom_pipelines_config()
        custom_object_save(self, save_directory)  # this file and every file it imports relatively
        self.model.save_pretrained(save_directory, **kwargs)
        processor = self.processor
        if processor is None:  # one processor_config.json, so that AutoProcessor loads the directory too
            from .processing_xclip import XClipProcessor

            processor = XClipProcessor(video_processor=self.video_processor, tokenizer=self.tokenizer)
        processor.save_pretrained(save_directory)

    # -- parameters -------------------------------------------------------------------------------------------

    def __call__(self, videos: Any, candidate_labels: Any = None, **kwargs: Any) -> Any:
        """Classify one video or a list of videos.

        Args:
            videos: a path, URL (http/https), `bytes` of a video file, binary file object, or frames as an array or
                tensor of shape (T, H, W, 3) (uint8 RGB); or a list of these (a list of results is returned), or a
                generator / dataset (an iterator of results is returned).
            candidate_labels (`list[str]`): distinct, non-empty label texts (a single string is split on commas).
            hypothesis_template (`str` or `list[str]`, defaults to `"{}"`): where the label goes in the text; X-CLIP
                was trained with bare class names. Several templates are ensembled (see module docs).
            top_k (`int`, *optional*): return only the `top_k` best labels (all when `None`).
            multi_label (`bool`, defaults to `False`): independent per-label scores in [0, 1] (label vs. negative
                prompt) instead of a softmax over the labels.
            negative_template (`str`, defaults to `"not {}"`): the negative prompt of `multi_label`.
            num_frames (`int`, *optional*): frames per clip (defaults to the processor's / model's).
            num_clips (`int`, defaults to 1): temporal clips per video (views; probabilities are averaged).
            num_crops (`int`, defaults to 1): spatial crops per clip (1 = centre crop, 3 = three crops along the long
                side; probabilities are averaged).
            return_exceptions (`bool`, defaults to `False`): for lists, return the exception of a video that fails
                (a `ValueError` naming it) in place of its result instead of raising.
            batch_size (`int`): videos per forward pass. num_workers (`int`): threads decoding ahead (at least 1).

        Returns:
            `[{"score": float, "label": str}, ...]` sorted by descending score, or a list of those.
        """
        if videos is None:
            raise ValueError("zero-shot-video-classification needs videos (a path, URL, bytes, frames or a list).")
        unknown = set(kwargs) - _CALL_PARAMETERS
        if unknown:
            raise TypeError(f"zero-shot-video-classification got unexpected arguments: {sorted(unknown)}")
        if candidate_labels is None and "candidate_labels" not in self._forward_params:
            normalize_labels(None)  # raises the "needs candidate_labels" error before any decoding
        if isinstance(videos, tuple):
            videos = list(videos)
        elif isinstance(videos, Iterator) and not isinstance(videos, types.GeneratorType):
            videos = (video for video in videos)  # the base class streams generators only
        if isinstance(videos, list) and not videos:
            return []
        return super().__call__(videos, candidate_labels=candidate_labels, **kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels: Any = None,
        hypothesis_template: Any = None,
        top_k: int | None = None,
        multi_label: bool | None = None,
        negative_template: str | None = None,
        num_frames: int | None = None,
        num_clips: int | None = None,
        num_crops: int | None = None,
        return_exceptions: bool | None = None,
        timeout: float | None = None,
        **unknown: Any,
    ) -> tuple[dict, dict, dict]:
        if unknown:
            raise TypeError(f"zero-shot-video-classification got unexpected arguments: {sorted(unknown)}")
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {}
        postprocess: dict[str, Any] = {}
        if candidate_labels is not None:
            forward["candidate_labels"] = tuple(normalize_labels(candidate_labels))
        if hypothesis_template is not None:
            forward["hypothesis_template"] = normalize_templates(hypothesis_template)
        if multi_label is not None:
            forward["multi_label"] = bool(multi_label)
        if negative_template is not None:
            forward["negative_template"] = normalize_templates(negative_template, "negative_template")[0]
        if top_k is not None:
            postprocess["top_k"] = _positive_int(top_k, "top_k")
        if num_frames is not None:
            preprocess["num_frames"] = _positive_int(num_frames, "num_frames")
        if num_clips is not None:
            preprocess["num_clips"] = _positive_int(num_clips, "num_clips")
        if num_crops is not None:
            preprocess["num_crops"] = _positive_int(num_crops, "num_crops")
        if timeout is not None:
            preprocess["timeout"] = timeout
        if return_exceptions is not None:
            postprocess["return_exceptions"] = bool(return_exceptions)
        return preprocess, forward, postprocess

    # -- text side --------------------------------------------------------------------------------------------

    def _cache_owner(self) -> tuple:
        return (id(self.model), id(self.tokenizer), str(self.device), str(self.model.dtype))

    def clear_text_cache(self) -> None:
        """Forget every encoded label (needed after changing the text tower's weights in place)."""
        with self._lock:
            self.text_cache.clear()
            self._last_label_set = None

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Projected text embeddings (N, D) before the video-specific prompts, through the cache."""
        with self._lock:
            self.text_cache.bind(self._cache_owner())
            missing = self.text_cache.lookup(texts)
            if missing:
                self.text_cache.add(missing, self._encode_uncached(missing))
            return self.text_cache.stack(texts)

    def _encode_uncached(self, texts: list[str]) -> torch.Tensor:
        if self.tokenizer is None:
            raise ValueError("This pipeline has no tokenizer: pass `tokenizer=` or a processor with one.")
        max_length = self.model.config.text_config.max_position_embeddings
        cleaned = [clean_text(text) for text in texts]
        tokenized = self.tokenizer(cleaned, truncation=True, max_length=max_length)["input_ids"]
        out: list[torch.Tensor | None] = [None] * len(texts)
        for chunk in _length_chunks([len(ids) for ids in tokenized], self.text_batch_size):
            width = max(len(tokenized[i]) for i in chunk)
            batch = self.tokenizer.pad({"input_ids": [tokenized[i] for i in chunk]}, padding="max_length",
                                       max_length=width, return_tensors="pt")
            # The text tower is causal and pools at the EOT token, so padding after it changes nothing.
            embeds = self.model.get_text_features(
                input_ids=batch["input_ids"].to(self.device), attention_mask=batch["attention_mask"].to(self.device)
            ).pooler_output
            for i, embedding in zip(chunk, embeds):
                out[i] = embedding
        return torch.stack(out)

    def label_embeddings(
        self,
        candidate_labels: Sequence[str],
        hypothesis_template: str | Sequence[str] = DEFAULT_HYPOTHESIS_TEMPLATE,
        negative_template: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ensembled label embeddings (K, D) and, with a `negative_template`, the negatives' (K, D)."""
        label_set = _LabelSet(
            tuple(normalize_labels(candidate_labels)),
            normalize_templates(hypothesis_template),
            negative_template,
        )
        owner = self._cache_owner()
        last = self._last_label_set
        if last is not None and last[0] == owner and last[1] == label_set:
            return last[2], last[3]
        positives = self._ensembled(label_set.labels, label_set.templates)
        negatives = None
        if negative_template is not None:
            negated = [negative_template.format(label) for label in label_set.labels]
            negatives = self._ensembled(negated, label_set.templates)
        self._last_label_set = (owner, label_set, positives, negatives)
        return positives, negatives

    def _ensembled(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        texts = [template.format(label) for label in labels for template in templates]
        embeds = self.encode_texts(texts)
        return ensemble_text_embeddings(embeds.view(len(labels), len(templates), -1).float()).to(embeds.dtype)

    # -- video side -------------------------------------------------------------------------------------------

    def preprocess(
        self,
        video: Any,
        num_frames: int | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        name = _video_name(video)
        pixel_values = self._video_to_pixel_values(video, num_frames, num_clips, num_crops, timeout)
        return {"pixel_values": pixel_values, "video_name": name}

    def _video_to_pixel_values(self, video, num_frames, num_clips, num_crops, timeout) -> torch.Tensor:
        """(num_clips * num_crops, T, 3, S, S) float pixel values of one video."""
        name = _video_name(video)
        video = _fetch_video(video, timeout)
        try:
            out = self.video_processor(
                video,
                num_frames=num_frames or self.model.config.vision_config.num_frames,
                num_clips=num_clips,
                num_crops=num_crops,
                return_tensors="pt",
            )
        except (ValueError, TypeError) as err:
            if name in str(err):
                raise
            raise VideoClassificationError(name, str(err)) from err
        return out["pixel_values"]

    def _forward(
        self,
        model_inputs: dict[str, Any],
        candidate_labels: tuple[str, ...] | None = None,
        hypothesis_template: tuple[str, ...] = (DEFAULT_HYPOTHESIS_TEMPLATE,),
        multi_label: bool = False,
        negative_template: str = DEFAULT_NEGATIVE_TEMPLATE,
    ) -> dict[str, Any]:
        if candidate_labels is None:
            raise ValueError("zero-shot video classification needs `candidate_labels` (a list of label strings).")
        positives, negatives = self.label_embeddings(
            candidate_labels, hypothesis_template, negative_template if multi_label else None
        )
        views = model_inputs["pixel_values"]  # list of (V_i, T, 3, S, S)
        counts = [v.shape[0] for v in views]
        pixel_values = torch.cat(views).to(device=self.device, dtype=self.model.dtype)
        video = self.model.get_video_features(pixel_values, output_prompt_features=True)
        texts = positives if negatives is None else torch.cat([positives, negatives])
        logits, _ = self.model.get_logits(video.pooler_output, texts, video.prompt_features)
        logits = logits.float()
        if negatives is None:
            probs = logits.softmax(dim=-1)
        else:
            num_labels = positives.shape[0]
            pair = torch.stack([logits[:, :num_labels], logits[:, num_labels:]], dim=-1)
            probs = pair.softmax(dim=-1)[..., 0]
        scores = [chunk.mean(dim=0) for chunk in probs.split(counts)]
        return {"scores": scores, "candidate_labels": candidate_labels}

    def postprocess(self, model_outputs: dict[str, Any], top_k: int | None = None, return_exceptions: bool = False):
        scores = model_outputs["scores"][0].tolist()
        ranked = sorted(zip(scores, model_outputs["candidate_labels"]), key=lambda pair: -pair[0])
        if top_k is not None:
            ranked = ranked[:top_k]
        return [{"score": score, "label": label} for score, label in ranked]

    # -- execution --------------------------------------------------------------------------------------------

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        model_inputs = self.preprocess(inputs, **preprocess_params)
        batch = {"pixel_values": [model_inputs["pixel_values"]], "video_name": [model_inputs["video_name"]]}
        outputs = self.forward(batch, **forward_params)
        postprocess_params = {k: v for k, v in postprocess_params.items() if k != "return_exceptions"}
        return self.postprocess(outputs, **postprocess_params)

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        return self._iterate(inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params)

    def _iterate(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        batch_size = _positive_int(batch_size or 1, "batch_size")
        threads = max(1, int(num_workers or 0))
        return_exceptions = postprocess_params.get("return_exceptions", False)
        postprocess_params = {k: v for k, v in postprocess_params.items() if k != "return_exceptions"}
        # Validate the labels (and fill the text cache) before any video is decoded.
        self.label_embeddings(
            forward_params.get("candidate_labels") or normalize_labels(None),
            forward_params.get("hypothesis_template", DEFAULT_HYPOTHESIS_TEMPLATE),
            forward_params.get("negative_template", DEFAULT_NEGATIVE_TEMPLATE)
            if forward_params.get("multi_label")
            else None,
        )

        def work(video):
            try:
                return self.preprocess(video, **preprocess_params)
            except Exception as err:  # reported per video below
                return _failure(video, err)

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="xclip-decode") as pool:
            pending: collections.deque[Future] = collections.deque()
            source = iter(inputs)
            ahead = batch_size + threads
            exhausted = False
            while True:
                while not exhausted and len(pending) < ahead:
                    try:
                        pending.append(pool.submit(work, next(source)))
                    except StopIteration:
                        exhausted = True
                if not pending:
                    return
                items = [pending.popleft().result() for _ in range(min(batch_size, len(pending)))]
                yield from self._run_batch(items, forward_params, postprocess_params, return_exceptions)

    def _run_batch(self, items, forward_params, postprocess_params, return_exceptions):
        good = [item for item in items if not isinstance(item, Exception)]
        results: dict[int, Any] = {}
        if good:
            batch = {"pixel_values": [g["pixel_values"] for g in good], "video_name": [g["video_name"] for g in good]}
            outputs = self.forward(batch, **forward_params)
            for g, scores in zip(good, outputs["scores"]):
                one = {"scores": [scores], "candidate_labels": outputs["candidate_labels"]}
                results[id(g)] = self.postprocess(one, **postprocess_params)
        for item in items:
            if isinstance(item, Exception):
                if not return_exceptions:
                    raise item
                yield item
            else:
                yield results[id(item)]


def _failure(video: Any, err: Exception) -> Exception:
    if isinstance(err, ValueError):
        return err
    return VideoClassificationError(_video_name(video), f"{type(err).__name__}: {err}")


# ----------------------------------------------------------------------------------------------------------------
# Video inputs


def _fetch_video(video: Any, timeout: float | None) -> Any:
    """Download URLs (the video processor reads paths, bytes, file objects and frames itself)."""
    if isinstance(video, str) and video.startswith(_URL_PREFIXES):
        return _download(video, timeout)
    if isinstance(video, (np.ndarray, torch.Tensor)) and video.ndim == 5:
        raise ValueError(
            f"video frames {_video_name(video)} look like a batch of videos; pass a list of (T, H, W, 3) arrays."
        )
    if isinstance(video, (list, dict, set)) or video is None:
        raise ValueError(
            f"Cannot read a video from {_video_name(video)}: pass a path, URL, bytes, a binary file object or frames "
            "as an array of shape (T, H, W, 3) (a list means several videos)."
        )
    return video


def _download(url: str, timeout: float | None) -> bytes:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout if timeout is not None else 60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ValueError(f"Cannot download video {url!r}: {err}") from None
    if not data:
        raise ValueError(f"Cannot download video {url!r}: empty response.")
    return data


def as_xclip_video_processor(video_processor: Any) -> Any:
    """An `XClipVideoProcessor`; transformers' image processors (VideoMAE, CLIP) are read as X-CLIP's protocol."""
    from .video_processing_xclip import XClipVideoProcessor

    if isinstance(video_processor, XClipVideoProcessor):
        return video_processor
    if hasattr(video_processor, "to_dict"):
        config = video_processor.to_dict()
        config.setdefault("image_processor_type", type(video_processor).__name__)
        return XClipVideoProcessor(**config)
    raise ValueError(f"Expected a video processor, got {type(video_processor).__name__}.")


def load_video_processor(path: str) -> Any:
    """The video processor saved with a model (hf_xclip's, or transformers' VideoMAE preprocessor config)."""
    from .video_processing_xclip import XClipVideoProcessor

    try:
        return XClipVideoProcessor.from_pretrained(path)
    except OSError as err:
        raise ValueError(
            f"Cannot load a video processor from {path!r} ({err}); pass `processor=` or `video_processor=`."
        ) from None


# ----------------------------------------------------------------------------------------------------------------
# Loading


def as_xclip_model(model: Any) -> XClipModel:
    """Return an [`XClipModel`]; a transformers `XCLIPModel` object is converted (same weights, our classes)."""
    if isinstance(model, XClipModel) or _is_xclip_model_copy(model):
        return model
    if type(model).__name__ == "XCLIPModel" and type(model).__module__.startswith("transformers."):
        from .configuration_xclip import XClipConfig

        config = XClipConfig.from_dict(model.config.to_dict())
        converted = XClipModel(config).to(dtype=model.dtype)
        renames = {"prompts_visual_projection": "prompts_visual_proj.weight", "logit_scale": "logit_scale_module.logit_scale"}
        state = {renames.get(key, key): value for key, value in model.state_dict().items()}
        converted.load_state_dict(state, strict=True)
        converted.name_or_path = model.name_or_path
        return converted.to(model.device)
    raise ValueError(
        f"zero-shot-video-classification needs an X-CLIP model (hf_xclip XClipModel or transformers XCLIPModel), "
        f"got {type(model).__name__}."
    )


def _is_xclip_model_copy(model: Any) -> bool:
    # trust_remote_code imports this file and modeling_xclip.py from a saved directory as separate module copies
    # (one per entry point), so the model can be an XClipModel of another module than the one imported here.
    return type(model).__name__ == XClipModel.__name__ and getattr(model.config, "model_type", None) == "hf_xclip"


def _resolve_components(source: str | None, processor: Any, video_processor: Any, tokenizer: Any, config: Any = None):
    """(processor, video_processor, tokenizer): loads what is missing from `source` (the model's directory / id)."""
    if isinstance(processor, (str, os.PathLike)):
        processor = _load_processor(os.fspath(processor))
    if processor is not None:
        video_processor = video_processor or getattr(processor, "video_processor", None) or getattr(
            processor, "image_processor", None
        )
        tokenizer = tokenizer or getattr(processor, "tokenizer", None)
    if video_processor is None or isinstance(video_processor, (str, os.PathLike)):
        where = os.fspath(video_processor) if video_processor is not None else source
        if where is None:
            raise ValueError(
                "Cannot find a video processor: the model has no `name_or_path`; pass `processor=` or `video_processor=`."
            )
        video_processor = load_video_processor(where)
    video_processor = as_xclip_video_processor(video_processor)
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        where = os.fspath(tokenizer) if tokenizer is not None else source
        if where is None:
            raise ValueError("Cannot find a tokenizer: the model has no `name_or_path`; pass `tokenizer=`.")
        # A model loaded with trust_remote_code passes its config: AutoTokenizer would load it again and ask for
        # trust_remote_code a second time.
        known_config = {"config": config} if config is not None and where == source else {}
        tokenizer = AutoTokenizer.from_pretrained(where, **known_config)
    return processor, video_processor, tokenizer


def _load_processor(path: str):
    try:
        from .processing_xclip import XClipProcessor
    except ImportError:  # pragma: no cover - until the processor module exists
        return None
    return XClipProcessor.from_pretrained(path)


def custom_pipelines_config() -> dict[str, dict[str, Any]]:
    """`config.custom_pipelines` for a saved model: the task, this file's pipeline class and ``AutoModel`` (which
    resolves to the model through the directory's ``auto_map``; transformers looks the name up in its own namespace)."""
    module = ZeroShotVideoClassificationPipeline.__module__.rsplit(".", 1)[-1]
    impl = f"{module}.{ZeroShotVideoClassificationPipeline.__name__}"
    return {TASK: {"impl": impl, "pt": ["AutoModel"], "type": "multimodal"}}


def register_pipeline() -> None:
    """Register the task with transformers' pipeline registry (called by `hf_xclip.register()`)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    PIPELINE_REGISTRY.supported_tasks.pop(TASK, None)  # re-registering (e.g. a reload) is not an override
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=ZeroShotVideoClassificationPipeline, pt_model=XClipModel, type="multimodal"
    )


__all__ = [
    "DEFAULT_HYPOTHESIS_TEMPLATE",
    "DEFAULT_NEGATIVE_TEMPLATE",
    "TextEmbeddingCache",
    "VideoClassificationError",
    "ZeroShotVideoClassificationPipeline",
    "ensemble_text_embeddings",
    "normalize_labels",
    "normalize_templates",
]

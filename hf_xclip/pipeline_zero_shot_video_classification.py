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
  text tower through the label core (`hf_xclip.labels.LabelEncoder`, one per pipeline): encoded texts are cached
  (same texts on a later call are not encoded again), several templates and per-label descriptions
  (``label_descriptions``) are ensembled, and labels held by a label bank (``label_bank``) are not encoded at all;
* each video is decoded (only the sampled frames), preprocessed into ``num_clips * num_crops`` views, and only the
  vision tower, the MIT, the prompt generator and the similarity run per video;
* for a list of videos, decoding and preprocessing of the next videos run in background threads while the model
  works on the current batch.

The label side and the scoring are public methods, so that other tools score clips exactly as a call does:
`prepare_labels` (labels -> embeddings, through the cache) and `score_clips` (pixel values of clips -> scores per
clip); `hf_xclip.timeline` scores the windows of long videos with them.

Scores (documented in ``docs/zero_shot.md``):

* single-label (default): softmax over the candidate labels of X-CLIP's logits, averaged over the views (the
  original's multi-view testing averages softmax probabilities over temporal clips x spatial crops);
* ``multi_label=True``: an independent probability per label, averaged over the views; a label's score does not
  depend on the other candidate labels (`hf_xclip.multilabel`). ``multi_label_method="auto"`` (default) uses the
  model's sigmoid head (``config.multi_label_scale`` / ``multi_label_bias``, from multi-label training or
  ``hf-xclip calibrate``) and, for a model without one, the label against a bank of generic background prompts
  (``"background"``); ``"negative"`` is the label against ``negative_template`` (``"not {}"``), a two-way softmax.
* ``threshold``: keep only labels whose score is at or above it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import Pipeline
from transformers.utils import logging

from .labels import (
    DEFAULT_NEGATIVE_TEMPLATE,
    LabelBank,
    LabelEncoder,
    TextEmbeddingCache,
    normalize_descriptions,
    normalize_labels,
    normalize_templates,
    resolve_templates,
)
from .loading import XClipAutoModel, as_video_text_model, is_xclip_family, resolve_components
from .modeling_xclip import XClipModel
from .multilabel import (
    MULTI_LABEL_METHODS,
    decision_thresholds,
    reference_texts,
    resolve_method,
    video_label_scores,
)
from .utils import check_positive_int, prefetch_map
from .video_io import fetch_video, is_loaded_video, video_name

logger = logging.get_logger(__name__)

TASK = "zero-shot-video-classification"


_CALL_PARAMETERS = frozenset(
    {
        "hypothesis_template",
        "top_k",
        "multi_label",
        "multi_label_method",
        "negative_template",
        "threshold",
        "num_frames",
        "num_clips",
        "num_crops",
        "return_exceptions",
        "timeout",
        "batch_size",
        "num_workers",
        "label_descriptions",
        "label_bank",
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


def _probability(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class PreparedLabels:
    """The label side of a call, encoded: label texts, their (K, D) embeddings, and for multi-label scores the
    method (`hf_xclip.multilabel`) with the embeddings of its reference texts (negated labels or background prompts);
    made by [`ZeroShotVideoClassificationPipeline.prepare_labels`] and consumed by `score_clips`."""

    labels: tuple[str, ...]
    positives: torch.Tensor
    references: torch.Tensor | None = None
    method: str | None = None

    @property
    def multi_label(self) -> bool:
        return self.method is not None


# ----------------------------------------------------------------------------------------------------------------
# The pipeline


class ZeroShotVideoClassificationPipeline(Pipeline):
    """Zero-shot video classification with X-CLIP: a video and free-text `candidate_labels` in, scores out.

    Load it with `pipeline("zero-shot-video-classification", model=...)` (after `import hf_xclip`), where `model` is
    an hf_xclip directory or Hub id, a directory of transformers' X-CLIP (`microsoft/xclip-*` layout), or an
    [`XClipModel`] (a transformers `XCLIPModel` object is converted). Processor and tokenizer are read from the
    model's directory unless given (`processor=`, `video_processor=` / `image_processor=`, `tokenizer=`).

    Call arguments are described in [`~ZeroShotVideoClassificationPipeline.__call__`]. Without a
    `hypothesis_template` the model's own is used (`hypothesis_template` attribute, from its processor: `"{}"` for
    X-CLIP, `"a photo of a {}."` for ViFi-CLIP).
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
        model = as_video_text_model(model)
        source = model.name_or_path or None
        processor, video_processor, tokenizer = resolve_components(
            source,
            processor,
            video_processor or image_processor or feature_extractor,
            tokenizer,
            config=None if isinstance(model, XClipModel) else model.config,
            model=model,
        )
        super().__init__(
            model=model, tokenizer=tokenizer, video_processor=video_processor, processor=processor, **kwargs
        )
        self.model.eval()
        # the model's text template (its processor's), the default of every call
        self.hypothesis_template = (
            resolve_templates(None, processor, source) if is_xclip_family(model) else _family_template(model)
        )
        self.label_encoder = LabelEncoder(
            self.model,
            self.tokenizer,
            batch_size=check_positive_int(text_batch_size, "text_batch_size"),
            cache_size=text_cache_size,
        )
        if self._forward_params.get("label_bank") is not None:  # refuse another model's bank at once
            self.label_encoder.check_bank(self._forward_params["label_bank"])

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

            processor = XClipProcessor(
                video_processor=self.video_processor,
                tokenizer=self.tokenizer,
                hypothesis_template=self.hypothesis_template[0],
            )
        processor.save_pretrained(save_directory)

    # -- parameters -------------------------------------------------------------------------------------------

    def __call__(self, videos: Any, candidate_labels: Any = None, **kwargs: Any) -> Any:
        """Classify one video or a list of videos.

        Args:
            videos: a path, URL (http/https), `bytes` of a video file, binary file object, or frames as an array or
                tensor of shape (T, H, W, 3) (uint8 RGB), or the `(frames, metadata)` tuple of transformers'
                `load_video` (its `VideoMetadata` gives the frames' times); or a list of these (a list of results is
                returned), or a generator / dataset (an iterator of results is returned).
            candidate_labels (`list[str]`): distinct, non-empty label texts (a single string is split on commas).
            hypothesis_template (`str` or `list[str]`, *optional*): where the label goes in the text; defaults to the
                model's own template (its processor's `hypothesis_template`: `"{}"` for X-CLIP, which was trained
                with bare class names, `"a photo of a {}."` for ViFi-CLIP). Several templates are ensembled (see
                module docs).
            top_k (`int`, *optional*): return only the `top_k` best labels (all when `None`).
            multi_label (`bool`, defaults to `False`): an independent probability in [0, 1] per label instead of a
                softmax over the labels (see `multi_label_method`).
            multi_label_method (`str`, defaults to `"auto"`): `"sigmoid"` (the model's sigmoid head), `"background"`
                (the label against generic background prompts), `"negative"` (the label against
                `negative_template`); `"auto"`: the head when the model has one, else `"background"`.
            negative_template (`str`, defaults to `"not {}"`): the negative prompt of `multi_label_method="negative"`
                (giving it without a method selects that method).
            threshold (`float`, *optional*): return only labels whose score is at or above it (then `top_k`).
                Multi-label with the model's sigmoid head: by default the head's decision thresholds fitted by
                `hf-xclip calibrate` (``config.multi_label_threshold(s)``) when it has them.
            num_frames (`int`, *optional*): frames per clip (defaults to the processor's / model's).
            num_clips (`int`, defaults to 1): temporal clips per video (views; probabilities are averaged).
            num_crops (`int`, defaults to 1): spatial crops per clip (1 = centre crop, 3 = three crops along the long
                side; probabilities are averaged).
            label_descriptions (`dict[str, list[str]]` or a path to such a JSON file, *optional*): sentences per label
                (e.g. from `hf-xclip labels describe`), ensembled with the label's templates by the label core.
            label_bank ([`~hf_xclip.labels.LabelBank`] or the path of a saved one, *optional*): label embeddings
                encoded once (`hf-xclip labels encode`); labels it holds are not encoded again, the others are encoded
                with its templates. Without `candidate_labels`, all its labels are scored. A bank made by another model
                or adapter is refused (`LabelBankMismatchError`). Can be given when the pipeline is created.
            return_exceptions (`bool`, defaults to `False`): for lists, return the exception of a video that fails
                (a `ValueError` naming it) in place of its result instead of raising.
            batch_size (`int`): videos per forward pass. num_workers (`int`): threads decoding ahead (at least 1).

        Returns:
            `[{"score": float, "label": str}, ...]` sorted by descending score (only scores at or above `threshold`
            when it is given), or a list of those.
        """
        if videos is None:
            raise ValueError("zero-shot-video-classification needs videos (a path, URL, bytes, frames or a list).")
        unknown = set(kwargs) - _CALL_PARAMETERS
        if unknown:
            raise TypeError(f"zero-shot-video-classification got unexpected arguments: {sorted(unknown)}")
        has_bank = kwargs.get("label_bank") is not None or self._forward_params.get("label_bank") is not None
        if candidate_labels is None and "candidate_labels" not in self._forward_params and not has_bank:
            normalize_labels(None)  # raises the "needs candidate_labels" error before any decoding
        if isinstance(videos, tuple) and not is_loaded_video(videos):  # load_video's (frames, metadata): one video
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
        multi_label_method: str | None = None,
        negative_template: str | None = None,
        threshold: float | None = None,
        num_frames: int | None = None,
        num_clips: int | None = None,
        num_crops: int | None = None,
        return_exceptions: bool | None = None,
        timeout: float | None = None,
        label_descriptions: Any = None,
        label_bank: Any = None,
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
            forward.setdefault("multi_label_method", "negative")
        if multi_label_method is not None:
            if multi_label_method not in MULTI_LABEL_METHODS:
                raise ValueError(
                    f"`multi_label_method` must be one of {MULTI_LABEL_METHODS}, got {multi_label_method!r}."
                )
            forward["multi_label_method"] = multi_label_method
        if label_descriptions is not None:
            forward["label_descriptions"] = normalize_descriptions(label_descriptions)
        if label_bank is not None:
            forward["label_bank"] = label_bank if isinstance(label_bank, LabelBank) else LabelBank.load(label_bank)
        if top_k is not None:
            postprocess["top_k"] = check_positive_int(top_k, "top_k")
        if threshold is not None:
            postprocess["threshold"] = _probability(threshold, "threshold")
        if num_frames is not None:
            preprocess["num_frames"] = check_positive_int(num_frames, "num_frames")
        if num_clips is not None:
            preprocess["num_clips"] = check_positive_int(num_clips, "num_clips")
        if num_crops is not None:
            preprocess["num_crops"] = check_positive_int(num_crops, "num_crops")
        if timeout is not None:
            preprocess["timeout"] = timeout
        if return_exceptions is not None:
            postprocess["return_exceptions"] = bool(return_exceptions)
        return preprocess, forward, postprocess

    # -- text side --------------------------------------------------------------------------------------------

    @property
    def text_cache(self) -> TextEmbeddingCache:
        """The label core's cache of encoded texts (see `label_encoder`)."""
        return self.label_encoder.cache

    def clear_text_cache(self) -> None:
        """Forget every encoded label (needed after changing the text tower's weights in place)."""
        self.label_encoder.clear()

    def _labels(self) -> LabelEncoder:
        # The pipeline's model and tokenizer can be replaced after construction; the encoder follows them (its
        # cache empties itself when they change).
        self.label_encoder.model, self.label_encoder.tokenizer = self.model, self.tokenizer
        return self.label_encoder

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Projected text embeddings (N, D) before the video-specific prompts, through the cache."""
        return self._labels().encode_texts(texts)

    def label_embeddings(
        self,
        candidate_labels: Sequence[str],
        hypothesis_template: str | Sequence[str] | None = None,
        negative_template: str | None = None,
        label_descriptions: Any = None,
        label_bank: LabelBank | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ensembled label embeddings (K, D) and, with a `negative_template`, the negatives' (K, D)
        (see `LabelEncoder.label_embeddings`); the templates are `hypothesis_template`, else the label bank's, else
        the model's own."""
        templates = hypothesis_template
        if templates is None and label_bank is None:
            templates = self.hypothesis_template
        return self._labels().label_embeddings(
            candidate_labels, templates, negative_template, label_descriptions, label_bank
        )

    # -- video side -------------------------------------------------------------------------------------------

    def preprocess(
        self,
        video: Any,
        num_frames: int | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        name = video_name(video)
        pixel_values = self._video_to_pixel_values(video, num_frames, num_clips, num_crops, timeout)
        return {"pixel_values": pixel_values, "video_name": name}

    def _video_to_pixel_values(self, video, num_frames, num_clips, num_crops, timeout) -> torch.Tensor:
        """(num_clips * num_crops, T, 3, S, S) float pixel values of one video."""
        name = video_name(video)
        video = fetch_video(video, timeout)
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

    def prepare_labels(
        self,
        candidate_labels: Sequence[str],
        hypothesis_template: str | Sequence[str] | None = None,
        multi_label: bool = False,
        multi_label_method: str = "auto",
        negative_template: str = DEFAULT_NEGATIVE_TEMPLATE,
        label_descriptions: Any = None,
        label_bank: Any = None,
    ) -> PreparedLabels:
        """The label side of a call, encoded once (through the text cache): what `score_clips` scores against.

        Args: as in [`~ZeroShotVideoClassificationPipeline.__call__`]: the model's own template when
        `hypothesis_template` is None (or the label bank's), `multi_label_method` resolved for this model (`"auto"`
        included), labels found in `label_bank` (a `LabelBank` or its path) taken from it, `label_descriptions`
        (a mapping or a JSON path) ensembled; `candidate_labels` None with a bank: every label of the bank.

        Raises:
            ValueError: invalid labels, templates, descriptions or method, naming them; `LabelBankMismatchError`
                for another model's bank.
        """
        if label_bank is not None and not isinstance(label_bank, LabelBank):
            label_bank = LabelBank.load(label_bank)
        labels = tuple(normalize_labels(_labels_to_score(candidate_labels, label_bank)))
        templates = None if hypothesis_template is None else normalize_templates(hypothesis_template)
        sources = {"label_descriptions": normalize_descriptions(label_descriptions) or None, "label_bank": label_bank}
        if not multi_label:
            return PreparedLabels(labels, self.label_embeddings(labels, templates, **sources)[0])
        method = resolve_method(multi_label_method, self.model)
        if method == "negative":
            positives, negatives = self.label_embeddings(labels, templates, negative_template, **sources)
            return PreparedLabels(labels, positives, negatives, method)
        positives = self.label_embeddings(labels, templates, **sources)[0]
        references = reference_texts(method, labels)
        return PreparedLabels(labels, positives, None if references is None else self.encode_texts(references), method)

    @torch.no_grad()
    def score_clips(self, pixel_values: torch.Tensor, labels: PreparedLabels) -> torch.Tensor:
        """Scores (N, K) float32 of N clips against prepared labels: the pipeline's scoring of one view, for every
        caller (a call averages them over the views of a video; `hf_xclip.timeline` uses them per window).

        Args:
            pixel_values: (N, T, 3, S, S) from the video processor.
            labels: from [`~ZeroShotVideoClassificationPipeline.prepare_labels`].

        Returns:
            Single-label: the softmax over the K labels of X-CLIP's logits. Multi-label (prepared with
            ``multi_label=True``): each label's independent probability by the prepared method
            (`hf_xclip.multilabel.video_label_scores`).
        """
        return self.score_video_features(self.encode_clips(pixel_values), labels)

    @torch.no_grad()
    def encode_clips(self, pixel_values: torch.Tensor) -> Any:
        """The video side of `score_clips`: ``get_video_features`` of N clips (``pooler_output`` (N, D), the video
        embeddings, and ``prompt_features``), for callers that keep the embeddings (`hf_xclip.distributed`)."""
        pixel_values = pixel_values.to(device=self.device, dtype=self.model.dtype)
        return self.model.encode_videos(pixel_values)

    @torch.no_grad()
    def score_video_features(self, video: Any, labels: PreparedLabels) -> torch.Tensor:
        """`score_clips` from the output of [`encode_clips`]: one video forward can be scored against several
        prepared label sets."""
        if labels.method is None:
            return self.model.probabilities(self.model.score(video, labels.positives))
        scores = video_label_scores(
            self.model, video.pooler_output, video.prompt_features, labels.positives, labels.method, labels.references
        )
        return torch.sigmoid(scores.float())

    def _forward(
        self,
        model_inputs: dict[str, Any],
        candidate_labels: tuple[str, ...] | None = None,
        hypothesis_template: tuple[str, ...] | None = None,
        multi_label: bool = False,
        multi_label_method: str = "auto",
        negative_template: str = DEFAULT_NEGATIVE_TEMPLATE,
        label_descriptions: Any = None,
        label_bank: LabelBank | None = None,
    ) -> dict[str, Any]:
        candidate_labels = _labels_to_score(candidate_labels, label_bank)
        labels = self.prepare_labels(
            candidate_labels,
            hypothesis_template,
            multi_label,
            multi_label_method,
            negative_template,
            label_descriptions,
            label_bank,
        )
        views = model_inputs["pixel_values"]  # list of (V_i, T, 3, S, S)
        counts = [v.shape[0] for v in views]
        probs = self.score_clips(torch.cat(views), labels)
        scores = [chunk.mean(dim=0) for chunk in probs.split(counts)]
        # the sigmoid head's fitted decision thresholds (hf-xclip calibrate) apply when no threshold is given
        cuts = decision_thresholds(self.model, candidate_labels) if labels.method == "sigmoid" else None
        return {"scores": scores, "candidate_labels": candidate_labels, "decision_thresholds": cuts}

    def postprocess(
        self,
        model_outputs: dict[str, Any],
        top_k: int | None = None,
        threshold: float | None = None,
        return_exceptions: bool = False,
    ):
        scores = model_outputs["scores"][0].tolist()
        cuts = model_outputs.get("decision_thresholds")
        if threshold is None and cuts is not None:
            kept = {label for score, label, cut in zip(scores, model_outputs["candidate_labels"], cuts) if score >= cut}
        else:
            kept = None
        ranked = sorted(zip(scores, model_outputs["candidate_labels"]), key=lambda pair: -pair[0])
        if threshold is not None:
            ranked = [(score, label) for score, label in ranked if score >= threshold]
        elif kept is not None:
            ranked = [(score, label) for score, label in ranked if label in kept]
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
        batch_size = check_positive_int(batch_size or 1, "batch_size")
        threads = max(1, int(num_workers or 0))
        return_exceptions = postprocess_params.get("return_exceptions", False)
        postprocess_params = {k: v for k, v in postprocess_params.items() if k != "return_exceptions"}
        # Validate the labels and the method (and fill the text cache) before any video is decoded.
        self.prepare_labels(
            forward_params.get("candidate_labels"),
            forward_params.get("hypothesis_template"),
            forward_params.get("multi_label", False),
            forward_params.get("multi_label_method", "auto"),
            forward_params.get("negative_template", DEFAULT_NEGATIVE_TEMPLATE),
            forward_params.get("label_descriptions"),
            forward_params.get("label_bank"),
        )

        def work(video):
            try:
                return self.preprocess(video, **preprocess_params)
            except Exception as err:  # reported per video below
                return _failure(video, err)

        videos = prefetch_map(work, inputs, workers=threads, ahead=batch_size + threads, name="xclip-decode")
        with contextlib.closing(videos):
            while items := list(itertools.islice(videos, batch_size)):
                yield from self._run_batch(items, forward_params, postprocess_params, return_exceptions)

    def _run_batch(self, items, forward_params, postprocess_params, return_exceptions):
        good = [item for item in items if not isinstance(item, Exception)]
        results: dict[int, Any] = {}
        if good:
            batch = {"pixel_values": [g["pixel_values"] for g in good], "video_name": [g["video_name"] for g in good]}
            outputs = self.forward(batch, **forward_params)
            for g, scores in zip(good, outputs["scores"]):
                one = {
                    "scores": [scores],
                    "candidate_labels": outputs["candidate_labels"],
                    "decision_thresholds": outputs.get("decision_thresholds"),
                }
                results[id(g)] = self.postprocess(one, **postprocess_params)
        for item in items:
            if isinstance(item, Exception):
                if not return_exceptions:
                    raise item
                yield item
            else:
                yield results[id(item)]


def _labels_to_score(candidate_labels: tuple[str, ...] | None, bank: LabelBank | None) -> tuple[str, ...]:
    """The candidate labels, or every label of the bank when none are given."""
    if candidate_labels is not None:
        return tuple(candidate_labels)
    if bank is not None:
        return tuple(bank.labels)
    return tuple(normalize_labels(None))  # raises the "needs candidate_labels" error


def _family_template(model: Any) -> tuple[str, ...]:
    """The default template of an image-text / video-text family (`ModelFamily.default_template`)."""
    from .modeling_video_text import FAMILIES, model_family

    name = model_family(model)
    return tuple(family.default_template for family in FAMILIES if family.name == name) or ("{}",)


def _failure(video: Any, err: Exception) -> Exception:
    if isinstance(err, ValueError):
        return err
    return VideoClassificationError(video_name(video), f"{type(err).__name__}: {err}")


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
    # XClipAutoModel.from_pretrained is loading.load_model: torch checkpoints and ONNX exports (hf-xclip export)
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=ZeroShotVideoClassificationPipeline, pt_model=XClipAutoModel, type="multimodal"
    )


__all__ = [
    "TASK",
    "PreparedLabels",
    "VideoClassificationError",
    "ZeroShotVideoClassificationPipeline",
    "register_pipeline",
]

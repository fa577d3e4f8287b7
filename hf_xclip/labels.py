"""The label side of X-CLIP, in one place: label texts -> label embeddings.

Everything that scores videos against labels (the zero-shot pipeline, `evaluate`, `finetune`, and the timeline and
search built on them) turns labels into embeddings here, the way open_clip keeps its zero-shot classifier apart from
the model:

* [`normalize_labels`] / [`normalize_templates`]: the one validation of labels and templates (a template holds the
  label placeholder ``{}`` exactly once); [`read_label_file`] reads label lists (lines, or a CSV ``name`` column).
* [`model_template`] / [`resolve_templates`]: the model's own text template (its processor's
  ``hypothesis_template``: ``"{}"`` for X-CLIP, ``"a photo of a {}."`` for ViFi-CLIP), used when the caller gives
  none.
* [`tokenize_texts`]: texts cleaned as the original tokenizer does ([`clean_text`]), tokenized, truncated to the
  model's context length.
* [`read_label_descriptions`] / [`normalize_descriptions`]: per-label descriptions (label -> sentences, e.g. written
  by a language model with `hf-xclip labels describe`).
* [`LabelEncoder`]: one model + tokenizer -> projected text embeddings (the original's ``encode_text``, before the
  video-specific prompts), encoded once per distinct text (an LRU [`TextEmbeddingCache`]) in groups of similar
  length; prompt ensembling over several templates and descriptions ([`ensemble_text_embeddings`]); class-specific
  learned contexts (CoOp) encoded in class order; a language-model label prompter attached to the model
  (`hf_xclip.llm_prompter`, found by [`find_label_prompter`]) gives every text of a label its soft tokens; label
  banks used in place of encoding ([`LabelEncoder.label_embeddings`] with `bank=`).
* [`LabelBank`]: label embeddings saved to one safetensors file with their label texts, templates, descriptions and
  the text-side fingerprint of the model that made them ([`model_fingerprint`]), so a set of labels is encoded once
  and reused across processes; a bank refuses to score with another model or adapter.

Prompt ensembling (several templates): per label, the templates' text embeddings are L2-normalised and averaged
(CLIP's ensembling); the mean direction is rescaled to the templates' mean norm before the video-specific prompts
are added, because X-CLIP adds them to the unnormalised text embedding. With one template this is exactly the plain
text embedding.

Descriptions (CuPL, Pratt et al. 2023; Menon & Vondrick 2023): a label's description sentences are encoded as they
are and join its template texts in the same ensemble, each text with the same weight: the label embedding is the
normalised mean of the normalised embeddings of `templates x label` and of the label's sentences, at their mean norm.
A label without descriptions keeps its plain (template-ensembled) embedding.

With a language-model label prompter, the texts of a label are keyed by (label, text): the prompter's soft tokens for
the label are inserted after the start token of each of them (descriptions included), the language model runs once
per label, the text encoder once per text.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .fingerprint import LABEL_PROMPTER_MODULE, model_fingerprint
from .modeling_prompts import XClipPromptContext, insert_after_start
from .processing_xclip import DEFAULT_HYPOTHESIS_TEMPLATE, clean_text, validate_template
from .utils import atomic_path, unwrap_model

DEFAULT_NEGATIVE_TEMPLATE = "not {}"
LABEL_BANK_FORMAT = "hf_xclip-label-bank"
LABEL_BANK_VERSION = 1


# ----------------------------------------------------------------------------------------------------------------
# Validation and label files


def normalize_labels(candidate_labels: Any, name: str = "candidate_labels") -> list[str]:
    """Validate labels: a non-empty list of distinct, non-empty strings (or one comma-separated string).

    Raises:
        ValueError: naming the offending label (empty, not a string, duplicated) or saying the list is empty.
    """
    if candidate_labels is None:
        raise ValueError(f"zero-shot video classification needs `{name}` (a list of label strings).")
    if isinstance(candidate_labels, str):
        candidate_labels = [label.strip() for label in candidate_labels.split(",")]
    elif isinstance(candidate_labels, (bytes, dict)) or not isinstance(candidate_labels, Iterable):
        raise ValueError(
            f"`{name}` must be a list of strings, got {type(candidate_labels).__name__}: {candidate_labels!r}"
        )
    labels = list(candidate_labels)
    if not labels:
        raise ValueError(f"`{name}` is empty: give at least one label.")
    seen: dict[str, int] = {}
    for index, label in enumerate(labels):
        if not isinstance(label, str):
            raise ValueError(f"candidate label {index} is not a string: {label!r} ({type(label).__name__}).")
        if not label.strip():
            raise ValueError(f"empty label: candidate label {index} is empty ({label!r}) in `{name}`.")
        if label in seen:
            raise ValueError(
                f"duplicate candidate label {label!r} in `{name}` (positions {seen[label]} and {index}): remove the "
                "duplicate label."
            )
        seen[label] = index
    return labels


def normalize_templates(templates: Any, name: str = "hypothesis_template") -> tuple[str, ...]:
    """Validate one template or a list of templates (each by [`validate_template`]; no duplicates)."""
    if isinstance(templates, str):
        templates = [templates]
    elif not isinstance(templates, Sequence) or not templates:
        raise ValueError(
            f"`{name}` must be a string with '{{}}' or a non-empty list of such strings, got {templates!r}."
        )
    checked = tuple(validate_template(template, name) for template in templates)
    if len(set(checked)) != len(checked):
        raise ValueError(f"`{name}` has duplicate templates: {list(checked)!r}.")
    return checked


def model_template(processor: Any = None, source: str | os.PathLike | None = None) -> str:
    """The text template the model was trained with: `processor.hypothesis_template` (an [`XClipProcessor`]), else
    the ``hypothesis_template`` recorded in the ``processor_config.json`` of `source` (the model's directory or Hub
    id), else ``"{}"`` (X-CLIP's bare class names). ViFi-CLIP models say ``"a photo of a {}."``."""
    template = getattr(processor, "hypothesis_template", None)
    if template is None and source is not None:
        from transformers.utils import cached_file

        path = cached_file(
            os.fspath(source),
            "processor_config.json",
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        if path is not None:
            template = json.loads(Path(path).read_text(encoding="utf-8")).get("hypothesis_template")
    return DEFAULT_HYPOTHESIS_TEMPLATE if template is None else validate_template(template)


def resolve_templates(
    templates: Any = None,
    processor: Any = None,
    source: str | os.PathLike | None = None,
    name: str = "hypothesis_template",
) -> tuple[str, ...]:
    """The templates to use: the caller's (validated by [`normalize_templates`]), or the model's own
    ([`model_template`]) when the caller gives none. The one place where that default is decided (pipeline,
    `hf-xclip classify` / `evaluate` / `finetune`)."""
    return normalize_templates(model_template(processor, source) if templates is None else templates, name)


def fill_templates(labels: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Texts label-major: ``[t.format(label) for label in labels for t in templates]``."""
    return [template.format(label) for label in labels for template in templates]


def read_label_file(path: str | os.PathLike) -> list[str]:
    """Labels from a file: one per line (``#`` comments and blank lines skipped), or a CSV with a ``name`` column
    (``id,name`` files such as the Kinetics / UCF / HMDB lists; without a ``name`` header, the last column).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file (and line) for an empty label, a duplicate, or a file without labels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} not found")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        numbered = _labels_from_csv(text)
    else:
        numbered = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
        numbered = [(number, label) for number, label in numbered if label and not label.startswith("#")]
    if not numbered:
        raise ValueError(f"{path}: no labels found")
    seen: dict[str, int] = {}
    for number, label in numbered:
        if not label:
            raise ValueError(f"{path}, line {number}: empty label")
        if label in seen:
            raise ValueError(f"{path}, line {number}: duplicate label {label!r} (first on line {seen[label]})")
        seen[label] = number
    return [label for _, label in numbered]


def _labels_from_csv(text: str) -> list[tuple[int, str]]:
    rows = [(number, row) for number, row in enumerate(csv.reader(text.splitlines()), start=1) if row]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0][1]]
    if "name" in header:
        column = header.index("name")
        return [(number, row[column].strip() if len(row) > column else "") for number, row in rows[1:]]
    return [(number, row[-1].strip()) for number, row in rows]


Descriptions = dict[str, tuple[str, ...]]


def normalize_descriptions(descriptions: Any, name: str = "label_descriptions") -> Descriptions:
    """Validate per-label descriptions: a mapping label -> list of non-empty sentences (one string counts as a list
    of one), or a path to such a JSON file (see [`read_label_descriptions`]). Returns ``{label: (sentence, ...)}``.

    Raises:
        ValueError: naming the label (and sentence) that is not a string, empty, or repeated.
    """
    if descriptions is None:
        return {}
    if isinstance(descriptions, (str, os.PathLike)):
        return {label: tuple(sentences) for label, sentences in read_label_descriptions(descriptions).items()}
    if not isinstance(descriptions, dict):
        raise ValueError(f"`{name}` must map labels to lists of sentences, got {type(descriptions).__name__}.")
    checked: Descriptions = {}
    for label, sentences in descriptions.items():
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"`{name}`: label {label!r} is not a non-empty string.")
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, (list, tuple)):
            raise ValueError(
                f"`{name}`: descriptions of label {label!r} must be a list of sentences, got {type(sentences).__name__}."
            )
        for index, sentence in enumerate(sentences):
            if not isinstance(sentence, str) or not sentence.strip():
                raise ValueError(
                    f"`{name}`: description {index} of label {label!r} is empty or not a string: {sentence!r}."
                )
        if len(set(sentences)) != len(sentences):
            raise ValueError(f"`{name}`: label {label!r} has the same description twice.")
        checked[label] = tuple(sentences)
    return checked


def read_label_descriptions(path: str | os.PathLike) -> dict[str, list[str]]:
    """Per-label descriptions from a JSON file: an object mapping each label to a list of sentences.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file (and the label) when it is not JSON, not an object, or a value is not a list of
            non-empty sentences.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label descriptions file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a JSON object mapping labels to lists of sentences, got {type(data).__name__}."
        )
    try:
        checked = normalize_descriptions(data, name=str(path))
    except ValueError as err:
        raise ValueError(str(err).replace(f"`{path}`", str(path))) from None
    return {label: list(sentences) for label, sentences in checked.items()}


def descriptions_for(labels: Sequence[str], descriptions: Any) -> Descriptions:
    """The descriptions of `labels` (in label order) among `descriptions` (a mapping or a JSON path); labels without
    any are left out, labels the mapping has but `labels` does not are ignored."""
    descriptions = normalize_descriptions(descriptions)
    return {label: descriptions[label] for label in labels if descriptions.get(label)}


# ----------------------------------------------------------------------------------------------------------------
# Tokenizing and ensembling


def tokenize_texts(tokenizer: Any, texts: Sequence[str], max_length: int = 77, clean: bool = True, **kwargs: Any):
    """Tokenize texts as the original does: cleaned ([`clean_text`]; ``clean=False`` for models whose tokenizer
    does its own normalisation, e.g. SigLIP), truncated to `max_length`; extra keyword arguments go to the tokenizer
    (e.g. ``padding=True, return_tensors="pt"``)."""
    max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    texts = [clean_text(text) for text in texts] if clean else list(texts)
    return tokenizer(texts, truncation=True, max_length=max_length, **kwargs)


def text_capabilities(model: nn.Module) -> tuple[bool, int | None]:
    """``(clean_texts, pad_texts_to)`` of a model (video-text interface's capabilities; X-CLIP's when it says
    nothing)."""
    base = unwrap_model(model)
    capabilities = getattr(base, "capabilities", None)
    if capabilities is None:
        return True, None
    return capabilities.clean_texts, capabilities.pad_texts_to


def tokenize_labels(tokenizer: Any, labels: Sequence[str], template: str = "{}", max_length: int = 77):
    """`template.format(label)` of every label, tokenized by [`tokenize_texts`], padded to the longest, as tensors
    (what a trainable text side is fed at every step)."""
    texts = fill_templates(labels, [validate_template(template, "template")])
    return tokenize_texts(tokenizer, texts, max_length, padding=True, return_tensors="pt")


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


def length_chunks(lengths: Sequence[int], max_size: int, min_size: int = 32) -> list[list[int]]:
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


# ----------------------------------------------------------------------------------------------------------------
# Encoding


@dataclass(frozen=True)
class LabelSet:
    """What a set of label embeddings was made from."""

    labels: tuple[str, ...]
    templates: tuple[str, ...] = (DEFAULT_HYPOTHESIS_TEMPLATE,)
    negative_template: str | None = None
    descriptions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    bank: tuple[int, str] | None = None


def class_specific_rows(model: nn.Module) -> int | None:
    """Rows of an active class-specific CoOp context (one learned context per class, used in class order), if any.

    Texts of such a model depend on their position, not only on their text: they are encoded in one batch, in
    class order, and never cached.
    """
    rows = [
        module.context.shape[0]
        for module in model.modules()
        if isinstance(module, XClipPromptContext) and module.context is not None and module.context.shape[0] > 1
    ]
    return rows[0] if rows else None


def find_label_prompter(model: nn.Module) -> nn.Module | None:
    """The language-model label prompter attached to `model` (its `label_prompter` module, see
    `hf_xclip.llm_prompter.attach_label_prompter`; through a peft wrapper too), or None."""
    base = unwrap_model(model)
    modules = getattr(base, "_modules", None)
    return modules.get(LABEL_PROMPTER_MODULE) if modules is not None else None


Pair = tuple[str, str]  # (label, text): the text the text encoder reads, and the label whose soft tokens it gets


class LabelEncoder:
    """Turns labels into X-CLIP label embeddings for one model and tokenizer.

    The embeddings are the projected text embeddings before the video-specific prompts (`get_text_features(...)
    .pooler_output`, the original's ``encode_text``); pass them as ``text_embeds`` to `XClipModel.forward` or to
    `get_logits`. Each distinct text is encoded once (LRU cache of `cache_size` texts, emptied when the model,
    tokenizer, device, dtype or label prompter changes), in groups of similar token length, without gradients
    ([`encode_labels`]); [`label_features`] is the same computation with gradients and no cache (training).

    With a language-model label prompter attached to the model ([`find_label_prompter`]), its soft tokens are
    inserted into every text of a label; the language model runs once per label (its soft tokens are cached too).

    Args:
        model: an `XClipModel` (or a peft model around one; its adapters, learned prompts and label prompter are
            applied).
        tokenizer: the model's CLIP tokenizer.
        batch_size: texts per forward pass.
        cache_size: texts kept in the cache.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, batch_size: int = 256, cache_size: int = 50_000) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.cache = TextEmbeddingCache(cache_size)
        self.soft_token_cache = TextEmbeddingCache(cache_size)
        self._last: tuple[tuple, LabelSet, torch.Tensor, torch.Tensor | None] | None = None
        self._checked_banks: set[tuple[tuple, str]] = set()
        self._lock = threading.RLock()

    @property
    def max_length(self) -> int:
        return self._config().text_config.max_position_embeddings

    def _config(self):
        return self.model.config

    @property
    def prompter(self) -> nn.Module | None:
        """The label prompter attached to the model, if any."""
        return find_label_prompter(self.model)

    def _owner(self) -> tuple:
        model = self.model
        prompter = self.prompter
        return (id(model), id(self.tokenizer), str(model.device), str(model.dtype), id(prompter) if prompter else None)

    def clear(self) -> None:
        """Forget every encoded text (needed after changing the text tower's or the prompter's weights in place)."""
        with self._lock:
            self.cache.clear()
            self.soft_token_cache.clear()
            self._checked_banks.clear()
            self._last = None

    # -- texts ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Projected text embeddings (N, D) of `texts` before the video-specific prompts, through the cache (with a
        label prompter, each text is its own label)."""
        return self._encode_pairs([(text, text) for text in texts], cached=True)

    def _key(self, pair: Pair, prompted: bool) -> str:
        return f"{pair[0]}\x00{pair[1]}" if prompted else pair[1]

    def _encode_pairs(self, pairs: list[Pair], cached: bool) -> torch.Tensor:
        if self.tokenizer is None:
            raise ValueError("No tokenizer to encode labels with: pass `tokenizer=` or a processor with one.")
        if not cached or class_specific_rows(self.model) is not None:
            return self._encode(pairs, chunked=class_specific_rows(self.model) is None, cached=cached)
        prompted = self.prompter is not None
        keys = [self._key(pair, prompted) for pair in pairs]
        with self._lock:
            self.cache.bind(self._owner())
            missing = set(self.cache.lookup(keys))
            if missing:
                todo = [pair for key, pair in dict(zip(keys, pairs)).items() if key in missing]
                self.cache.add(
                    [self._key(pair, prompted) for pair in todo], self._encode(todo, chunked=True, cached=True)
                )
            return self.cache.stack(keys)

    def _soft_tokens(self, prompter: nn.Module, labels: list[str], cached: bool) -> dict[str, torch.Tensor]:
        """Soft tokens (n, width) per label, through the soft-token cache unless `cached` is False."""
        if not cached:
            return dict(zip(labels, prompter.soft_tokens(labels)))
        with self._lock:
            self.soft_token_cache.bind(self._owner())
            missing = self.soft_token_cache.lookup(labels)
            if missing:
                self.soft_token_cache.add(missing, prompter.soft_tokens(missing))
            return {label: self.soft_token_cache.stack([label])[0] for label in labels}

    def _encode(self, pairs: list[Pair], chunked: bool, cached: bool) -> torch.Tensor:
        """Text embeddings (N, D) of `pairs`; gradients follow the caller's grad mode."""
        clean, pad_to = text_capabilities(self.model)
        tokenized = tokenize_texts(self.tokenizer, [text for _, text in pairs], self.max_length, clean)["input_ids"]
        lengths = [len(ids) for ids in tokenized]
        chunks = length_chunks(lengths, self.batch_size) if chunked else [list(range(len(pairs)))]
        prompter = self.prompter
        soft = (
            self._soft_tokens(prompter, list(dict.fromkeys(label for label, _ in pairs)), cached) if prompter else None
        )
        text_config = self._config().text_config
        out: list[torch.Tensor | None] = [None] * len(pairs)
        device = self.model.device
        for chunk in chunks:
            width = pad_to or max(lengths[i] for i in chunk)  # SigLIP pools the last position: fixed length
            batch = self.tokenizer.pad(
                {"input_ids": [tokenized[i] for i in chunk]},
                padding="max_length",
                max_length=width,
                return_tensors="pt",
            )
            input_ids, attention_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            inputs: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
            if soft is not None:
                embeds = self.model.get_input_embeddings()(input_ids)
                context = torch.stack([soft[pairs[i][0]] for i in chunk]).to(device=device, dtype=embeds.dtype)
                ids, embeds, mask = insert_after_start(
                    context,
                    input_ids,
                    embeds,
                    attention_mask,
                    text_config.eos_token_id,
                    text_config.max_position_embeddings,
                )
                inputs = {"input_ids": ids, "inputs_embeds": embeds, "attention_mask": mask}
            # The text tower is causal and pools at the EOT token, so padding after it changes nothing.
            # return_dict=True: whatever the model's config.return_dict says
            embeds = self.model.get_text_features(**inputs, return_dict=True).pooler_output
            for i, embedding in zip(chunk, embeds):
                out[i] = embedding
        return torch.stack(out)

    # -- labels -----------------------------------------------------------------------------------------------

    def _template_text(self, label: str, template: str) -> str:
        prompter = self.prompter
        if prompter is None or prompter.include_class_tokens:
            return template.format(label)
        return clean_text(template.format(""))  # the soft tokens stand in for the class name

    def _label_embeddings(self, labels: Any, templates: Any, descriptions: Any, cached: bool) -> torch.Tensor:
        labels = normalize_labels(labels)
        templates = normalize_templates(templates)
        described = descriptions_for(labels, descriptions)
        if class_specific_rows(self.model) is not None:
            if described:
                raise ValueError(
                    "label descriptions cannot be used with a class-specific CoOp context (one learned context per "
                    "class position); use a unified context."
                )
            # One batch per template, labels in class order (a class-specific context is picked by position).
            columns = [
                self._encode_pairs([(label, self._template_text(label, t)) for label in labels], cached)
                for t in templates
            ]
            embeds = torch.stack(columns, dim=1)
            return ensemble_text_embeddings(embeds.float()).to(embeds.dtype)
        pairs = [(label, self._template_text(label, t)) for label in labels for t in templates]
        if not described:
            embeds = self._encode_pairs(pairs, cached).view(len(labels), len(templates), -1)
            return ensemble_text_embeddings(embeds.float()).to(embeds.dtype)
        counts = [len(templates) + len(described.get(label, ())) for label in labels]
        pairs = [
            pair
            for index, label in enumerate(labels)
            for pair in [
                *pairs[index * len(templates) : (index + 1) * len(templates)],
                *((label, sentence) for sentence in described.get(label, ())),
            ]
        ]
        embeds = self._encode_pairs(pairs, cached)
        rows = [ensemble_text_embeddings(group[None].float())[0] for group in embeds.split(counts)]
        return torch.stack(rows).to(embeds.dtype)

    def encode_labels(
        self,
        labels: Sequence[str],
        templates: str | Sequence[str] = DEFAULT_HYPOTHESIS_TEMPLATE,
        descriptions: Any = None,
    ) -> torch.Tensor:
        """Label embeddings (K, D): each label in every template (and its descriptions, a mapping label -> sentences
        or a JSON path), ensembled; no gradients, through the cache."""
        with torch.no_grad():
            return self._label_embeddings(labels, templates, descriptions, cached=True)

    def label_features(
        self,
        labels: Sequence[str],
        templates: str | Sequence[str] = DEFAULT_HYPOTHESIS_TEMPLATE,
        descriptions: Any = None,
    ) -> torch.Tensor:
        """[`encode_labels`] with gradients (to learned prompts, text adapters and the label prompter) and no cache:
        what training computes at every step."""
        return self._label_embeddings(labels, templates, descriptions, cached=False)

    def label_embeddings(
        self,
        labels: Sequence[str],
        templates: str | Sequence[str] | None = None,
        negative_template: str | None = None,
        descriptions: Any = None,
        bank: LabelBank | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ensembled label embeddings (K, D) and, with a `negative_template` (e.g. ``"not {}"``), those of the negated
        labels (K, D); the last result is kept, so asking again for the same label set costs nothing.

        Args:
            labels: label texts.
            templates: hypothesis templates (default ``"{}"``; with a bank, the bank's).
            negative_template: see above.
            descriptions: per-label descriptions (mapping label -> sentences, or a JSON path).
            bank: a [`LabelBank`] made by this model: its rows are used for the labels it holds (no encoding); the
                other labels are encoded with the bank's templates.

        Raises:
            LabelBankMismatchError: the bank was made by another model or adapter.
            ValueError: `templates` or `descriptions` contradict what the bank was encoded with.
        """
        labels = tuple(normalize_labels(labels))
        if templates is None:
            templates = bank.templates if bank is not None else DEFAULT_HYPOTHESIS_TEMPLATE
        templates = normalize_templates(templates)
        if negative_template is not None:
            validate_template(negative_template, "negative_template")
        described = descriptions_for(labels, descriptions)
        label_set = LabelSet(
            labels,
            templates,
            negative_template,
            tuple(described.items()),
            (id(bank), bank.fingerprint, len(bank)) if bank is not None else None,
        )
        with self._lock:
            owner = self._owner()
            last = self._last
            if last is not None and last[0] == owner and last[1] == label_set:
                return last[2], last[3]
            if bank is not None:
                positives = self.embeddings_with_bank(bank, labels, templates, described)
            else:
                positives = self.encode_labels(labels, templates, described)
            negatives = None
            if negative_template is not None:
                negated = [negative_template.format(label) for label in labels]
                negatives = self.encode_labels(negated, templates)
            self._last = (owner, label_set, positives, negatives)
            return positives, negatives

    def embeddings_with_bank(
        self,
        bank: LabelBank,
        labels: Sequence[str],
        templates: str | Sequence[str] | None = None,
        descriptions: Any = None,
    ) -> torch.Tensor:
        """(K, D) embeddings of `labels`: rows of `bank` for the labels it holds, the others encoded here with the
        bank's templates (and `descriptions`), on the model's device and dtype.

        Raises:
            LabelBankMismatchError: the bank was made by another model or adapter.
            ValueError: `templates` differ from the bank's, or `descriptions` of a banked label differ from those it
                was encoded with.
        """
        labels = normalize_labels(labels)
        self.check_bank(bank)
        if templates is not None and normalize_templates(templates) != bank.templates:
            raise ValueError(
                f"the label bank was encoded with templates {list(bank.templates)}, not {list(normalize_templates(templates))}: "
                "leave the templates out to use the bank's, or encode a new bank."
            )
        described = descriptions_for(labels, descriptions)
        held = set(bank.labels)
        for label, sentences in described.items():
            if label in held and tuple(bank.descriptions.get(label, ())) != sentences:
                raise ValueError(
                    f"the label bank holds {label!r} encoded with other descriptions than the ones given: leave the "
                    "descriptions out to use the bank's, or encode a new bank."
                )
        missing = [label for label in labels if label not in held]
        rows = dict(zip(missing, self.encode_labels(missing, bank.templates, described))) if missing else {}
        device, dtype = self.model.device, self.model.dtype
        if rows:
            dtype = next(iter(rows.values())).dtype
        banked = [label for label in labels if label in held]
        if banked:
            rows.update(zip(banked, bank.embeddings_for(banked).to(device=device, dtype=dtype)))
        return torch.stack([rows[label] for label in labels])

    def fingerprint(self) -> str:
        """Text-side fingerprint of the model, its adapters and label prompter (see [`model_fingerprint`])."""
        return model_fingerprint(self.model, "text")

    def check_bank(self, bank: LabelBank) -> None:
        """Raise [`LabelBankMismatchError`] unless `bank` was made by this model (checked once per model and bank)."""
        key = (self._owner(), bank.fingerprint)
        if key in self._checked_banks:
            return
        made_by, family = bank.metadata.get("model_family"), _family_of(self.model)
        if made_by is not None and made_by != family:
            raise LabelBankMismatchError(
                f"the label bank was made by a {made_by} model; this is a {family} model: re-encode the labels with "
                "`hf-xclip labels encode` for this model."
            )
        bank.check_model(self.fingerprint())
        self._checked_banks.add(key)

    def bank(
        self,
        labels: Sequence[str],
        templates: str | Sequence[str] = DEFAULT_HYPOTHESIS_TEMPLATE,
        descriptions: Any = None,
        **metadata: Any,
    ) -> LabelBank:
        """A [`LabelBank`] of `labels` encoded by this model (with their `descriptions`, if any)."""
        templates = normalize_templates(templates)
        described = descriptions_for(labels, descriptions)
        embeddings = self.encode_labels(labels, templates, described)
        return LabelBank(
            labels=list(labels),
            embeddings=embeddings.detach().float().cpu(),
            templates=templates,
            fingerprint=self.fingerprint(),
            metadata={"model_family": _family_of(self.model), **metadata},
            descriptions=described,
        )


def _family_of(model: nn.Module) -> str:
    """The model family (`hf_xclip.modeling_video_text`) a bank records: "xclip" for models that say nothing."""
    base = unwrap_model(model)
    capabilities = getattr(base, "capabilities", None)
    return capabilities.family if capabilities is not None else "xclip"


# ----------------------------------------------------------------------------------------------------------------
# Label banks


class LabelBankMismatchError(ValueError):
    """A label bank was made by another model or adapter than the one it is used with."""


@dataclass
class LabelBank:
    """Label embeddings encoded once, saved, and reused: one safetensors file holding the (K, D) embeddings, with the
    label texts, templates, descriptions and the text-side fingerprint of the model that made them in its metadata.

    Rows are never re-encoded: [`append`] encodes only new labels and leaves existing rows bit-identical.

    Attributes:
        labels: label texts, row order.
        embeddings: (K, D) float32 projected label embeddings (before the video-specific prompts).
        templates: the templates each label was ensembled over.
        fingerprint: `model_fingerprint(model, "text")` of the model (with its adapter and label prompter) that
            encoded them.
        metadata: free-form JSON-able information (model name, adapter, ...).
        descriptions: the descriptions each described label was ensembled with (labels without any are absent).
    """

    labels: list[str]
    embeddings: torch.Tensor
    templates: tuple[str, ...] = (DEFAULT_HYPOTHESIS_TEMPLATE,)
    fingerprint: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = normalize_labels(self.labels, "labels")
        self.templates = normalize_templates(self.templates)
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.labels):
            raise ValueError(
                f"a label bank needs (num_labels, dim) embeddings: {len(self.labels)} labels, embeddings of shape "
                f"{tuple(self.embeddings.shape)}."
            )
        self.descriptions = normalize_descriptions(self.descriptions, "descriptions")
        unknown = sorted(set(self.descriptions) - set(self.labels))
        if unknown:
            raise ValueError(f"the label bank has descriptions of labels it does not hold: {unknown[:10]}.")

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in set(self.labels)

    def check_model(self, model_or_fingerprint: nn.Module | str) -> None:
        """Raise [`LabelBankMismatchError`] unless the bank was made by this model (and adapter)."""
        fingerprint = (
            model_or_fingerprint
            if isinstance(model_or_fingerprint, str)
            else model_fingerprint(model_or_fingerprint, "text")
        )
        if fingerprint != self.fingerprint:
            made_by = self.metadata.get("model") or "another model"
            adapter = self.metadata.get("adapter")
            raise LabelBankMismatchError(
                f"this label bank was encoded by {made_by}{f' + adapter {adapter}' if adapter else ''} "
                f"(text fingerprint {self.fingerprint[:12]}), not by the model it is used with (fingerprint "
                f"{fingerprint[:12]}): re-encode the labels with `hf-xclip labels encode` for this model."
            )

    def embeddings_for(self, labels: Sequence[str]) -> torch.Tensor:
        """(K, D) rows of `labels` (any subset, any order).

        Raises:
            KeyError: naming the labels the bank does not hold.
        """
        index = {label: row for row, label in enumerate(self.labels)}
        missing = [label for label in labels if label not in index]
        if missing:
            raise KeyError(f"labels not in the label bank: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        return self.embeddings[[index[label] for label in labels]]

    def append(self, encoder: LabelEncoder, labels: Sequence[str], descriptions: Any = None) -> list[str]:
        """Encode the labels the bank does not hold yet with `encoder` (in the bank's templates, with their
        `descriptions`) and add them as new rows; existing rows are unchanged. Returns the labels added.

        Raises:
            LabelBankMismatchError: `encoder`'s model is not the one that made the bank.
            ValueError: `descriptions` of a label the bank holds differ from those it was encoded with.
        """
        self.check_model(encoder.fingerprint())
        held = set(self.labels)
        new = [label for label in dict.fromkeys(normalize_labels(labels, "labels")) if label not in held]
        described = descriptions_for(list(dict.fromkeys(labels)), descriptions)
        changed = [label for label in described if label in held and self.descriptions.get(label) != described[label]]
        if changed:
            raise ValueError(
                f"the label bank holds {changed[:5]} encoded with other descriptions; rows are never re-encoded: "
                "write a new bank to change them."
            )
        if new:
            new_descriptions = {label: described[label] for label in new if label in described}
            rows = encoder.encode_labels(new, self.templates, new_descriptions).detach().float().cpu()
            self.embeddings = torch.cat([self.embeddings, rows])
            self.labels = [*self.labels, *new]
            self.descriptions = {**self.descriptions, **new_descriptions}
        return new

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to `path` (one ``.safetensors`` file), atomically: a reader never sees half a file."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "format": LABEL_BANK_FORMAT,
            "version": str(LABEL_BANK_VERSION),
            "labels": json.dumps(self.labels, ensure_ascii=False),
            "templates": json.dumps(list(self.templates), ensure_ascii=False),
            "fingerprint": self.fingerprint,
            "metadata": json.dumps(self.metadata, ensure_ascii=False, default=str),
        }
        if self.descriptions:
            header["descriptions"] = json.dumps({k: list(v) for k, v in self.descriptions.items()}, ensure_ascii=False)
        with atomic_path(path) as partial:
            save_file(
                {"embeddings": self.embeddings.detach().float().contiguous().cpu()}, str(partial), metadata=header
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelBank:
        """Read a bank written by [`save`].

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a label bank (naming the file and what is missing).
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"label bank {path} not found")
        try:
            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
                if header.get("format") != LABEL_BANK_FORMAT:
                    raise ValueError(f"{path} is not an hf_xclip label bank (no '{LABEL_BANK_FORMAT}' header).")
                embeddings = handle.get_tensor("embeddings")
        except SafetensorError as err:
            raise ValueError(f"{path} is not a readable safetensors label bank: {err}") from None
        try:
            return cls(
                labels=json.loads(header["labels"]),
                embeddings=embeddings,
                templates=tuple(json.loads(header["templates"])),
                fingerprint=header["fingerprint"],
                metadata=json.loads(header.get("metadata") or "{}"),
                descriptions=json.loads(header.get("descriptions") or "{}"),
            )
        except (KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: malformed label bank header ({err}).") from None


__all__ = [
    "DEFAULT_HYPOTHESIS_TEMPLATE",
    "DEFAULT_NEGATIVE_TEMPLATE",
    "LabelBank",
    "LabelBankMismatchError",
    "LabelEncoder",
    "LabelSet",
    "TextEmbeddingCache",
    "class_specific_rows",
    "descriptions_for",
    "ensemble_text_embeddings",
    "fill_templates",
    "find_label_prompter",
    "length_chunks",
    "normalize_descriptions",
    "normalize_labels",
    "normalize_templates",
    "read_label_descriptions",
    "read_label_file",
    "tokenize_labels",
    "tokenize_texts",
    "model_template",
    "resolve_templates",
    "validate_template",
]

"""The label encoder (part of the label core, `hf_xclip.labels`): one model + tokenizer -> projected text embeddings
(the original's ``encode_text``, before the video-specific prompts).

[`LabelEncoder`] encodes each distinct text once (an LRU [`TextEmbeddingCache`]) in groups of similar length
([`length_chunks`]); prompt ensembling over several templates and descriptions ([`ensemble_text_embeddings`]);
class-specific learned contexts (CoOp) encoded in class order ([`class_specific_rows`]); a language-model label
prompter attached to the model ([`find_label_prompter`]) gives every text of a label its soft tokens; label banks
(`hf_xclip.label_bank`) used in place of encoding.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .fingerprint import LABEL_PROMPTER_MODULE, model_fingerprint
from .label_bank import LabelBank, LabelBankMismatchError
from .label_texts import descriptions_for, normalize_labels, normalize_templates, tokenize_texts
from .modeling_prompts import XClipPromptContext, insert_after_start
from .processing_xclip import DEFAULT_HYPOTHESIS_TEMPLATE, clean_text, validate_template
from .utils import unwrap_model

# ----------------------------------------------------------------------------------------------------------------
# Text embeddings


def text_capabilities(model: nn.Module) -> tuple[bool, int | None]:
    """``(clean_texts, pad_texts_to)`` of a model (video-text interface's capabilities; X-CLIP's when it says
    nothing)."""
    capabilities = _capabilities(model)
    if capabilities is None:
        return True, None
    return capabilities.clean_texts, capabilities.pad_texts_to


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
    bank: tuple[int, str, int] | None = None


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
    capabilities = _capabilities(model)
    return capabilities.family if capabilities is not None else "xclip"


def _capabilities(model: nn.Module) -> Any:
    """The video-text interface's capabilities of a model (through a peft wrapper), or None (X-CLIP's own class says
    nothing)."""
    return getattr(unwrap_model(model), "capabilities", None)


__all__ = [
    "LabelEncoder",
    "LabelSet",
    "TextEmbeddingCache",
    "class_specific_rows",
    "ensemble_text_embeddings",
    "find_label_prompter",
    "length_chunks",
    "text_capabilities",
]

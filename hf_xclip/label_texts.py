"""Label texts, before any model: the one validation of labels and templates, the model's own template, label files,
per-label descriptions and the tokenization of texts (part of the label core, `hf_xclip.labels`).

* [`normalize_labels`] / [`normalize_templates`]: labels are a non-empty list of distinct, non-empty strings; a
  template holds the label placeholder ``{}`` exactly once ([`validate_template`]).
* [`model_template`] / [`resolve_templates`]: the model's own text template (its processor's
  ``hypothesis_template``), used when the caller gives none.
* [`read_label_file`]: label lists (lines, or a CSV ``name`` column).
* [`read_label_descriptions`] / [`normalize_descriptions`] / [`descriptions_for`]: per-label descriptions (label ->
  sentences).
* [`tokenize_texts`] / [`tokenize_labels`]: texts cleaned as the original tokenizer does ([`clean_text`]), tokenized,
  truncated to the model's context length.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .processing_xclip import DEFAULT_HYPOTHESIS_TEMPLATE, clean_text, validate_template
from .utils import read_json_file

DEFAULT_NEGATIVE_TEMPLATE = "not {}"


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
    data = read_json_file(
        path,
        missing=f"label descriptions file {path} not found",
        invalid=lambda err: f"{path}: not valid JSON ({err}).",
        encoding="utf-8-sig",
    )
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
# Tokenizing


def tokenize_texts(tokenizer: Any, texts: Sequence[str], max_length: int = 77, clean: bool = True, **kwargs: Any):
    """Tokenize texts as the original does: cleaned ([`clean_text`]; ``clean=False`` for models whose tokenizer
    does its own normalisation, e.g. SigLIP), truncated to `max_length`; extra keyword arguments go to the tokenizer
    (e.g. ``padding=True, return_tensors="pt"``)."""
    max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    texts = [clean_text(text) for text in texts] if clean else list(texts)
    return tokenizer(texts, truncation=True, max_length=max_length, **kwargs)


def tokenize_labels(tokenizer: Any, labels: Sequence[str], template: str = "{}", max_length: int = 77):
    """`template.format(label)` of every label, tokenized by [`tokenize_texts`], padded to the longest, as tensors
    (what a trainable text side is fed at every step)."""
    texts = fill_templates(labels, [validate_template(template, "template")])
    return tokenize_texts(tokenizer, texts, max_length, padding=True, return_tensors="pt")


__all__ = [
    "DEFAULT_HYPOTHESIS_TEMPLATE",
    "DEFAULT_NEGATIVE_TEMPLATE",
    "Descriptions",
    "descriptions_for",
    "fill_templates",
    "model_template",
    "normalize_descriptions",
    "normalize_labels",
    "normalize_templates",
    "read_label_descriptions",
    "read_label_file",
    "resolve_templates",
    "tokenize_labels",
    "tokenize_texts",
    "validate_template",
]

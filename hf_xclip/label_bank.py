"""Label banks (part of the label core, `hf_xclip.labels`): label embeddings saved to one safetensors file with their
label texts, templates, descriptions and the text-side fingerprint of the model that made them
([`model_fingerprint`]), so a set of labels is encoded once and reused across processes; a bank refuses to score
with another model or adapter ([`LabelBankMismatchError`]). [`LabelEncoder.bank`] makes one,
[`LabelEncoder.label_embeddings`] uses one in place of encoding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from .fingerprint import model_fingerprint
from .label_texts import descriptions_for, normalize_descriptions, normalize_labels, normalize_templates
from .processing_xclip import DEFAULT_HYPOTHESIS_TEMPLATE
from .utils import atomic_path

LABEL_BANK_FORMAT = "hf_xclip-label-bank"
LABEL_BANK_VERSION = 1


class LabelEncoderLike(Protocol):
    """What [`LabelBank.append`] needs of its encoder: a [`LabelEncoder`] (`hf_xclip.label_encoder`, which builds on
    this module) of the model that made the bank."""

    def fingerprint(self) -> str: ...

    def encode_labels(
        self,
        labels: Sequence[str],
        templates: str | Sequence[str] = ...,
        descriptions: Any = None,
    ) -> torch.Tensor: ...


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

    def append(self, encoder: LabelEncoderLike, labels: Sequence[str], descriptions: Any = None) -> list[str]:
        """Encode the labels the bank does not hold yet with `encoder` (a [`LabelEncoder`] of the bank's model; in
        the bank's templates, with their `descriptions`) and add them as new rows; existing rows are unchanged.
        Returns the labels added.

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


__all__ = ["LABEL_BANK_FORMAT", "LABEL_BANK_VERSION", "LabelBank", "LabelBankMismatchError", "LabelEncoderLike"]

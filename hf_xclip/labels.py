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

The label core is three flat modules, in dependency order (this module only gathers their names):
`hf_xclip.label_texts` (validation, templates, label files, descriptions, tokenizing) <- `hf_xclip.label_bank`
([`LabelBank`] and its file format) <- `hf_xclip.label_encoder` ([`LabelEncoder`], the text-embedding cache,
ensembling).
"""

from __future__ import annotations

# Names outside `__all__` are re-exported with `as` (the label core's other public names, importable from here).
from .label_bank import LABEL_BANK_FORMAT as LABEL_BANK_FORMAT
from .label_bank import LABEL_BANK_VERSION as LABEL_BANK_VERSION
from .label_bank import LabelBank, LabelBankMismatchError
from .label_encoder import (
    LabelEncoder,
    LabelSet,
    TextEmbeddingCache,
    class_specific_rows,
    ensemble_text_embeddings,
    find_label_prompter,
    length_chunks,
)
from .label_encoder import Pair as Pair
from .label_encoder import text_capabilities as text_capabilities
from .label_texts import (
    DEFAULT_HYPOTHESIS_TEMPLATE,
    DEFAULT_NEGATIVE_TEMPLATE,
    descriptions_for,
    fill_templates,
    model_template,
    normalize_descriptions,
    normalize_labels,
    normalize_templates,
    read_label_descriptions,
    read_label_file,
    resolve_templates,
    tokenize_labels,
    tokenize_texts,
    validate_template,
)
from .label_texts import Descriptions as Descriptions

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

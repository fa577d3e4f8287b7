"""A small word-level tokenizer covering the synthetic captions and the prompt templates."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .rendering import EOT_TOKEN, PROMPT_TEMPLATES, SOT_TOKEN, UNK_TOKEN, all_specs


def tokenizer_corpus(extra_texts: Iterable[str] = ()) -> list[str]:
    """Every caption in every prompt template, plus ``extra_texts``: the texts the tokenizer is trained on."""
    captions = [spec.caption for spec in all_specs()]
    return [template.format(caption) for template in PROMPT_TEMPLATES for caption in captions] + list(extra_texts)


def build_synthetic_tokenizer(
    out_dir: str | Path | None = None, *, max_length: int = 16, extra_texts: Iterable[str] = ()
):
    """A word-level tokenizer for the synthetic captions, CLIP-style special tokens, loadable by ``AutoTokenizer``.

    Text is NFKC-normalised, lower-cased, stripped of punctuation, split on whitespace and wrapped as
    ``<|startoftext|> words <|endoftext|>``. Ids: ``<|unk|>`` = 0, the words in sorted order, then
    ``<|startoftext|>`` and ``<|endoftext|>`` = the largest id, so X-CLIP's EOS pooling at ``argmax(input_ids)``
    (or at the first ``eos_token_id``) finds the end of the text. Padding uses ``<|endoftext|>`` as transformers'
    CLIP tokenizer does (the attention mask tells padding apart).

    Args:
        out_dir: if given, ``save_pretrained`` there.
        max_length: ``model_max_length`` (the text model needs at least this many positions).
        extra_texts: more texts whose words join the vocabulary.

    Returns:
        a transformers fast tokenizer.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    # Punctuation is dropped, so "A red circle, moving left!" reads like the caption.
    normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\w\s]"), " "), normalizers.Strip()]
    )
    pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Let the tokenizers trainer collect the words, then fix the id order (sorted words, EOT last).
    collector = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    collector.normalizer, collector.pre_tokenizer = normalizer, pre_tokenizer
    collector.train_from_iterator(tokenizer_corpus(extra_texts), trainers.WordLevelTrainer(special_tokens=[UNK_TOKEN]))
    words = sorted(set(collector.get_vocab()) - {UNK_TOKEN})
    vocab = {UNK_TOKEN: 0, **{word: i + 1 for i, word in enumerate(words)}}
    vocab[SOT_TOKEN], vocab[EOT_TOKEN] = len(vocab), len(vocab) + 1

    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SOT_TOKEN} $A {EOT_TOKEN}",
        pair=f"{SOT_TOKEN} $A {EOT_TOKEN} $B {EOT_TOKEN}",
        special_tokens=[(SOT_TOKEN, vocab[SOT_TOKEN]), (EOT_TOKEN, vocab[EOT_TOKEN])],
    )
    tokenizer.add_special_tokens([UNK_TOKEN, SOT_TOKEN, EOT_TOKEN])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=SOT_TOKEN,
        eos_token=EOT_TOKEN,
        pad_token=EOT_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=max_length,
    )
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


__all__ = [
    "tokenizer_corpus",
    "build_synthetic_tokenizer",
]

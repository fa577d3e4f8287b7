"""The CLIP tokenizer built from the original BPE file (hf_xclip.conversion.tokenizer)."""

from __future__ import annotations

import csv
import gzip
import json

import pytest
from conftest import REFERENCE_DIR, reference_file

from hf_xclip.conversion import ConversionError, build_clip_tokenizer, clean_text
from hf_xclip.conversion.tokenizer import (
    MAX_MERGES,
    bytes_to_unicode,
    check_tokenizer_matches,
    clip_vocab,
    read_bpe_merges,
)

LABEL_FILES = ["kinetics_400_labels.csv", "kinetics_600_labels.csv", "ucf_101_labels.csv", "hmdb_51_labels.csv"]


@pytest.fixture(scope="module")
def bpe_tokenizer():
    return build_clip_tokenizer(reference_file("clip-tokenizer", "bpe_simple_vocab_16e6.txt.gz"))


@pytest.fixture(scope="module")
def transformers_tokenizer():
    from transformers import CLIPTokenizer

    reference_file("clip-tokenizer", "vocab.json")
    return CLIPTokenizer.from_pretrained(REFERENCE_DIR / "clip-tokenizer")


def read_labels(name: str) -> list[str]:
    with open(reference_file("labels", name), newline="", encoding="utf-8") as handle:
        return [row["name"] for row in csv.DictReader(handle)]


def test_vocabulary_and_merges_equal_transformers_files(bpe_tokenizer):
    vocab = json.loads(reference_file("clip-tokenizer", "vocab.json").read_text(encoding="utf-8"))
    assert bpe_tokenizer.get_vocab() == vocab
    merges = reference_file("clip-tokenizer", "merges.txt").read_text(encoding="utf-8").split("\n")[1:]
    built = read_bpe_merges(reference_file("clip-tokenizer", "bpe_simple_vocab_16e6.txt.gz"))
    assert [" ".join(pair) for pair in built] == [line for line in merges if line]
    assert len(bpe_tokenizer) == 49408
    assert (bpe_tokenizer.bos_token_id, bpe_tokenizer.eos_token_id, bpe_tokenizer.pad_token_id) == (49406, 49407, 0)


@pytest.mark.parametrize("label_file", LABEL_FILES)
def test_ids_equal_transformers_clip_tokenizer_on_labels(bpe_tokenizer, transformers_tokenizer, label_file):
    labels = read_labels(label_file)
    assert len(labels) in (400, 600, 101, 51)
    ours = bpe_tokenizer(labels)["input_ids"]
    theirs = transformers_tokenizer(labels)["input_ids"]
    assert ours == theirs
    # the original's cleaning changes nothing on these labels but the case
    assert bpe_tokenizer([clean_text(label) for label in labels])["input_ids"] == ours


def test_padding_reproduces_clip_tokenize(bpe_tokenizer):
    batch = bpe_tokenizer(["abseiling", "playing guitar"], padding="max_length", max_length=77)
    for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
        length = sum(mask)
        assert len(ids) == 77 and ids[0] == 49406 and ids[length - 1] == 49407
        assert ids[length:] == [0] * (77 - length)  # clip.tokenize pads with zeros
        assert max(ids) == 49407 and ids.index(max(ids)) == length - 1  # argmax pooling finds the EOT


def test_saved_tokenizer_reloads_identically(bpe_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    bpe_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    labels = read_labels("hmdb_51_labels.csv")
    assert (
        reloaded(labels, padding="max_length", max_length=77)["input_ids"]
        == bpe_tokenizer(labels, padding="max_length", max_length=77)["input_ids"]
    )


def test_clean_text_matches_the_original_cleaning(bpe_tokenizer):
    assert clean_text("  Playing\t\tGuitar \n") == "playing guitar"
    assert clean_text("rock &amp;amp; roll") == "rock & roll"  # unescaped twice
    assert clean_text("ＰＬＡＹＩＮＧ") == "playing"  # ftfy folds full-width letters
    assert clean_text("donâ€™t") == "don't"  # ftfy repairs mojibake and uncurls the quote
    # transformers' tokenizer alone does not clean: the same words give other ids without clean_text
    assert bpe_tokenizer("ＰＬＡＹＩＮＧ")["input_ids"] != bpe_tokenizer("playing")["input_ids"]
    assert bpe_tokenizer(clean_text("ＰＬＡＹＩＮＧ"))["input_ids"] == bpe_tokenizer("playing")["input_ids"]


def test_short_merges_file_keeps_the_layout(tmp_path):
    lines = gzip.decompress(reference_file("clip-tokenizer", "bpe_simple_vocab_16e6.txt.gz").read_bytes())
    lines = lines.decode("utf-8").split("\n")
    path = tmp_path / "bpe_small.txt"  # plain text is accepted too
    path.write_text("\n".join(lines[:487]), encoding="utf-8")
    tokenizer = build_clip_tokenizer(path)
    assert len(tokenizer) == 1000
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (998, 999)
    check_tokenizer_matches(tokenizer, 1000)
    with pytest.raises(ConversionError, match="1000 tokens but the model's token embedding has 49408 rows"):
        check_tokenizer_matches(tokenizer, 49408)


def test_vocab_layout_without_reference():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord("a")] == "a" and table[ord(" ")] == "Ġ"
    vocab = clip_vocab([("a", "b"), ("ab", "c</w>")])
    assert vocab["ab"] == 512 and vocab["abc</w>"] == 513
    assert vocab["<|startoftext|>"] == 514 and vocab["<|endoftext|>"] == 515
    assert MAX_MERGES == 48894


def test_bad_bpe_files(tmp_path):
    garbage = tmp_path / "garbage.txt.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(ConversionError, match="CLIP BPE merges file"):
        read_bpe_merges(garbage)
    wrong = tmp_path / "words.txt"
    wrong.write_text("header\none two three\n", encoding="utf-8")
    with pytest.raises(ConversionError, match="line 2: expected a merge"):
        read_bpe_merges(wrong)
    empty = tmp_path / "empty.txt"
    empty.write_text("header only\n", encoding="utf-8")
    with pytest.raises(ConversionError, match="holds no BPE merges"):
        read_bpe_merges(empty)
    with pytest.raises(FileNotFoundError):
        read_bpe_merges(tmp_path / "absent.txt.gz")


def test_tokenizer_with_wrong_special_ids_is_refused(tmp_path):
    from transformers import CLIPTokenizer

    vocab = {"a</w>": 0, "<|startoftext|>": 1, "<|endoftext|>": 2, "b</w>": 3}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    with pytest.raises(ConversionError, match="bos_token_id is 1, expected 2"):
        check_tokenizer_matches(tokenizer, len(tokenizer))

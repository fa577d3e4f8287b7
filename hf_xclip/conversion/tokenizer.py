"""CLIP tokenizer for converted models, built from the BPE file the original code ships
(``bpe_simple_vocab_16e6.txt.gz``), plus the original's text cleaning.

The vocabulary is laid out as the original ``SimpleTokenizer`` lays it out: the 256 byte symbols (in
:func:`bytes_to_unicode` order), the same symbols with ``</w>``, one token per merge (the first 48,894 merges of
the file, i.e. ``49152 - 256 - 2``), then ``<|startoftext|>`` and ``<|endoftext|>``: 49,408 ids, SOT = 49406,
EOT = 49407. A shorter merges file gives a smaller vocabulary with the same layout (SOT = vocab - 2,
EOT = vocab - 1), which is how tiny test models are built.

Padding uses id 0 (``"!"``) so that ``padding="max_length", max_length=77`` reproduces ``clip.tokenize``'s zero
padding exactly; the model pools at the first EOT, so the pad id never changes an output.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from transformers import AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerBase

from ..processing_xclip import clean_text  # noqa: F401 (re-exported: hf_xclip.conversion.clean_text)
from .checkpoint import ConversionError

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
PAD_TOKEN = "!"  # id 0, what clip.tokenize pads with
# The original tokenizer keeps merges[1 : 49152 - 256 - 2 + 1] of the file (line 0 is a header).
MAX_MERGES = 49152 - 256 - 2
CONTEXT_LENGTH = 77


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable character table of GPT-2 / CLIP byte-level BPE (printable bytes map to themselves, the
    others to code points from 256 upwards, in byte order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def read_bpe_merges(path: str | Path, max_merges: int = MAX_MERGES) -> list[tuple[str, str]]:
    """Merges of an original CLIP BPE file (gzip or plain text; first line is a header)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BPE vocabulary file not found: {path}")
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as error:
        raise ConversionError(
            f"cannot read {path} as a CLIP BPE merges file (expected bpe_simple_vocab_16e6.txt.gz, gzip-compressed "
            f"UTF-8 text): {error}"
        ) from error
    lines = text.split("\n")[1 : max_merges + 1]
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=2):
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConversionError(
                f"{path}, line {number}: expected a merge `left right`, got {line[:60]!r}; is this the CLIP BPE file?"
            )
        merges.append((parts[0], parts[1]))
    if not merges:
        raise ConversionError(f"{path} holds no BPE merges; expected the CLIP file bpe_simple_vocab_16e6.txt.gz.")
    return merges


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Token -> id in the original order (bytes, bytes + ``</w>``, merges, SOT, EOT)."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["".join(pair) for pair in merges]
    tokens += [SOT_TOKEN, EOT_TOKEN]
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token in vocab:
            raise ConversionError(f"the BPE merges produce the token {token!r} twice (ids {vocab[token]} and {index}).")
        vocab[token] = index
    return vocab


def build_clip_tokenizer(bpe_path: str | Path, max_merges: int = MAX_MERGES) -> CLIPTokenizer:
    """A transformers `CLIPTokenizer` with the original vocabulary, built from the original BPE file."""
    merges = read_bpe_merges(bpe_path, max_merges)
    tokenizer = CLIPTokenizer(
        vocab=clip_vocab(merges),
        merges=list(merges),
        unk_token=EOT_TOKEN,
        bos_token=SOT_TOKEN,
        eos_token=EOT_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=CONTEXT_LENGTH,
    )
    return tokenizer


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer directory or Hub name (`AutoTokenizer`), or an original BPE file (``*.txt.gz`` / ``*.txt``)."""
    path = Path(name_or_path)
    if path.is_file():
        return build_clip_tokenizer(path)
    try:
        return AutoTokenizer.from_pretrained(str(name_or_path))
    except Exception as error:
        raise ConversionError(
            f"cannot load a tokenizer from {name_or_path!r} (expected a tokenizer directory, a Hub name or the CLIP "
            f"BPE file bpe_simple_vocab_16e6.txt.gz): {error}"
        ) from error


def check_tokenizer_matches(tokenizer: PreTrainedTokenizerBase, vocab_size: int, source: str = "tokenizer") -> None:
    """Raise `ConversionError` unless the tokenizer has exactly `vocab_size` tokens with SOT = vocab - 2 and
    EOT = vocab - 1 (the model's token embedding rows and the ids it pools at)."""
    size = len(tokenizer)
    if size != vocab_size:
        raise ConversionError(
            f"the {source} has {size} tokens but the model's token embedding has {vocab_size} rows; use the "
            "tokenizer the checkpoint was trained with (CLIP's bpe_simple_vocab_16e6.txt.gz gives 49408)."
        )
    expected = {"bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1}
    for name, value in expected.items():
        if getattr(tokenizer, name, None) != value:
            raise ConversionError(
                f"the {source}'s {name} is {getattr(tokenizer, name, None)}, expected {value} (CLIP puts "
                "<|startoftext|> and <|endoftext|> at the last two ids, and the model pools at <|endoftext|>)."
            )

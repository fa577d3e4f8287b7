"""`hf-xclip labels`: the label side on its own: encode labels once into a label bank, or have a language model
describe them.

```
hf-xclip labels encode --model microsoft/xclip-base-patch32 --labels-file kinetics_400_labels.csv --output k400.bank
hf-xclip labels encode --model M --adapter my-adapter --labels-file more_labels.txt --output k400.bank  # appends
hf-xclip labels describe --generator Qwen/Qwen2.5-1.5B-Instruct --labels-file kinetics_400_labels.csv \\
    --output k400_descriptions.json
```

`encode` writes a label bank (one safetensors file: embeddings, label texts, templates, descriptions and the text
fingerprint of the model + adapter that made them). An existing bank is appended to: labels it already holds are kept
bit-identical and not re-encoded, so an interrupted run resumes where it stopped (the bank is saved every
`--save-every` labels). `describe` writes a JSON object label -> list of sentences, saved after every label; a rerun
only describes the labels still missing. Exit status: 0, 1 when some labels failed (the others are kept), 2 for bad
input (including a bank made by another model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .. import cli

SUMMARY = "label banks (encode labels once) and language-model label descriptions"
DESCRIPTION = """The label side of X-CLIP on its own.

  encode    encode labels into a label bank (appends to an existing bank; resumes after an interruption)
  describe  write per-label descriptions with a local text-generation model (JSON label -> sentences)"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "labels", SUMMARY, DESCRIPTION)
    verbs = parser.add_subparsers(dest="labels_command", metavar="VERB")
    _add_encode(verbs)
    _add_describe(verbs)
    return parser


def _add_label_inputs(parser: argparse.ArgumentParser) -> None:
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="comma-separated labels")
    labels.add_argument("--labels-file", type=Path, help="one label per line, or a CSV with a 'name' column")


def _add_encode(verbs) -> None:
    parser = verbs.add_parser(
        "encode",
        help="encode labels into a label bank (safetensors + texts + the model's fingerprint)",
        description="Encode labels with an X-CLIP model (and adapter) into a label bank. An existing bank is "
        "appended to (existing rows unchanged); a bank made by another model or adapter is refused.",
    )
    parser.add_argument("--model", help="hf_xclip / transformers X-CLIP folder or Hub id (default: embedded)")
    parser.add_argument("--adapter", help="PEFT adapter folder or Hub id (from hf-xclip finetune)")
    _add_label_inputs(parser)
    parser.add_argument("--output", required=True, type=Path, help="the label bank file (.safetensors)")
    parser.add_argument(
        "--template",
        action="append",
        dest="templates",
        metavar="TEMPLATE",
        help="template with '{}' (repeat to ensemble; default: an existing bank's, else the adapter's, else the model's "
        "own)",
    )
    cli.add_label_side_arguments(parser, bank=False)
    parser.add_argument("--batch-size", type=int, default=256, help="texts per text-encoder pass (default 256)")
    parser.add_argument("--save-every", type=int, default=256, help="labels encoded between saves (default 256)")
    parser.add_argument("--overwrite", action="store_true", help="write a new bank instead of appending")
    parser.add_argument("--device", help="torch device (default: first GPU if any, else CPU)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    parser.add_argument(
        "--lm-dtype", choices=("auto", "float32", "bfloat16", "float16"), help="LLM prompter's language model"
    )
    parser.add_argument("--load-in-8bit", action="store_true", help="8-bit language model (CUDA + bitsandbytes)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.set_defaults(_run=run_encode)


def _add_describe(verbs) -> None:
    DEFAULT_DESCRIPTION_PROMPTS = cli.static_value("hf_xclip.language.causal_lm", "DEFAULT_DESCRIPTION_PROMPTS")

    parser = verbs.add_parser(
        "describe",
        help="write per-label descriptions with a local text-generation model",
        description="Ask a local transformers text-generation model what each label looks like in a video; write a "
        "JSON object label -> list of sentences for --label-descriptions. Greedy decoding (deterministic) unless "
        "--sample (seeded). Prompts default to: "
        + " | ".join(p.replace("\n", " ") for p in DEFAULT_DESCRIPTION_PROMPTS),
    )
    parser.add_argument("--generator", required=True, help="causal language model: Hub id or local folder")
    _add_label_inputs(parser)
    parser.add_argument("--output", required=True, type=Path, help="JSON file to write (resumed when it exists)")
    parser.add_argument(
        "--prompt", action="append", dest="prompts", metavar="TEMPLATE", help="prompt with '{}' for the label (repeat)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=40, help="tokens per answer (default 40)")
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding (seeded)")
    parser.add_argument("--num-return-sequences", type=int, default=1, help="answers per prompt when sampling")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument(
        "--chat-template",
        choices=("auto", "on", "off"),
        default="auto",
        help="wrap prompts in the tokenizer's chat template (auto: when it has one)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generation call (default 8)")
    parser.add_argument("--device", help="torch device (default: first GPU if any, else CPU)")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a model whose code is in its repo")
    parser.add_argument("--overwrite", action="store_true", help="describe every label again")
    parser.set_defaults(_run=run_describe)


def run(args: argparse.Namespace) -> int:
    print("hf-xclip labels: choose a verb: encode or describe (see hf-xclip labels --help)", file=sys.stderr)
    return cli.EXIT_USAGE


def _read_labels(args: argparse.Namespace) -> list[str]:
    return cli.read_labels(args.labels, args.labels_file)  # naming the file (e.g. one that is not UTF-8)


def _device(name: str | None):
    import torch

    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------------------------
# encode


def run_encode(args: argparse.Namespace) -> int:
    from ..labels import LabelBankMismatchError

    start = time.perf_counter()
    try:
        if args.batch_size < 1 or args.save_every < 1:
            raise cli.UsageError("--batch-size and --save-every must be at least 1")
        labels = _read_labels(args)
        descriptions = cli.read_descriptions_argument(args.label_descriptions)
        model_name = cli.model_or_default(args.model)
        encoder, processor, metadata = _load_encoder(args, model_name)
        if descriptions is None and metadata.get("label_descriptions"):
            descriptions = metadata["label_descriptions"]
        bank, templates = _open_bank(args, encoder, processor, metadata)
    except LabelBankMismatchError as err:
        print(f"hf-xclip labels encode: error: {args.output}: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    except (cli.UsageError, ValueError, OSError) as err:
        print(f"hf-xclip labels encode: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE

    held = len(bank) if bank is not None else 0
    todo = [label for label in labels if bank is None or label not in bank]
    info = {"model": model_name, "adapter": args.adapter}
    prompter = encoder.prompter
    if prompter is not None:
        info["language_model"] = prompter.config.language_model
    try:
        for begin in range(0, len(todo), args.save_every):
            chunk = todo[begin : begin + args.save_every]
            if bank is None:
                bank = encoder.bank(chunk, templates, descriptions, **info)
            else:
                bank.append(encoder, chunk, descriptions)
            bank.save(args.output)
    except ValueError as err:  # descriptions of banked labels changed
        print(f"hf-xclip labels encode: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    if bank is None:  # nothing to add and no bank before: cannot happen (labels are non-empty)
        return cli.EXIT_USAGE
    _report_bank(args, bank, len(todo), held, start)
    return cli.EXIT_OK


def _load_encoder(args: argparse.Namespace, model_name: str):
    """A `LabelEncoder` of the model (and adapter) on ``--device`` in ``--dtype``, its processor and the adapter's
    metadata."""
    import torch

    from ..labels import LabelEncoder

    overrides = {"lm_dtype": args.lm_dtype} if args.lm_dtype else {}
    if args.load_in_8bit:
        overrides["load_in_8bit"] = True
    model, processor, metadata = cli.load_with_adapter(
        model_name, args.adapter, language_model=args.language_model, **overrides
    )
    model.to(device=_device(args.device), dtype=getattr(torch, args.dtype))
    return LabelEncoder(model, processor.tokenizer, batch_size=args.batch_size), processor, metadata


def _open_bank(args: argparse.Namespace, encoder, processor, metadata: dict):
    """``(bank, templates)``: the bank of ``--output`` to append to (None for a new one: ``--overwrite`` or no file)
    and the templates its labels are encoded with.

    Raises:
        LabelBankMismatchError: the bank was made by another model or adapter.
        UsageError: ``--template`` differs from the bank's.
    """
    from ..labels import LabelBank, normalize_templates, resolve_templates

    existing = args.output.is_file() and not args.overwrite
    bank = LabelBank.load(args.output) if existing else None
    if bank is None:  # the adapter's template, else the model's own
        return None, resolve_templates(args.templates or metadata.get("template"), processor, name="--template")
    templates = normalize_templates(args.templates or bank.templates, "--template")
    encoder.check_bank(bank)
    if templates != bank.templates:
        raise cli.UsageError(
            f"{args.output} was encoded with templates {list(bank.templates)}, not {list(templates)}: use "
            "--overwrite to write a new bank"
        )
    return bank, templates


def _report_bank(args: argparse.Namespace, bank, added: int, held: int, start: float) -> None:
    summary = {
        "output": str(args.output),
        "labels": len(bank),
        "added": added,
        "already_there": held,
        "dim": int(bank.embeddings.shape[1]),
        "templates": list(bank.templates),
        "described_labels": len(bank.descriptions),
        "fingerprint": bank.fingerprint,
        "seconds": round(time.perf_counter() - start, 3),
    }
    text = (
        f"label bank {summary['output']}: {summary['labels']} labels ({summary['added']} encoded now, "
        f"{len(bank) - summary['added']} kept), dim {summary['dim']}, templates {summary['templates']}, "
        f"{summary['described_labels']} with descriptions, fingerprint {bank.fingerprint[:12]}"
    )
    cli.print_summary(text, summary, args.json)


# ----------------------------------------------------------------------------------------------------------------
# describe


def run_describe(args: argparse.Namespace) -> int:
    from ..labels import read_label_descriptions
    from ..language.causal_lm import DescriptionSettings, describe_labels

    try:
        labels = _read_labels(args)
        if args.batch_size < 1:
            raise cli.UsageError("--batch-size must be at least 1")
        settings = DescriptionSettings(
            **({"prompts": tuple(args.prompts)} if args.prompts else {}),
            max_new_tokens=args.max_new_tokens,
            do_sample=args.sample,
            num_return_sequences=args.num_return_sequences,
            temperature=args.temperature,
            seed=args.seed,
            use_chat_template={"auto": None, "on": True, "off": False}[args.chat_template],
        )
        done: dict[str, list[str]] = {}
        if args.output.is_file() and not args.overwrite:
            done = read_label_descriptions(args.output)
        generator = _load_generator(args)
    except (cli.UsageError, ValueError, OSError) as err:
        print(f"hf-xclip labels describe: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE

    todo = [label for label in labels if label not in done]
    results = dict(done)
    failures: list[tuple[str, str]] = []

    def save(label: str, sentences: list[str]) -> None:
        results[label] = sentences
        _write_json_atomically(args.output, _in_order(results, labels))

    for label in todo:
        try:
            describe_labels(generator, [label], settings, batch_size=args.batch_size, on_label=save)
        except Exception as err:  # keep going: one label's failure must not lose the others
            failures.append((label, f"{type(err).__name__}: {err}"))
            print(f"hf-xclip labels describe: {label!r} failed: {err}", file=sys.stderr)
    _write_json_atomically(args.output, _in_order(results, labels))
    empty = [label for label in labels if label in results and not results[label]]
    print(
        f"descriptions written to {args.output}: {len(todo) - len(failures)} labels described now, "
        f"{len(done)} kept, {len(empty)} without any sentence, {len(failures)} failed"
    )
    return cli.EXIT_FAILURES if failures else cli.EXIT_OK


def _load_generator(args: argparse.Namespace):
    import torch
    from transformers import pipeline

    from ..language.causal_lm import resolve_lm_dtype

    device = _device(args.device)
    dtype = resolve_lm_dtype(args.dtype, device)
    try:
        generator = pipeline(
            "text-generation",
            model=args.generator,
            device=device,
            dtype=dtype,
            trust_remote_code=args.trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise cli.UsageError(f"cannot load the generator {args.generator!r}: {err}") from None
    torch.manual_seed(args.seed)
    return generator


def _in_order(results: dict[str, list[str]], labels: list[str]) -> dict[str, list[str]]:
    """Labels of this run first, in their order, then any other labels the file already had."""
    ordered = {label: results[label] for label in labels if label in results}
    ordered.update({label: value for label, value in results.items() if label not in ordered})
    return ordered


def _write_json_atomically(path: Path, data: dict) -> None:
    from ..utils import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

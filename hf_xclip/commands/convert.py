"""`hf-xclip convert`: original X-CLIP (default), ViFi-CLIP or CLIP checkpoints into hf_xclip model directories."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import cli

FAMILIES = ("xclip", "vificlip", "clip")

SUMMARY = "convert original X-CLIP / ViFi-CLIP / CLIP checkpoints"
DESCRIPTION = """Convert a checkpoint into an hf_xclip model directory (config, safetensors, processor, tokenizer,
README.md model card). Every hyperparameter is read from the weights; the result is checked against an independent
forward pass of the original weights, and nothing is written unless everything succeeded.

  --from xclip     a checkpoint of the original X-CLIP training (microsoft/VideoX), e.g. k400_32_8.pth
  --from vificlip  a ViFi-CLIP checkpoint; --clip gives the CLIP it was fine-tuned from (token embedding)
  --from clip      a new X-CLIP initialised from CLIP (--checkpoint or --clip: transformers CLIP directory,
                   OpenAI state dict or OpenAI .pt), as X-CLIP training starts"""


def add_arguments(parser: argparse.ArgumentParser, family: str | None = None) -> argparse.ArgumentParser:
    """Arguments shared by `hf-xclip convert` and the scripts in conversion/ (which fix `family`)."""
    if family is None:
        parser.add_argument(
            "--from",
            dest="family",
            choices=FAMILIES,
            default="xclip",
            help="kind of checkpoint to convert (default: xclip)",
        )
    else:
        parser.set_defaults(family=family)
    checkpoint_help = "CLIP weights to start from" if family == "clip" else "checkpoint file (.pth) to convert"
    parser.add_argument("--checkpoint", type=Path, help=checkpoint_help)
    parser.add_argument("--output-dir", type=Path, required=True, help="directory to write (must be empty or absent)")
    if family in (None, "vificlip", "clip"):
        parser.add_argument(
            "--clip",
            type=Path,
            help="CLIP weights: the token embedding for ViFi-CLIP, the source for --from clip "
            "(transformers CLIP directory, OpenAI state dict or OpenAI TorchScript .pt)",
        )
    parser.add_argument("--bpe-vocab", type=Path, help="CLIP's bpe_simple_vocab_16e6.txt.gz to build the tokenizer")
    parser.add_argument("--tokenizer", help="tokenizer directory or Hub name to ship instead of --bpe-vocab")
    parser.add_argument(
        "--num-frames",
        type=int,
        help="frames per video: checked against the MIT (xclip), overrides DATA.NUM_FRAMES "
        "(vificlip), MIT length for a new model (clip, default 8)",
    )
    if family in (None, "clip"):
        parser.add_argument("--mit-layers", type=int, default=1, help="MIT layers of a new X-CLIP (default 1)")
        parser.add_argument("--prompt-layers", type=int, default=2, help="prompt generator layers (default 2)")
        parser.add_argument("--prompt-alpha", type=float, default=0.1, help="initial prompt scale (default 0.1)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the new modules' initialisation")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the output directory to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--token", help="Hub token (default: the logged-in one / HF_TOKEN)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the comparison with the original forward pass (faster for large models)",
    )
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "convert", SUMMARY, DESCRIPTION)
    return add_arguments(parser)


def _convert(args: argparse.Namespace):
    from ..conversion import ConversionError
    from ..conversion.clip_init import convert_clip_to_xclip
    from ..conversion.vificlip import convert_vificlip_checkpoint
    from ..conversion.xclip import convert_xclip_checkpoint

    common = cli.option_values(args, "bpe_vocab", "tokenizer", "verify", "overwrite", "push_to_hub", "token")
    common["private"] = args.private or None
    clip = getattr(args, "clip", None)
    if args.family == "xclip":
        if args.checkpoint is None:
            raise ConversionError("--checkpoint is required: the original X-CLIP .pth to convert.")
        return convert_xclip_checkpoint(args.checkpoint, args.output_dir, num_frames=args.num_frames, **common)
    if args.family == "vificlip":
        if args.checkpoint is None or clip is None:
            raise ConversionError(
                "--checkpoint (the ViFi-CLIP .pth) and --clip (the CLIP it was fine-tuned from, "
                "for the token embedding) are required."
            )
        return convert_vificlip_checkpoint(
            args.checkpoint, args.output_dir, clip=clip, num_frames=args.num_frames, **common
        )
    source = clip or args.checkpoint
    if source is None:
        raise ConversionError("--clip (or --checkpoint) is required: the CLIP weights to start from.")
    return convert_clip_to_xclip(
        source,
        args.output_dir,
        num_frames=args.num_frames or 8,
        mit_layers=args.mit_layers,
        prompt_layers=args.prompt_layers,
        prompt_alpha=args.prompt_alpha,
        seed=args.seed,
        **common,
    )


def run(args: argparse.Namespace) -> int:
    """Convert; print what was written. Returns 1 with a one-line error for bad input."""
    from ..conversion import ConversionError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        result = _convert(args)
    except (ConversionError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return cli.EXIT_FAILURES
    config = result.config
    vision = config.vision_config
    print(f"wrote {result.output_dir}")
    print(
        f"  frames {vision.num_frames}, image {vision.image_size} px, patch {vision.patch_size}, vision "
        f"{vision.hidden_size}x{vision.num_hidden_layers}, text {config.text_config.hidden_size}x"
        f"{config.text_config.num_hidden_layers}, projection {config.projection_dim}, pooling {config.video_pooling}"
    )
    if result.max_abs_errors:
        errors = ", ".join(f"{name} {value:.2e}" for name, value in result.max_abs_errors.items())
        print(f"  max |converted - original forward|: {errors}")
    if result.hub_url:
        print(f"  pushed: {result.hub_url}")
    return cli.EXIT_OK


def script_main(family: str, argv: list[str] | None = None) -> int:
    """Entry point of the scripts in conversion/: the same options with the checkpoint kind fixed."""
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    return run(add_arguments(parser, family).parse_args(argv))

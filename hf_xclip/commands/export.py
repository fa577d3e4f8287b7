"""`hf-xclip export`: an X-CLIP model as ONNX graphs for onnxruntime (optionally with int8 linear layers).

```
hf-xclip export --model microsoft/xclip-base-patch32 --output xclip-b32-onnx
hf-xclip export --model ./my-model --output my-model-int8 --quantize int8
hf-xclip classify videos/ --model xclip-b32-onnx --labels "surfing,juggling,cooking"
```

The output directory holds the text encoder, video encoder and scorer graphs, ``onnx_config.json``, ``config.json``
and the processor files; `pipeline("zero-shot-video-classification", model=DIR)` and `hf-xclip classify --model DIR`
run it on onnxruntime. Exit status: 0, 1 when the exported graphs disagree with the torch model, 2 for bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import cli

SUMMARY = "export a model to ONNX for onnxruntime (optionally int8)"
DESCRIPTION = """Export an X-CLIP model to ONNX: text encoder, video encoder (video embedding + prompt features) and
scorer (prompt generator + logits), with dynamic batch, frame, label and sequence axes. The graphs are checked
against the torch model with onnxruntime before anything is written (needs: pip install 'hf_xclip[onnx]').

  --quantize int8   also write int8 graphs (dynamic quantization of the linear layers) and make them the
                    directory's default; the float32 graphs stay (load with quantize="none" to use them)"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = cli.add_command_parser(subparsers, "export", SUMMARY, DESCRIPTION)
    parser.add_argument("--model", help="hf_xclip / transformers X-CLIP directory or Hub id (default: embedded model)")
    parser.add_argument("--output", required=True, type=Path, help="directory to write (must be empty or absent)")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    parser.add_argument("--quantize", choices=("int8",), help="also write int8 graphs and make them the default")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip the onnxruntime-vs-torch check (not recommended)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("hf_xclip").setLevel(logging.INFO)
    try:
        result = _export(args)
    except cli.UsageError as err:
        print(f"hf-xclip export: error: {err}", file=sys.stderr)
        return cli.EXIT_USAGE
    except RuntimeError as err:  # the exported graphs disagree with the model, or tracing failed
        print(f"hf-xclip export: failed: {err}", file=sys.stderr)
        return cli.EXIT_FAILURES
    _print_summary(result)
    return cli.EXIT_OK


def _export(args: argparse.Namespace):
    from ..export.onnx_export import DEFAULT_OPSET, export_onnx
    from ..modeling_ort import is_onnx_model_dir

    name = cli.model_or_default(args.model)
    if is_onnx_model_dir(name):
        raise cli.UsageError(f"{name} is already an ONNX export; pass the torch model it came from.")
    if args.opset is not None and args.opset < 17:
        raise cli.UsageError(f"--opset must be >= 17 (LayerNormalization), got {args.opset}")
    model = _load_model(name)
    try:
        return export_onnx(
            model,
            args.output,
            quantize=args.quantize,
            opset=args.opset or DEFAULT_OPSET,
            overwrite=args.overwrite,
            verify=args.verify,
            require_processor=True,
        )
    except (ImportError, ValueError, FileNotFoundError) as err:  # missing extras, output dir, no processor
        raise cli.UsageError(str(err)) from None


def _load_model(name: str):
    from ..loading import check_model_family
    from ..modeling_xclip import XClipModel

    with cli.loading(name):
        family = check_model_family(name)
        if family != "xclip":
            raise cli.UsageError(
                f"{name} is a {family} model: hf-xclip export writes X-CLIP's three graphs and exports X-CLIP models "
                "only for now (see docs/models.md, 'Not supported yet')."
            )
        return XClipModel.from_pretrained(name)


def _print_summary(result) -> None:
    manifest = result.manifest
    print(f"wrote {result.output_dir}")
    for path in sorted(Path(result.output_dir).glob("*.onnx*")):
        print(f"  {path.name:28s} {path.stat().st_size / 2**20:8.1f} MiB")
    default = manifest.get("default_quantization") or "float32"
    print(f"  opset {manifest['opset']}, default precision {default}")
    for precision, diffs in result.max_abs_diff.items():
        shown = ", ".join(f"{key} {value:.1e}" for key, value in diffs.items())
        print(f"  max |onnxruntime {precision} - torch|: {shown}")

"""Convert a checkpoint of the original X-CLIP (microsoft/VideoX) into an hf_xclip model directory.

    python conversion/convert_xclip_original.py --checkpoint k400_32_8.pth --output-dir xclip-base-patch32 \
        --bpe-vocab bpe_simple_vocab_16e6.txt.gz [--push-to-hub USER/xclip-base-patch32]

Same as `hf-xclip convert`; the logic lives in `hf_xclip.conversion`.
"""

import sys
from pathlib import Path

try:
    from hf_xclip.commands.convert import script_main
except ImportError:  # run from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hf_xclip.commands.convert import script_main

if __name__ == "__main__":
    sys.exit(script_main("xclip"))

"""Initialise an X-CLIP from CLIP weights, as X-CLIP training starts (new modules initialised like the original).

    python conversion/convert_clip_to_xclip.py --clip openai-clip-vit-base-patch32 --num-frames 8 \
        --output-dir xclip-b32-init

`--clip` takes a transformers CLIP directory, an OpenAI-format state dict or OpenAI's TorchScript ViT-*.pt.
Same as `hf-xclip convert --from clip`.
"""

import sys
from pathlib import Path

try:
    from hf_xclip.commands.convert import script_main
except ImportError:  # run from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hf_xclip.commands.convert import script_main

if __name__ == "__main__":
    sys.exit(script_main("clip"))

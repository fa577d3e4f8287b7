"""Convert a ViFi-CLIP checkpoint into an hf_xclip model (no message tokens, MIT or prompt generator; mean pooling).

    python conversion/convert_vificlip.py --checkpoint vifi_clip_k400.pth --clip openai-clip-vit-base-patch16 \
        --output-dir vificlip-b16-k400 --bpe-vocab bpe_simple_vocab_16e6.txt.gz

`--clip` is the CLIP the checkpoint was fine-tuned from: ViFi-CLIP checkpoints do not contain the token embedding.
Same as `hf-xclip convert --from vificlip`.
"""

import sys
from pathlib import Path

try:
    from hf_xclip.commands.convert import script_main
except ImportError:  # run from a source checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hf_xclip.commands.convert import script_main

if __name__ == "__main__":
    sys.exit(script_main("vificlip"))

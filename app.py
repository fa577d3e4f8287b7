"""Hugging Face Spaces entry point: ``python app.py`` runs ``hf-xclip app`` (same options, e.g. ``--index``).

On Spaces the app must listen on every interface (the Space's proxy reaches it from outside the container), so
``0.0.0.0`` is used there when no ``--host`` is given (Spaces set ``SPACE_ID``); elsewhere the default stays
127.0.0.1.
"""

import os
import sys

from hf_xclip.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if os.environ.get("SPACE_ID") and not any(arg == "--host" or arg.startswith("--host=") for arg in argv):
        argv = ["--host", "0.0.0.0", *argv]
    sys.exit(main(["app", *argv]))

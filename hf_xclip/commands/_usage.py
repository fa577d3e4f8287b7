"""What every `hf-xclip` command shares to report failure: the exit codes and the usage error (re-exported by
`hf_xclip.cli`). Imports nothing."""

from __future__ import annotations

# Exit status of every command: success, some items failed (the others were still done), bad input.
EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input (exit status `EXIT_USAGE`)."""

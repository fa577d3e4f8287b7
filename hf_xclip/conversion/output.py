"""Writing a conversion's output atomically: everything goes to a hidden temporary directory next to the target and
is moved into place only when the conversion (including its checks) succeeded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..utils import atomic_directory
from .checkpoint import ConversionError


def check_output_dir(output_dir: str | Path, overwrite: bool = False) -> Path:
    """Fail early (before any work) when `output_dir` is a file, or a non-empty directory without `overwrite`."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConversionError(f"output path {output_dir} exists and is not a directory.")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ConversionError(f"output directory {output_dir} is not empty; pass overwrite=True (--overwrite).")
    return output_dir


@contextlib.contextmanager
def staged_output_dir(output_dir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory; on normal exit it replaces `output_dir`, on an exception it is deleted and
    `output_dir` is left as it was."""
    with atomic_directory(check_output_dir(output_dir, overwrite)) as staging:
        yield staging

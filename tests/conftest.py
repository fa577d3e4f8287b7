"""Shared pytest fixtures: the reference directory (skipped cleanly when absent) and small helpers."""

from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: a heavy test (torch.compile, subprocesses without hf_xclip, retraining); CI runs them, "
        "`pytest -m 'not slow'` skips them while iterating",
    )


@pytest.fixture()
def one_thread():
    """One torch thread for the test: tiny models gain nothing from intra-op threads, and on a shared 2-core runner
    the threads only contend. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference` next to the repository; tests that need it skip when it is absent."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference fixtures not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


def reference_file(*parts: str) -> Path:
    """Path of a reference file, skipping the calling test when it is missing."""
    path = REFERENCE_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference file {path} not found")
    return path

"""Shared pytest fixtures: one torch thread for the whole run, the reference directory (skipped cleanly when
absent), a module's work folder, the synthetic tokenizer and the module's tiny saved model (`model_dir`)."""

from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: a heavy test (torch.compile, subprocesses without hf_xclip, retraining); CI runs them, "
        "`pytest -m 'not slow'` skips them while iterating",
    )


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread for every test (the one place that sets it): tiny models gain nothing from intra-op
    threads, and on a shared 2-core runner the threads only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory) -> Path:
    """A temporary folder shared by the tests of one module (named after it)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def tokenizer():
    """The tokenizer of the synthetic captions (16 positions), as the fine-tuning tests' models use it."""
    from hf_xclip.data.synthetic import build_synthetic_tokenizer

    return build_synthetic_tokenizer(max_length=16)


@pytest.fixture(scope="module")
def model_dir(request, tmp_path_factory) -> Path:
    """The module's tiny saved X-CLIP; ``MODEL_DIR = ...`` at the top of a test module picks which:

    * ``"tiny"`` (default): `testing_utils.save_tiny_xclip`, random weights and a tiny BPE tokenizer;
    * ``"synthetic"``: `testing_utils.save_synthetic_xclip` with the `tokenizer` fixture (32 px, 4 frames), the
      fine-tuning tests' model;
    * ``"default"``: the embedded default model (not a copy: read it, do not write to it).
    """
    kind = getattr(request.module, "MODEL_DIR", "tiny")
    if kind == "default":
        import hf_xclip

        return Path(hf_xclip.default_model_path())
    from testing_utils import save_synthetic_xclip, save_tiny_xclip

    folder = tmp_path_factory.mktemp("model") / "tiny-xclip"
    if kind == "synthetic":
        return save_synthetic_xclip(folder, request.getfixturevalue("tokenizer"))
    if kind != "tiny":
        raise ValueError(f"MODEL_DIR must be 'tiny', 'synthetic' or 'default', got {kind!r}")
    return save_tiny_xclip(folder)


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

"""The documentation runs: python blocks of docs/*.md, doctests of hf_xclip's modules, links, docs/api.md freshness.

Docs convention (see docs/index.md): every ```python block of a page runs, in order, in one namespace per page,
in an empty temporary directory, offline (tiny models made on the fly). A block that cannot run here (Hub ids,
GPU, real checkpoints, ``accelerate launch``) is fenced as ```python no-run (or preceded by ``<!-- no-run -->``).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

import hf_xclip

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NO_RUN_COMMENT = re.compile(r"<!--\s*no-run\b[^>]*-->\s*$")
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@dataclass
class Block:
    path: Path
    line: int
    code: str
    runs: bool


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a markdown file, with whether they run (no ``no-run`` marker)."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        words = match.group("info").split()
        if not words or words[0] not in ("python", "py"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        previous = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        runs = "no-run" not in words[1:] and not NO_RUN_COMMENT.search(previous)
        indent = len(match.group("indent"))
        code = "\n".join(line[indent:] for line in match.group("body").splitlines())
        blocks.append(Block(path, line, code, runs))
    return blocks


DOC_FILES = sorted(DOCS.glob("*.md"))
# api.md is generated from docstrings: its examples run as the modules' doctests, its signatures are not code.
GUIDES = [page for page in DOC_FILES if page.name != "api.md"]


def test_the_convention_is_parsed(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nx = 1\n```\n\n```python no-run\nimport secret\n```\n\n<!-- no-run: needs a GPU -->\n"
        "```python\ny = 2\n```\n\n```bash\nls\n```\n\n1. item\n\n   ```python\n   z = x + 1\n   ```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [(b.line, b.runs) for b in blocks] == [(3, True), (7, False), (12, False), (22, True)]
    assert blocks[-1].code == "z = x + 1"


@pytest.fixture
def offline(monkeypatch):
    """No Hub: huggingface_hub reads HF_HUB_OFFLINE at import, so set its constant (a Hub id fails at once)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("page", GUIDES, ids=[p.name for p in GUIDES])
def test_docs_python_blocks_run(page, tmp_path, monkeypatch, offline):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for block in python_blocks(page):
        if not block.runs:
            continue
        try:
            if block.code.lstrip().startswith(">>>"):
                _run_doctest_block(block, namespace)
            else:
                exec(compile(block.code, f"{page.name}:{block.line}", "exec"), namespace)  # noqa: S102 - our docs
        except Exception:
            pytest.fail(
                f"{page.relative_to(REPO)} block at line {block.line} failed (mark it ```python no-run if it cannot "
                f"run offline with tiny models):\n{traceback.format_exc()}"
            )


def _run_doctest_block(block: Block, namespace: dict) -> None:
    """A ``>>>`` block is checked with its printed outputs, sharing the page's namespace."""
    test = doctest.DocTestParser().get_doctest(
        block.code, namespace, f"{block.path.name}:{block.line}", str(block.path), block.line
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # DocTest works on a copy
    if runner.failures:
        raise AssertionError("".join(report))


def test_docs_runnable_blocks_outnumber_no_run():
    """no-run is for the few blocks that need the Hub, a GPU or real checkpoints."""
    blocks = [b for page in GUIDES for b in python_blocks(page)]
    runnable = sum(b.runs for b in blocks)
    assert runnable >= len(blocks) - runnable, [f"{b.path.name}:{b.line}" for b in blocks if not b.runs]


def test_relative_links_resolve():
    broken = []
    for page in [*DOC_FILES, REPO / "README.md"]:
        if not page.is_file():
            continue
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for match in LINK.finditer(text):
            target = match.group("target").split("#")[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_api_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "_tools" / "gen_api.py")
    gen_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_api)
    expected = gen_api.render()
    assert (DOCS / "api.md").read_text(encoding="utf-8") == expected, (
        "docs/api.md is out of date: run `python docs/_tools/gen_api.py`"
    )


# ------------------------------------------------------------------------------------------------ doctests


class FencedDocTestParser(doctest.DocTestParser):
    """Docstrings wrap examples in ```python fences (transformers' style): a fence line ends an example's output."""

    def parse(self, string, name="<string>"):
        return super().parse(re.sub(r"^[ \t]*```[\w-]*[ \t]*$", "", string, flags=re.M), name)


MODULES = sorted(m.name for m in pkgutil.walk_packages(hf_xclip.__path__, "hf_xclip."))


@pytest.mark.parametrize("module_name", ["hf_xclip", *MODULES])
def test_doctests(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(parser=FencedDocTestParser())  # only objects defined in the module itself
    tests = [t for t in finder.find(module, module_name) if t.examples]
    if not tests:
        pytest.skip(f"{module_name} has no doctest examples")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    for test in tests:
        runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)

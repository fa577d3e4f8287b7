"""The house rules of the package layout: no import cycle anywhere in `hf_xclip`, commands import the library (never
each other), and the code shipped with `save_pretrained` only imports what it ships."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hf_xclip"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py") if "default_model" not in path.parts}


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    """Module -> hf_xclip modules it imports anywhere in its source (module level or inside functions)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, node, path.name == "__init__.py")
                # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                while target and target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return stack[stack.index(child) :] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_relative_lazy_and_absolute_imports():
    graph = import_graph()
    assert "hf_xclip.labels" in graph["hf_xclip.pipeline_zero_shot_video_classification"]  # module level, relative
    assert "hf_xclip.data.folders" in graph["hf_xclip.commands.classify"]  # inside a function
    assert "hf_xclip.modeling_prompts" in graph["hf_xclip.modeling_xclip"]


def test_no_import_cycle_in_hf_xclip():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_commands_import_the_library_not_each_other():
    """A command imports the library and `hf_xclip.cli`, never another command. What commands share lives in the
    helper modules `commands/_*.py` (not commands: no entry in `cli.COMMANDS`), which `cli` re-exports; they import
    the library and each other, never a command or `cli`."""
    from hf_xclip.cli import COMMANDS

    graph = import_graph()
    helpers = {name for name in graph if name.startswith("hf_xclip.commands._")}
    assert not {name.rpartition(".")[2] for name in helpers} & set(COMMANDS)
    for name, targets in graph.items():
        if name.startswith("hf_xclip.commands."):
            others = sorted(t for t in targets if t.startswith("hf_xclip.commands") and t not in helpers)
            assert not others, f"{name} imports {others}"
            assert "hf_xclip" not in targets, f"{name} imports the package root; import the module it needs"
    for name in helpers:
        assert "hf_xclip.cli" not in graph[name], f"{name} imports hf_xclip.cli, which re-exports it"


@pytest.mark.parametrize(
    "module",
    [
        "hf_xclip.modeling_xclip",
        "hf_xclip.pipeline_zero_shot_video_classification",
        "hf_xclip.processing_xclip",
        "hf_xclip.modeling_video_text",
        "hf_xclip.processing_video_text",
        "hf_xclip.loading",
    ],
)
def test_remote_code_modules_only_import_flat_siblings(module):
    """What `save_pretrained` ships is a flat folder of files: their hf_xclip imports must be flat siblings, closed
    under import (so every file the code needs is shipped), and never the conversion or command packages."""
    graph = import_graph()
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(graph[current])
    nested = sorted(m for m in seen if m.count(".") > 1)
    assert not nested, f"{module} needs {nested}, which save_pretrained cannot ship"


# The code `save_pretrained` ships (flat siblings) and the package's own plumbing; every feature lives in a package.
SHIPPED_CLOSURE = {
    "configuration_xclip",
    "modeling_xclip",
    "modeling_prompts",
    "modeling_ort",
    "processing_xclip",
    "video_processing_xclip",
    "video_processing_config",
    "video_processing_inputs",
    "video_processing_transforms",
    "video_io",
    "video_sampling",
    "video_probe",
    "video_decoding",
    "video_windows",
    "labels",
    "label_texts",
    "label_bank",
    "label_encoder",
    "multilabel",
    "fingerprint",
    "loading",
    "pipeline_zero_shot_video_classification",
    "modeling_video_text",
    "processing_video_text",
    "utils",
}
PLUMBING = {"__init__", "_old_paths", "cli", "registration"}


def test_only_the_shipped_closure_and_plumbing_are_flat():
    flat = {path.stem for path in PACKAGE.glob("*.py")}
    assert flat == SHIPPED_CLOSURE | PLUMBING, (
        f"flat modules outside the shipped closure: {sorted(flat - SHIPPED_CLOSURE - PLUMBING)}; "
        f"missing: {sorted(SHIPPED_CLOSURE | PLUMBING - flat)} (features go in a package such as hf_xclip/search/)"
    )


def test_shipped_closure_is_closed():
    """Everything the flat model files import (anywhere) is itself in the shipped closure."""
    graph = import_graph()
    for module in SHIPPED_CLOSURE:
        outside = sorted(t.removeprefix("hf_xclip.") for t in graph[f"hf_xclip.{module}"])
        assert set(outside) <= SHIPPED_CLOSURE, f"hf_xclip.{module} imports {sorted(set(outside) - SHIPPED_CLOSURE)}"


def test_old_module_paths_are_the_new_modules():
    import importlib

    from hf_xclip._old_paths import MOVED_MODULES

    for old, new in MOVED_MODULES.items():
        assert new in _modules(), f"{old} points to {new}, which does not exist"
        assert importlib.import_module(old) is importlib.import_module(new)
    from hf_xclip import search, timeline

    assert timeline.video_timeline is importlib.import_module("hf_xclip.timeline.runner").video_timeline
    assert importlib.import_module("hf_xclip.video_index") is search  # split module: its package exports its names
    assert {"build_index", "read_manifest", "build_faiss"} <= set(search.__all__)

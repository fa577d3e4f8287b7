"""A command's flags from the library's own declarations, read from its source without importing it (so that
`hf-xclip ... --help` stays free of torch and transformers): module-level constants (choices, defaults), dataclass
field defaults, and a dataclass's fields as flags (`add_dataclass_arguments`). Re-exported by `hf_xclip.cli`."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import types
import typing
from pathlib import Path
from typing import Any

# the package whose modules are read: hf_xclip, this file being hf_xclip/commands/_static.py
_PACKAGE = __name__.partition(".")[0]
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _static_definition(module: str, name: str) -> ast.stmt:
    """The statement defining `name` in `module` (following ``from .x import name`` re-exports), read from its
    source without importing it."""
    # the file of an hf_xclip module, found without importing its parent packages (which import torch)
    root, _, rest = module.partition(".")
    base = _PACKAGE_DIR.joinpath(*rest.split(".")) if rest else _PACKAGE_DIR
    is_package = (base / "__init__.py").is_file()
    source = base / "__init__.py" if is_package else base.with_suffix(".py")
    if root != _PACKAGE or not source.is_file():
        raise LookupError(f"no module {module}")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node
        if isinstance(node, ast.Assign) and any(name in _assigned_names(t) for t in node.targets):
            return node
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            package = module if is_package else module.rpartition(".")[0]
            origin = (
                importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                if node.level
                else node.module or ""
            )
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            return _static_definition(origin, original)
    raise LookupError(f"{module} defines no {name}")


def _assigned_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple):
        return [element.id if isinstance(element, ast.Name) else "" for element in target.elts]
    return []


def static_value(module: str, name: str) -> Any:
    """A module-level literal constant (a tuple of choices, a default) without importing its module: the command
    parsers show the library's choices while `hf-xclip ... --help` stays free of torch and transformers."""
    node = _static_definition(module, name)
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        raise LookupError(f"{module}.{name} is not a constant")
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):  # A, B = "a", "b"
        return ast.literal_eval(node.value)[_assigned_names(node.targets[0]).index(name)]
    return ast.literal_eval(node.value)


def static_defaults(module: str, name: str) -> dict[str, Any]:
    """The literal field defaults of dataclass `name` in `module` (``x: int = 1`` or ``field(default=1, ...)``),
    read without importing the module."""
    node = _static_definition(module, name)
    if not isinstance(node, ast.ClassDef):
        raise LookupError(f"{module}.{name} is not a class")
    defaults: dict[str, Any] = {}
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None):
            continue
        value: ast.expr | None = item.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
            value = next((k.value for k in value.keywords if k.arg == "default"), None)
        try:
            defaults[item.target.id] = ast.literal_eval(value) if value is not None else None
        except ValueError:
            continue  # not a literal: not needed by a parser
    return defaults


def static_dataclass(module: str, name: str) -> type:
    """A stand-in for dataclass `name` of `module`, read from its source without importing it: the same fields,
    annotations, literal defaults and metadata (module-level constants resolved), for `add_dataclass_arguments`
    (a command's flags) while `hf-xclip ... --help` stays free of torch. Build the real class from the parsed
    arguments with `dataclass_from_args`."""
    node = _static_definition(module, name)
    if not isinstance(node, ast.ClassDef):
        raise LookupError(f"{module}.{name} is not a class")
    constants: dict[str, Any] = {}

    def value(expr: ast.expr) -> Any:
        if isinstance(expr, ast.Name):
            if expr.id not in constants:
                constants[expr.id] = static_value(module, expr.id)
            return constants[expr.id]
        if isinstance(expr, ast.Dict):
            return {value(k): value(v) for k, v in zip(expr.keys, expr.values) if k is not None}
        return ast.literal_eval(expr)

    namespace = {
        "Literal": typing.Literal,
        "int": int,
        "float": float,
        "str": str,
        "bool": bool,
        "tuple": tuple,
        "list": list,
        "dict": dict,
        "None": None,
    }
    fields: list[tuple[str, Any, Any]] = []
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        annotation = eval(ast.unparse(item.annotation), namespace)  # noqa: S307 (this package's own source)
        default: Any = dataclasses.MISSING
        metadata: dict[str, Any] = {}
        if isinstance(item.value, ast.Call) and getattr(item.value.func, "id", None) == "field":
            keywords = {k.arg: k.value for k in item.value.keywords}
            if "default" in keywords:
                default = value(keywords["default"])
            if "metadata" in keywords:
                metadata = value(keywords["metadata"])
        elif item.value is not None:
            default = value(item.value)
        if default is dataclasses.MISSING:
            metadata = {**metadata, "cli": metadata.get("cli", True) and "default_factory" not in ast.unparse(item)}
            default = None
        fields.append((item.target.id, annotation, dataclasses.field(default=default, metadata=metadata)))
    return dataclasses.make_dataclass(name, fields)


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of the dataclass `cls`, with its type, choices (a ``Literal``), default and help (its
    ``metadata["help"]``, plus the default), so that the dataclass is the one declaration of a command's options.

    A field's metadata may set ``flag`` (e.g. ``"--lr"``; default ``--field-name``), ``group`` (the title of an
    argument group, made once) and ``cli=False`` (no flag). A bool field defaulting to False is a switch; one
    defaulting to True is turned off by its flag (name it ``--no-...``). Read the values back with
    [`dataclass_from_args`].
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if meta.get("cli", True) is False:
            continue
        target = parser
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            target = groups[meta["group"]]
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        kind, choices = _argument_type(hints[field.name])
        help_text = meta.get("help", "")
        if kind is bool:
            action = "store_false" if field.default is True else "store_true"
            target.add_argument(flag, dest=field.name, action=action, help=help_text)
            continue
        if field.default is not None:
            help_text = f"{help_text} (default {field.default})"
        target.add_argument(flag, dest=field.name, type=kind, choices=choices, default=field.default, help=help_text)


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """`cls` built from the flags [`add_dataclass_arguments`] added (and `overrides` for fields without a flag)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def _argument_type(hint: Any) -> tuple[type, tuple | None]:
    """(type for argparse, choices) of a field's type: ``X | None`` is X; a ``Literal`` gives its values."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return type(args[0]), tuple(args)
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _argument_type(args[0]) if len(args) == 1 else (str, None)
    return hint, None

"""A product's hook named ``"module:function"``: a module file inside the catalog first (a
dotted name is a path below the catalog's root), then an importable module."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path


class HookNotFound(Exception):
    """The hook's module does not import, or has no such function; the reason, in words."""

    def __init__(self, reason: str, *, imports: bool) -> None:
        super().__init__(reason)
        self.imports = imports  # the module imported: the function is what is missing


def find_hook(name: str, root: Path | None = None) -> Callable[..., object]:
    """The function ``name`` names, looked for in the catalog at ``root`` first.

    Raises:
        HookNotFound: ``cannot import <module>: <why>`` or ``<module> has no function <f>``.
    """
    module_name, function = name.split(":")
    local = root.joinpath(*module_name.split(".")).with_suffix(".py") if root else None
    try:
        module = _load_local(local, module_name) if local and local.is_file() else None
        found = getattr(module or importlib.import_module(module_name), function, None)
    except Exception as err:  # the product's module raised while importing
        raise HookNotFound(f"cannot import {module_name}: {err}", imports=False) from None
    if not callable(found):
        raise HookNotFound(f"{module_name} has no function {function}", imports=True)
    return found  # type: ignore[no-any-return]


def _load_local(file: Path, module_name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"stairway_catalog_{module_name}", file)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

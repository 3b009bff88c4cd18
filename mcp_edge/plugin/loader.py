"""Finding plugin folders and importing plugin code: each folder a package of its own, one per load.

A plugin folder is imported as the package ``mcp_edge_plugins.<id>.g<N>`` (``N`` counts loads in this
process), whose ``__path__`` is the folder; its module (``plugin.py`` or ``plugin/__init__.py``) is
``mcp_edge_plugins.<id>.g<N>.plugin``. The folder is never put on ``sys.path``, so two plugins that both ship
a ``helpers.py`` get two modules, and loading a plugin again (a reload) gives a new generation beside the
old one; ``purge`` removes a generation from ``sys.modules`` once nothing runs it.

Existing plugins import their helpers with a plain absolute ``import helpers``. That keeps working: every
module of a plugin package runs with its own ``__import__``, which turns a level-0 ``import X`` or
``from X import ...`` whose first name is a module of the plugin folder (``X.py``, a package ``X/`` with an
``__init__.py``, or an extension module ``X.*.so``) into an import of the plugin's own ``<package>.X``. Every
other name resolves as usual. (A meta path finder alone cannot do this: ``import helpers`` looks in
``sys.modules["helpers"]`` first, which is exactly the module one plugin would share with the next.)
``importlib.import_module`` is not rewritten: give it the relative name (``import_module(".helpers",
__package__)``).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.util
import itertools
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import PluginLoadError
from mcp_edge.plugin.manifest import MANIFEST

if TYPE_CHECKING:
    from mcp_edge.plugin.entrypoints import EntryPointInfo
    from mcp_edge.plugin.manifest import Manifest

__all__ = ["PACKAGE_ROOT", "class_from_entry_point", "class_from_folder", "import_folder", "manifest_folders",
           "purge"]

log = logging.getLogger("mcp_edge.plugin")

PACKAGE_ROOT = "mcp_edge_plugins"
_generations = itertools.count(1)


def manifest_folders(plugin_dirs: Sequence[Path]) -> list[Path]:
    """The plugin folders under ``plugin_dirs``: each one that holds a ``plugin.toml``, or its subfolders that do."""
    out: list[Path] = []
    for root in plugin_dirs:
        if (root / MANIFEST).is_file():
            out.append(root)
            continue
        try:
            children = sorted(root.iterdir())
        except OSError:
            log.debug("plugin folder %s: not readable or absent", root)
            continue
        out += [child for child in children if (child / MANIFEST).is_file()]
    return out


# --- the import machinery ------------------------------------------------------------------------------


class _FolderPackage:
    """One load of one plugin folder: its package name, the folder, and the builtins its modules run with."""

    __slots__ = ("builtins", "folder", "name", "siblings")

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self.siblings = _module_names(folder)
        self.builtins: dict[str, Any] = dict(vars(builtins))
        self.builtins["__import__"] = self._import

    def _import(self, name: str, globals: Mapping[str, Any] | None = None, locals: Mapping[str, Any] | None = None,
                fromlist: Sequence[str] | None = (), level: int = 0) -> ModuleType:
        """``__import__`` for this package's modules: a sibling's absolute name becomes the package's own."""
        real = builtins.__import__
        top = name.partition(".")[0]
        if level != 0 or top not in self.siblings:
            return real(name, globals, locals, fromlist, level)
        module = real(f"{self.name}.{name}", globals, locals, fromlist, 0)
        # ``import helpers.sub`` binds ``helpers``: the package's own, not mcp_edge_plugins
        return module if fromlist else sys.modules[f"{self.name}.{top}"]


def _module_names(folder: Path) -> frozenset[str]:
    """The top-level module names a folder provides: ``X.py``, ``X/__init__.py``, ``X<extension suffix>``."""
    names: set[str] = set()
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    try:
        entries = list(folder.iterdir())
    except OSError:
        return frozenset()
    for entry in entries:
        name = entry.name
        if name.endswith(".py"):
            names.add(name[:-3])
        elif (entry / "__init__.py").is_file():
            names.add(name)
        else:
            names.update(name[: -len(s)] for s in suffixes if name.endswith(s))
    return frozenset(n for n in names if n.isidentifier())


class _PluginSourceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that runs the module with its plugin package's builtins (and so its ``__import__``)."""

    def __init__(self, fullname: str, path: str, package: _FolderPackage) -> None:
        super().__init__(fullname, path)
        self._package = package

    def exec_module(self, module: ModuleType) -> None:
        module.__dict__["__builtins__"] = self._package.builtins
        super().exec_module(module)


class _PluginFinder:
    """Finds the modules of loaded plugin packages in their folders, with ``_PluginSourceLoader``.

    (A meta path finder by its ``find_spec``; not derived from ``importlib.abc.MetaPathFinder``, whose module
    imports ``importlib.resources``: milliseconds on every start.)
    """

    def __init__(self) -> None:
        self.packages: dict[str, _FolderPackage] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PACKAGE_ROOT + "."):
            return None
        package = self.packages.get(".".join(fullname.split(".", 3)[:3]))
        if package is None or fullname == package.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or spec.origin is None:
            return spec  # not found, a namespace package, or compiled code: nothing of ours to run in it
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PluginSourceLoader(fullname, spec.origin, package),
            submodule_search_locations=spec.submodule_search_locations,
        )


_finder = _PluginFinder()


def _install() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    for name in (PACKAGE_ROOT,):
        if name not in sys.modules:
            sys.modules[name] = _empty_package(name, "Plugins loaded from folders: <id>.g<N> per load.")


def _empty_package(name: str, doc: str) -> ModuleType:
    module = ModuleType(name, doc)
    module.__path__ = []
    module.__package__ = name
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    return module


def import_folder(manifest: Manifest) -> ModuleType:
    """Import the manifest's module as ``mcp_edge_plugins.<id>.g<N>.<module>``, a new generation each call.

    PluginLoadError when the module is not there; whatever the module raises otherwise, with its
    generation already purged.
    """
    assert manifest.module is not None
    folder, name = manifest.folder, manifest.module
    package_init = folder / name / "__init__.py"
    single = folder / f"{name}.py"
    if package_init.is_file():
        location, search = package_init, [str(package_init.parent)]
    elif single.is_file():
        location, search = single, None
    else:
        raise PluginLoadError(
            f"plugin {manifest.id}: no module {name!r} in {folder} (no {name}.py, no {name}/__init__.py)"
        )
    _install()
    cached = sys.path_importer_cache.get(str(folder))
    if isinstance(cached, importlib.machinery.FileFinder):  # files may have changed within its mtime granularity
        cached.invalidate_caches()
    plugin_pkg = f"{PACKAGE_ROOT}.{manifest.id.replace('-', '_')}"
    if plugin_pkg not in sys.modules:
        sys.modules[plugin_pkg] = _empty_package(plugin_pkg, f"The loads of plugin {manifest.id}.")
    package = _FolderPackage(f"{plugin_pkg}.g{next(_generations)}", folder)
    pkg_module = _empty_package(package.name, f"Plugin {manifest.id} from {folder}.")
    pkg_module.__path__ = [str(folder)]
    assert pkg_module.__spec__ is not None
    pkg_module.__spec__.submodule_search_locations = [str(folder)]
    _finder.packages[package.name] = package
    sys.modules[package.name] = pkg_module
    modname = f"{package.name}.{name}"
    try:
        spec = importlib.util.spec_from_file_location(
            modname, location, loader=_PluginSourceLoader(modname, str(location), package),
            submodule_search_locations=search,
        )
        if spec is None or spec.loader is None:
            raise PluginLoadError(f"plugin {manifest.id}: cannot import {location}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        spec.loader.exec_module(module)
    except BaseException:
        purge(package.name)
        raise
    return module


def purge(package: str) -> list[str]:
    """Forget one generation of a plugin package: every ``sys.modules`` entry that is it or under it (sorted).

    The plugin's objects that are still referenced stay usable; only the import system forgets them.
    """
    _finder.packages.pop(package, None)
    gone = sorted(name for name in sys.modules if name == package or name.startswith(package + "."))
    for name in gone:
        del sys.modules[name]
    return gone


# --- plugin classes ------------------------------------------------------------------------------------


def looks_like_plugin(obj: object, module: str) -> bool:
    """A class defined in ``module`` that has what a plugin needs (PluginBase itself excluded)."""
    from mcp_edge.plugin.api import PluginBase

    return (
        isinstance(obj, type)
        and obj.__module__ == module
        and obj is not PluginBase
        and callable(getattr(obj, "initialize", None))
        and callable(getattr(obj, "shutdown", None))
        and hasattr(obj, "capabilities")
    )


def class_from_folder(manifest: Manifest) -> tuple[type, str]:
    """The plugin class of a Python plugin folder and the package it was loaded as (for ``purge``)."""
    module = import_folder(manifest)
    package = module.__name__.rpartition(".")[0]
    try:
        if manifest.class_name is not None:
            cls = getattr(module, manifest.class_name, None)
            if not isinstance(cls, type):
                raise PluginLoadError(
                    f"plugin {manifest.id}: module {manifest.module} has no class {manifest.class_name}")
            return cls, package
        found: list[type] = [obj for obj in vars(module).values() if looks_like_plugin(obj, module.__name__)]
        if len(found) != 1:
            names = ", ".join(c.__name__ for c in found) or "none"
            raise PluginLoadError(
                f"plugin {manifest.id}: set 'class' in {manifest.path}: module {manifest.module} defines "
                f"{len(found)} plugin classes ({names})"
            )
        return found[0], package
    except BaseException:
        purge(package)
        raise


def class_from_entry_point(ep: EntryPointInfo) -> type:
    """The class an ``mcp_edge.plugins`` entry point names (an installed distribution: a normal import)."""
    module_name, _, attr = ep.value.partition(":")
    module = importlib.import_module(module_name.strip())
    obj: Any = module
    for part in attr.strip().split(".") if attr.strip() else []:
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise PluginLoadError(f"entry point {ep.name} = {ep.value} of {ep.dist}: not a class but {obj!r}")
    cls: type = obj
    return cls

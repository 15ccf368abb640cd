"""The package's one dependency direction, read from the import statements of every source file.

foundation (``zoo``, ``zoo.errors``) <- layers (plain ``torch.nn``) <- models (LightningModules); datamodules beside
the models, importing neither models nor layers; serving (registry, manifests, hub, export, evaluation, predict,
callbacks) above both; the command line and training machinery on top. A module imports only from its own group
and the groups below it, always at module level: no import hides in a function to dodge a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: group -> the groups it may import from (itself included).
ALLOWED = {
    "foundation": {"foundation"},
    "layers": {"foundation", "layers"},
    "models": {"foundation", "layers", "models"},
    "datamodules": {"foundation", "datamodules"},
    "serving": {"foundation", "layers", "models", "datamodules", "serving"},
    "cli": {"foundation", "layers", "models", "datamodules", "serving", "cli"},
}
SERVING = {"zoo.manifest", "zoo.registry", "zoo.checkpoint_trust", "zoo.preprocessing", "zoo.hub", "zoo.export",
           "zoo.evaluation", "zoo.predict", "zoo.writers"}
#: the functions that import a module named at run time, and why.
DYNAMIC_IMPORTS = {
    ("zoo", "__getattr__"): "zoo.load and friends, so `import zoo` stays light",
    ("zoo.cli", "handler"): "the subcommand that runs, so `zoo models` starts without torch",
    ("zoo.hub", "import_trusted"): "the class a manifest names, after checking it is the zoo's",
}


def group_of(module: str) -> str:
    if module in ("zoo", "zoo.errors", "zoo.lightning_compat"):  # compat: Lightning internals, no zoo import
        return "foundation"
    if module == "zoo.layers" or module.startswith("zoo.layers."):
        return "layers"
    if module == "zoo.models" or module.startswith("zoo.models."):
        return "models"
    if module == "datamodules" or module.startswith("datamodules."):
        return "datamodules"
    if module in SERVING:
        return "serving"
    return "cli"  # the command line, training and resume machinery, and any new top-level module


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = sorted([*REPO.glob("zoo/**/*.py"), *REPO.glob("datamodules/**/*.py"), REPO / "hubconf.py"])


def imported_modules(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolved against the importing package
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
        # `from zoo import hub` imports the module zoo.hub
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}".replace(".", "/") in MODULE_PATHS else base
                for alias in node.names]
    return []


MODULE_PATHS = {module_name(path).replace(".", "/") for path in SOURCES}


def own(module: str) -> bool:
    return module.split(".")[0] in ("zoo", "datamodules")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down_and_sit_at_module_level(path):
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    top_level |= {id(n) for node in tree.body if isinstance(node, (ast.If, ast.Try)) for n in ast.walk(node)}
    wrong = []
    for node in ast.walk(tree):
        modules = imported_modules(node, package)
        if modules and id(node) not in top_level:
            wrong.append(f"line {node.lineno}: function-level import of {', '.join(modules)}")
        for module in modules:
            if own(module) and group_of(module) not in ALLOWED[group_of(name)]:
                wrong.append(f"line {node.lineno}: {name} ({group_of(name)}) imports {module} ({group_of(module)})")
    assert not wrong, f"{path.relative_to(REPO)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_named_at_run_time_only_where_declared(path):
    name = module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        calls = [n for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr in ("import_module", "__import__")]
        assert not calls or (name, function.name) in DYNAMIC_IMPORTS, (
            f"{name}.{function.name} imports a module named at run time; import at module level, or declare why in "
            f"DYNAMIC_IMPORTS")


def test_the_rule_catches_an_upward_import(tmp_path):
    source = "from zoo.hub import load\n\ndef f():\n    import zoo.cli\n"
    tree = ast.parse(source)
    found = [m for node in ast.walk(tree) for m in imported_modules(node, "zoo.models")]
    assert "zoo.hub" in found and "zoo.cli" in found
    assert group_of("zoo.hub") not in ALLOWED[group_of("zoo.models.lenet")]
    assert group_of("zoo.models.base") not in ALLOWED[group_of("datamodules.mnist")]

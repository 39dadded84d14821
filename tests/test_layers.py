"""The package's import graph, read from the source with ast (imports inside functions included): no cycles, and
the layers run one way: explorer.ui -> service -> derived -> registry -> dcgan; dcgan never imports gradio."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dcgan", "explorer")
LAYERS = ["explorer.ui", "explorer.service", "explorer.derived", "explorer.registry"]  # each may import only those after it


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved; names of ``from x import y`` that
    are modules counted as modules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_graph_is_read_from_the_real_tree():
    g = graph()
    assert "explorer.ui.app" in g and "explorer.ui.tabs.sliders" in g
    assert "explorer.ui.context" in g["explorer.ui.tabs.sliders"] and "explorer.service" in g["explorer.ui.tabs.sliders"]
    assert "dcgan.directions" in g["explorer.derived"]


def test_no_module_imports_one_that_imports_it_back():
    g = graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert cycles == []


def layer(module: str) -> int | None:
    for i, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return None


def test_layers_import_only_downwards():
    wrong = []
    for module, imported in graph().items():
        mine = layer(module)
        for other in imported:
            theirs = layer(other)
            if mine is not None and theirs is not None and theirs < mine:
                wrong.append(f"{module} imports {other}")
            if module.startswith("dcgan") and other.startswith("explorer"):
                wrong.append(f"{module} imports {other}")
    assert wrong == []


def test_gradio_stays_in_the_ui():
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    users = sorted(module_name(p) for p in files if any(m == "gradio" or m.startswith("gradio.") for m in imports_of(p)))
    assert users and all(m.startswith("explorer.ui") for m in users), users

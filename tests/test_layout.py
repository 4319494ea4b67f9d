"""The shape of the code: the science library knows nothing of Dagster, no import cycle, no private Dagster API."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ace_neuro", "ace_assets", "resources", "sensors")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, resolved to absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_the_science_library_never_imports_dagster_or_the_dagster_code():
    for path in (REPO / "ace_neuro").rglob("*.py"):
        bad = {i for i in _imports(path) if i.split(".")[0] in ("dagster", "ace_assets", "resources", "sensors")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_no_private_dagster_api():
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            private = {i for i in _imports(path) if i.startswith("dagster._")}
            assert not private, f"{path.relative_to(REPO)} uses {sorted(private)}"


def test_no_import_cycle_between_the_platforms_modules():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a cycle of meaning: leave those edges out
    edges = {m: {d for d in deps if not (m + ".").startswith(d + ".") and not (d + ".").startswith(m + ".")}
             for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)

"""The package's modules import one way: no import cycle anywhere in `yolo_tools/`, function-level imports too.

A cycle means two stages depend on each other (reading a recipe loading every converter, conversion
depending on evaluation, ...), which is what keeps the next feature from fitting in. The graph is read
from the source with `ast`, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "yolo_tools"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, package: str) -> list[str]:
    """The dotted names a module imports: import statements (relative ones resolved against `package`) and
    `import_module(...)` / `__import__(...)` calls naming a module in a literal (or an f-string's leading text)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found += [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and node.args and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
            "import_module",
            "__import__",
        ):
            name = node.args[0]
            if isinstance(name, ast.JoinedStr) and name.values and isinstance(name.values[0], ast.Constant):
                name = name.values[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.append(name.value)
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _registered(path: Path) -> list[str]:
    """The modules a registry names as text and imports when used (`convert.registry.CONVERTERS`' `module` fields): edges
    too, or a reader importing back up would be a loop no import statement shows."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Converter" and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
    ]


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (a parent package importing its own children is not an edge,
    but the modules a registry names are: `_registered`)."""
    files = _modules()

    def owner(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target in _imports(ast.parse(path.read_text(encoding="utf-8")), package):
            found = owner(target) if target.startswith(PACKAGE.name) else None
            if found and found != name and not (path.name == "__init__.py" and found.startswith(f"{name}.")):
                graph[name].add(found)
        for target in _registered(path):
            graph[name].add(owner(target))
    return graph


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph seen a floor up: each module stands for its top-level package (`yolo_tools.convert.coco` is
    `yolo_tools.convert`; a top-level module stands for itself), so a loop here is two stages that need each other."""

    def stage(module: str) -> str:
        return ".".join(module.split(".")[:2])

    found: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == PACKAGE.name:
            continue
        found.setdefault(stage(module), set()).update(
            stage(t) for t in targets if stage(t) != stage(module) and t != PACKAGE.name
        )
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_holds_lazy_imports() -> None:
    graph = import_graph()
    assert "yolo_tools.engine" in graph["yolo_tools.pipeline"]
    assert "yolo_tools.convert.writer" in graph["yolo_tools.conversion"]
    assert "yolo_tools.convert.region_crops" in graph["yolo_tools.convert.registry"], "the registry's readers are edges"


def test_no_import_cycle_in_the_package() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (data should flow one way):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_package_view_sees_a_loop_between_stages() -> None:
    modules = {"yolo_tools.a.x": {"yolo_tools.b.y"}, "yolo_tools.b.y": set(), "yolo_tools.b.z": {"yolo_tools.a.w"}, "yolo_tools.a.w": set()}
    assert cycles(modules) == [], "no loop among the modules"
    assert cycles(package_graph(modules)) == [["yolo_tools.a", "yolo_tools.b"]], "but packages a and b need each other"


def test_no_loop_between_packages() -> None:
    """The folders read as the pipeline's stages only if no two of them need each other."""
    found = cycles(package_graph(import_graph()))
    assert not found, "packages that import each other:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_reading_a_recipe_imports_neither_ultralytics_nor_the_converters() -> None:
    """Nor pandas, SciPy or OpenCV: a recipe asks the tasks for their names and models, and the task modules (and
    the metrics, codecs and intensity rules they and the recipe import) load those libraries where they are used.
    Reading a recipe took about 1.1 s with them, 0.4 s without (docs/architecture.md)."""
    import subprocess
    import sys

    code = (
        "import sys; from yolo_tools.recipe import load_recipe; load_recipe('recipes/kidney.yaml'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ultralytics', 'torch', 'pandas', 'scipy', 'cv2') "
        "or m.startswith('yolo_tools.convert.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, check=True)
    assert done.stdout.strip() == "[]", done.stdout


# Each outside library behind one door: Ultralytics and torch are touched in the engine package alone
# (yolo_tools/engine/, split by role; engine/args.py reads Ultralytics' argument names and checks, lazily, so
# that reading a recipe stays cheap). FiftyOne's Ultralytics integration reads result objects, so it has no door.
# A door is a module, or a package and everything in it.
ENGINE = "yolo_tools.engine"
DOORS = {
    "ultralytics": {ENGINE},
    "torch": {ENGINE},
    "torchvision": set(),
    "fiftyone.utils.ultralytics": set(),
    "dicomweb_client": {"yolo_tools.sources.dicomweb"},  # QIDO/WADO/STOW-RS: the one module that talks to a PACS
    "highdicom": {"yolo_tools.imaging.dicom_series"},  # SEG read and written, SR written: one module
}
# What only an Ultralytics result (or its Boxes, Masks, Probs) has: read anywhere else, a result has leaked out.
RESULT_ATTRIBUTES = {"orig_img", "orig_shape", "probs", "xyxy", "xywh", "xywhn", "xyxyn", "top1conf", "top5"}


def _behind(name: str, doors: set[str]) -> bool:
    return any(name == door or name.startswith(f"{door}.") for door in doors)


def outside_library_users(sources: dict[str, str]) -> dict[str, list[str]]:
    """Library → the modules that import it though they are not behind its door, from module → source text."""
    found: dict[str, list[str]] = {}
    for name, text in sources.items():
        package = name.rpartition(".")[0]
        targets = _imports(ast.parse(text), package)
        for library, doors in DOORS.items():
            if not _behind(name, doors) and any(t == library or t.startswith(f"{library}.") for t in targets):
                found.setdefault(library, []).append(name)
    return found


def result_readers(sources: dict[str, str]) -> dict[str, list[str]]:
    """Module → the Ultralytics result attributes it reads, for every module outside the engine."""
    found = {}
    for name, text in sources.items():
        read = {node.attr for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Attribute)} & RESULT_ATTRIBUTES
        if read and not _behind(name, {ENGINE}):
            found[name] = sorted(read)
    return found


def test_the_door_check_sees_every_way_in() -> None:
    sources = {
        "yolo_tools.engine.trainer": "import torch\nfrom ultralytics import YOLO",
        "yolo_tools.engine_notes": "import torch",
        "yolo_tools.a": "def f():\n    import torch.nn",
        "yolo_tools.b": "from ultralytics.engine.results import Results",
        "yolo_tools.c": "from importlib import import_module\nimport_module(f'ultralytics.utils.{x}')",
        "yolo_tools.d": "import fiftyone.utils.ultralytics as fou\nimport numpy\nimport torchmetrics",
    }
    assert outside_library_users(sources) == {
        "torch": ["yolo_tools.engine_notes", "yolo_tools.a"],
        "ultralytics": ["yolo_tools.b", "yolo_tools.c"],
        "fiftyone.utils.ultralytics": ["yolo_tools.d"],
    }
    assert result_readers({"yolo_tools.e": "image = result.orig_img", "yolo_tools.engine.results": "p = r.probs"}) == {
        "yolo_tools.e": ["orig_img"]
    }


def test_only_the_engine_touches_ultralytics_and_torch() -> None:
    sources = {name: path.read_text(encoding="utf-8") for name, path in _modules().items()}
    users = outside_library_users(sources)
    assert not users, "import these only in yolo_tools/engine/ (predictions leave it as prediction.Prediction):\n" + "\n".join(
        f"{library}: {', '.join(names)}" for library, names in users.items()
    )
    readers = result_readers(sources)
    assert not readers, f"Ultralytics result attributes read outside the engine (use Prediction's fields): {readers}"

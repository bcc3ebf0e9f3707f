"""The package's imports run one way, down its layers (README, Layout), with no circle: read from
the source with ``ast``, imports inside functions included."""
import ast
import collections
import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

# Top to bottom, as the README's Layout draws them. A module imports from its own layer (without
# a circle) and the layers below. "pkg.*" is everything in pkg, pkg/__init__.py included; an
# exact name wins over a pattern.
LAYERS = (
    ("facade", ("bisenet", "bisenet.__main__")),
    ("commands", ("bisenet.commands",)),
    ("cli", ("bisenet.cli",)),
    ("applications", ("bisenet.engine.*", "bisenet.plots.*", "bisenet.demo", "bisenet.benchmark")),
    ("inference", ("bisenet.inference", "bisenet.config_check")),
    ("model files", ("bisenet.checkpoint", "bisenet.checkpointer", "bisenet.convert", "bisenet.weights",
                     "bisenet.deploy.*")),
    ("components", ("bisenet.data.*", "bisenet.models.*", "bisenet.losses", "bisenet.optim", "bisenet.lr_scheduler",
                    "bisenet.metrics")),
    ("config", ("bisenet.config", "bisenet.data", "bisenet.data.cityscapes", "bisenet.data.cocostuff",
                "bisenet.data.ade20k", "bisenet.data.camvid", "bisenet.data.palettes")),
    ("foundation", ("bisenet.errors", "bisenet.outputs", "bisenet.processes", "bisenet.resources", "bisenet.rng",
                    "bisenet.signals", "bisenet.distributed", "bisenet.progress")),
)

Edge = collections.namedtuple("Edge", "source target path line in_function")


def package_modules(package_dir):
    """Dotted name -> (path, is a package's __init__) of every module under ``package_dir``."""
    package_dir = Path(package_dir)
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _absolute(node, module, is_package):
    """The module an ``ImportFrom`` names, relative imports resolved."""
    if not node.level:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(path, module, is_package, known):
    """``(module imported, line, inside a function)`` of every import in ``path``;
    ``from pkg import name`` imports ``pkg.name`` when that is a module, else ``pkg``."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, module, is_package)
                submodules = [f"{base}.{a.name}" for a in child.names if f"{base}.{a.name}" in known]
                if len(submodules) < len(child.names):
                    found.append((base, child.lineno, in_function))
                found.extend((name, child.lineno, in_function) for name in submodules)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def import_graph(package_dir):
    """Every import between the modules of ``package_dir``, as ``Edge``s. Importing ``a.b.c``
    also runs ``a/b/__init__.py``, an edge too, unless it is a package of the importer itself
    (already running when the importer runs: so the root package is never one)."""
    known = package_modules(package_dir)
    edges = []
    for module, (path, is_package) in known.items():
        own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)} | ({module} if is_package
                                                                                              else set())
        for target, line, in_function in _imported(path, module, is_package, known):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                if name in known and name != module and not (i < len(parts) and name in own):
                    edges.append(Edge(module, name, path, line, in_function))
    return known, edges


def layer_of(module, layers):
    """``(index from the top, name)`` of the layer that lists ``module``, or None."""
    best = None
    for index, (name, patterns) in enumerate(layers):
        for pattern in patterns:
            if module == pattern:
                return index, name
            if pattern.endswith(".*") and (module == pattern[:-2] or fnmatch.fnmatch(module, pattern)):
                if best is None or len(pattern) > best[0]:
                    best = len(pattern), (index, name)
    return best and best[1]


def _circles(modules, edges):
    """The strongly connected components of more than one module (Tarjan), each with one circle
    through it as a list of edges."""
    after = collections.defaultdict(dict)
    for edge in edges:
        after[edge.source].setdefault(edge.target, edge)
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in after[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or w != v:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
            components.append(component)

    for v in sorted(modules):
        if v not in index:
            connect(v)
    circles = []
    for component in (c for c in components if len(c) > 1):
        start = min(component)
        way = {start: []}  # breadth first, within the component: the shortest way back to start
        queue = collections.deque([start])
        while queue:
            v = queue.popleft()
            for w, edge in sorted(after[v].items()):
                if w == start:
                    circles.append(way[v] + [edge])
                    queue.clear()
                    break
                if w in component and w not in way:
                    way[w] = way[v] + [edge]
                    queue.append(w)
    return circles


def layer_problems(package_dir, layers):
    """Readable lines: modules no layer lists, circles, and imports of a higher layer."""
    root = Path(package_dir).parent
    modules, edges = import_graph(package_dir)
    problems = [f"{module} ({path.relative_to(root)}) is in no layer: add it to LAYERS"
                for module, (path, _) in modules.items() if layer_of(module, layers) is None]
    for circle in _circles(modules, edges):
        steps = ", ".join(f"{e.path.relative_to(root)}:{e.line}" + (" (in a function)" if e.in_function else "")
                          for e in circle)
        problems.append("import circle: " + " -> ".join([circle[0].source] + [e.target for e in circle])
                        + f" ({steps})")
    for edge in sorted(set(edges), key=lambda e: (str(e.path), e.line, e.target)):
        low, high = layer_of(edge.source, layers), layer_of(edge.target, layers)
        if low and high and high[0] < low[0]:
            problems.append(f"{edge.path.relative_to(root)}:{edge.line}: {edge.source} ({low[1]}) imports "
                            f"{edge.target} ({high[1]}), a higher layer")
    return problems


def test_the_package_imports_one_way_down_its_layers():
    problems = layer_problems(os.path.join(REPO, "bisenet"), LAYERS)
    assert not problems, "\n".join(problems)


def write_package(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "fake"


def test_the_check_finds_circles_upward_imports_and_modules_without_a_layer(tmp_path):
    package = write_package(tmp_path, {
        "fake/__init__.py": "",
        "fake/high.py": "import fake.a\n",
        "fake/low.py": "import os\n\n\ndef late():\n    import fake.high\n",  # upward, inside a function
        "fake/a.py": "from fake.b import thing\n",
        "fake/b.py": "from . import a\n\nthing = 1\n",  # a circle with a, through a relative import
        "fake/pkg/__init__.py": "",
        "fake/pkg/sub.py": "from .. import a\n",
        "fake/c.py": "from fake.pkg.sub import x\n",  # also runs fake/pkg/__init__.py
    })
    layers = [("top", ("fake.high", "fake.pkg")), ("bottom", ("fake", "fake.low", "fake.a", "fake.b", "fake.pkg.*"))]
    assert layer_problems(package, layers) == [
        "fake.c (fake/c.py) is in no layer: add it to LAYERS",
        "import circle: fake.a -> fake.b -> fake.a (fake/a.py:1, fake/b.py:1)",
        "fake/low.py:5: fake.low (bottom) imports fake.high (top), a higher layer"]
    # Without the circle, and with c in the bottom layer: its import of fake.pkg.sub runs the
    # higher fake/pkg/__init__.py.
    (package / "b.py").write_text("thing = 1\n")
    layers[1] = ("bottom", layers[1][1] + ("fake.c",))
    assert layer_problems(package, layers) == [
        "fake/c.py:1: fake.c (bottom) imports fake.pkg (top), a higher layer",
        "fake/low.py:5: fake.low (bottom) imports fake.high (top), a higher layer"]


def test_every_module_of_the_package_is_in_one_layer_of_the_table():
    listed = [p for _, patterns in LAYERS for p in patterns]
    assert len(listed) == len(set(listed))
    modules = package_modules(os.path.join(REPO, "bisenet"))
    unused = [p for p in listed if not any(m == p or fnmatch.fnmatch(m, p) for m in modules)]
    assert not unused, f"LAYERS names what is not in the package: {unused}"


def test_the_readme_draws_these_layers_top_to_bottom():
    readme = Path(REPO, "README.md").read_text()
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    lines = layout.splitlines()
    positions = [next((i for i, line in enumerate(lines) if line.lstrip().startswith(name + " ")), None)
                 for name, _ in LAYERS]
    assert None not in positions, f"README's Layout lacks a layer of {[name for name, _ in LAYERS]}"
    assert positions == sorted(positions), "README's Layout draws the layers in another order than LAYERS"


@pytest.mark.parametrize("module, unwanted", [
    ("bisenet.errors", ("torch", "bisenet.config", "bisenet.models")),
    ("bisenet.config", ("torch", "bisenet.models", "bisenet.inference", "bisenet.data.dataset")),
])
def test_importing_a_low_module_loads_nothing_above_it(module, unwanted):
    # the root package is a lazy facade: it does not pull the whole package into every import
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split())
    assert module in loaded and not loaded & set(unwanted), sorted(loaded & set(unwanted))

"""The import graph of autograd_lite and gmvae_np, read from the source with ``ast``: it has no cycle,
the engine never imports the model, and no module imports one of a higher layer (``LAYERS``).

Every import counts, at module level or inside a function: a function-level import is still a
dependency, only a later one. A new module must be given a layer in ``LAYERS``; the test says so.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("autograd_lite", "gmvae_np")

LAYERS = {
    # the engine, bottom up: where arrays live, randomness, the graph, the primitives, what is built on them
    "autograd_lite.backend": 0,
    "autograd_lite.random": 1,
    "autograd_lite.tensor": 2,
    "autograd_lite.ops": 3,
    "autograd_lite.conv": 4,
    "autograd_lite.norm": 4,
    "autograd_lite.functional": 4,
    "autograd_lite.gradcheck": 5,
    "autograd_lite.viz": 5,
    "autograd_lite.profiler": 3,              # needs only the graph (tensor.py)
    "autograd_lite.threads": 0,               # needs nothing of the engine
    "autograd_lite": 6,                      # the package: re-exports the engine
    # the model package, bottom up
    "gmvae_np.version": 10,
    "gmvae_np.atomic": 10,
    "gmvae_np.metrics": 10,
    "gmvae_np.stops": 10,
    "gmvae_np.module": 11,
    "gmvae_np.layers": 12,
    "gmvae_np.optim": 12,
    "gmvae_np.elbo": 12,
    "gmvae_np.diagnostics": 12,
    "gmvae_np.schedule": 12,
    "gmvae_np.augment": 12,
    "gmvae_np.neighbours": 12,
    "gmvae_np.snapshot": 12,
    "gmvae_np.config": 12,
    "gmvae_np.model": 13,
    "gmvae_np.progress": 13,
    "gmvae_np.batches": 13,
    "gmvae_np.data.dataset": 13,
    "gmvae_np.data.spiral": 13,
    "gmvae_np.data.mnist": 13,
    "gmvae_np.data.features": 13,
    "gmvae_np.data.matrix": 13,
    "gmvae_np.checkpoint": 14,
    "gmvae_np.data": 14,
    "gmvae_np.presets": 14,
    "gmvae_np.pretrain": 14,
    "gmvae_np.parallel": 14,
    "gmvae_np.experiment": 15,
    "gmvae_np.rundir": 15,
    "gmvae_np.runread": 15,
    "gmvae_np.plots.common": 16,
    "gmvae_np.plots.curves": 16,
    "gmvae_np.plots.images": 16,
    "gmvae_np.plots.plane": 16,
    "gmvae_np.plots.vectors": 16,
    "gmvae_np.plots": 16,
    "gmvae_np.trainstate": 16,
    "gmvae_np.train": 17,
    "gmvae_np.restarts": 18,
    "gmvae_np.estimator": 19,
    "gmvae_np.series": 19,
    "gmvae_np.cli": 20,
    "gmvae_np": 21,                          # the package: re-exports the model
}


# -- reading the imports ----------------------------------------------------------------------------------

def module_files(root: Path = ROOT) -> dict:
    """{dotted module name: path} for every .py file of the two packages (a package is its __init__)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported_modules(path: Path, name: str, known) -> set:
    """The modules of ``known`` that the file of module ``name`` imports, anywhere in the file.

    ``from P import x`` imports the module P.x when there is one, else P itself (x is an attribute of
    P); relative imports are resolved against the module's package.
    """
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # import a.b.c names a.b.c, or its nearest known parent
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT) -> dict:
    files = module_files(root)
    return {name: imported_modules(path, name, files) for name, path in files.items()}


def find_cycle(graph: dict) -> list | None:
    """One cycle of the directed graph {node: set of nodes}, as [a, b, ..., a]; None when there is none."""
    state, stack = {}, []   # state: 1 while on the current path, 2 when finished

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def upward_imports(graph: dict, layers: dict) -> list:
    """The imports that go from a module to one of a higher layer: [(importer, imported)]."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if layers[b] > layers[a])


# -- the rules ----------------------------------------------------------------------------------------------

GRAPH = import_graph()


def test_every_module_has_a_layer():
    missing = sorted(set(GRAPH) - set(LAYERS))
    assert not missing, (f"module(s) {', '.join(missing)} have no layer: add each to LAYERS in "
                         f"tests/test_imports.py, at the layer of the modules it imports or above")
    gone = sorted(set(LAYERS) - set(GRAPH))
    assert not gone, f"LAYERS names module(s) that do not exist: {', '.join(gone)}; remove them"


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_engine_never_imports_the_model():
    bad = sorted((a, b) for a, targets in GRAPH.items() if a.split(".")[0] == "autograd_lite"
                 for b in targets if b.split(".")[0] == "gmvae_np")
    assert not bad, f"autograd_lite imports gmvae_np: {bad}"


def test_lower_layers_never_import_higher_ones():
    if set(GRAPH) - set(LAYERS):
        pytest.skip("a module has no layer (see test_every_module_has_a_layer)")
    bad = upward_imports(GRAPH, LAYERS)
    assert not bad, "upward import(s): " + "; ".join(f"{a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})"
                                                      for a, b in bad)


def test_the_engine_sits_below_the_model():
    engine = [LAYERS[m] for m in LAYERS if m.split(".")[0] == "autograd_lite"]
    model = [LAYERS[m] for m in LAYERS if m.split(".")[0] == "gmvae_np"]
    assert max(engine) < min(model)


# -- the checks themselves fail when they should --------------------------------------------------------

def test_find_cycle_finds_a_synthetic_cycle_and_passes_a_tree():
    tree = {"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}   # a diamond: shared, but no cycle
    assert find_cycle(tree) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({**tree, "d": {"b"}}) == ["b", "d", "b"]
    assert find_cycle({"x": {"x"}}) == ["x", "x"]
    assert upward_imports({"low": {"high"}, "high": set()}, {"low": 0, "high": 1}) == [("low", "high")]
    assert upward_imports(tree, {"a": 2, "b": 1, "c": 1, "d": 0}) == []


def test_the_reader_sees_every_kind_of_import(tmp_path):
    """Module-level and function-level, absolute and relative, 'import P.m' and 'from P import m'; the
    cycle the engine once had (tensor importing ops inside its methods) is found."""
    pkg = tmp_path / "autograd_lite"
    pkg.mkdir()
    (tmp_path / "gmvae_np").mkdir()
    (tmp_path / "gmvae_np" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .tensor import Tensor\n")
    (pkg / "backend.py").write_text("import numpy as np\n")
    (pkg / "tensor.py").write_text("from .backend import get_backend\n\nclass Tensor:\n"
                                   "    def __add__(self, other):\n        from . import ops\n"
                                   "        return ops.add(self, other)\n")
    (pkg / "ops.py").write_text("import autograd_lite.tensor\nfrom autograd_lite import backend\n"
                                "def f():\n    import gmvae_np\n")
    graph = import_graph(tmp_path)
    assert graph["autograd_lite.tensor"] == {"autograd_lite.backend", "autograd_lite.ops"}
    assert graph["autograd_lite.ops"] == {"autograd_lite.tensor", "autograd_lite.backend", "gmvae_np"}
    assert graph["autograd_lite"] == {"autograd_lite.tensor"}
    assert find_cycle(graph) == ["autograd_lite.tensor", "autograd_lite.ops", "autograd_lite.tensor"]


def test_the_license_is_an_spdx_string_for_a_setuptools_that_reads_it():
    """pyproject's license as a TOML table makes every install print a screen of deprecation warnings; the
    SPDX string needs setuptools >= 77, which the build requires."""
    import re

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^license = "MIT"$', text, re.M), "license must be the SPDX string \"MIT\""
    required = re.search(r'^requires = \["setuptools>=(\d+)', text, re.M)
    assert required and int(required.group(1)) >= 77, "the SPDX license needs setuptools >= 77"

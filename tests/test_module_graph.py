"""The package's module graph: one way, no cycles, no private names across modules, fast/ kept apart.

Read from the source with ``ast`` (imports inside functions count too):

- no import cycle among the modules of ``maf_numpy``;
- no module imports a private name (``_x``) from another module, except ``fast/`` reading the reference's
  internals;
- the layer modules (masks, made, transforms, mog, agnostic) never import ``maf_numpy.fast``, and the reference
  core (masks, made, transforms) cannot reach it even indirectly;
- only ``flow`` (which chooses kernels, in ``Flow.run``), ``train``, ``vi`` and ``adam`` (which choose their
  optimiser) and the package's ``__init__`` import ``maf_numpy.fast``.
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "maf_numpy")


def module_files():
    """{module name: path} for every .py file of the package, e.g. "maf_numpy.transforms.affine"."""
    files = {}
    for folder, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                files[".".join(parts)] = path
    return files


MODULES = module_files()


def imports(module):
    """[(imported module, imported name or None, line)] for every intra-package import in ``module``."""
    path = MODULES[module]
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names if alias.name.startswith("maf_numpy")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("maf_numpy"):
                target = node.module
            else:
                continue
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:  # from . import masks: the module itself
                    found.append((f"{target}.{alias.name}", None, node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return found


def graph():
    return {module: sorted({target for target, _, _ in imports(module) if target != module}) for module in MODULES}


def reachable(start, edges):
    seen, stack = set(), [start]
    while stack:
        for target in edges.get(stack.pop(), []):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def test_the_graph_covers_the_package():
    assert {"maf_numpy.made", "maf_numpy.transforms.affine", "maf_numpy.fast.solver", "maf_numpy.flow",
            "maf_numpy.flows"} <= set(MODULES)
    assert "maf_numpy.made" in graph()["maf_numpy.transforms.autoregressive"]


def test_there_is_no_import_cycle():
    edges = graph()
    cycles = [module for module in edges if module in reachable(module, edges)]
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_no_private_name_is_imported_across_modules_except_by_fast():
    offenders = [f"{module}:{line} imports {name} from {target}" for module in MODULES
                 if not module.startswith("maf_numpy.fast")
                 for target, name, line in imports(module) if name and name.startswith("_")]
    assert not offenders, offenders


@pytest.mark.parametrize("module", ["maf_numpy.masks", "maf_numpy.made", "maf_numpy.transforms",
                                    "maf_numpy.transforms.affine", "maf_numpy.transforms.autoregressive",
                                    "maf_numpy.transforms.coupling", "maf_numpy.transforms.normalization"])
def test_the_reference_core_cannot_reach_the_fast_package(module):
    reached = reachable(module, graph())
    assert not any(target.startswith("maf_numpy.fast") for target in reached), sorted(reached)


@pytest.mark.parametrize("module", ["maf_numpy.mog", "maf_numpy.agnostic"])
def test_the_other_layer_modules_do_not_import_the_fast_package(module):
    assert not any(target.startswith("maf_numpy.fast") for target in graph()[module])


def test_only_the_flows_and_the_optimisers_choose_fast_kernels():
    importers = {module for module, targets in graph().items() if not module.startswith("maf_numpy.fast")
                 and any(target.startswith("maf_numpy.fast") for target in targets)}
    assert importers == {"maf_numpy", "maf_numpy.flow", "maf_numpy.train", "maf_numpy.vi", "maf_numpy.adam"}

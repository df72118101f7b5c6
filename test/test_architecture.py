"""The package's architecture, held by tests: layers without cycles, small modules and short
functions, imports at the top, and an ONNX model that runs without torch, onnx or rosbags (the
import-linter contracts in pyproject.toml hold the layer order and the imports themselves)."""

from __future__ import annotations

import ast
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import grimp
import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'action_recognition'
MAX_LINES = 500
MAX_FUNCTION_LINES = 80


def _lazy_edges() -> set[tuple[str, str]]:
    """The imports the forbidden contract ignores: made inside a function, on purpose."""
    config = tomllib.loads((ROOT / 'pyproject.toml').read_text(encoding='utf-8'))
    edges = set()
    for contract in config['tool']['importlinter']['contracts']:
        for line in contract.get('ignore_imports', []):
            importer, imported = (part.strip() for part in line.split('->'))
            edges.add((importer, imported))
    return edges


@pytest.fixture(scope='module')
def graph():
    return grimp.build_graph('action_recognition')


def _package(module: str) -> str:
    return '.'.join(module.split('.')[:2])


def test_no_import_cycle_between_modules(graph):
    cycles = sorted({tuple(sorted((module, imported)))
                     for module in graph.modules
                     for imported in graph.find_modules_directly_imported_by(module)
                     if graph.chain_exists(importer=imported, imported=module)})
    assert not cycles, cycles


def test_no_import_cycle_between_packages(graph):
    edges = {(_package(module), _package(imported))
             for module in graph.modules
             for imported in graph.find_modules_directly_imported_by(module)
             if _package(module) != _package(imported)
             and not (module == 'action_recognition' or imported == 'action_recognition')}
    both_ways = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
    assert not both_ways, both_ways


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob('*.py'))


def test_modules_stay_small_or_say_why():
    too_long = []
    for path in _modules():
        lines = path.read_text(encoding='utf-8').count('\n')
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding='utf-8'))) or ''
        if f'over {MAX_LINES} lines' not in docstring:
            too_long.append(f'{path.relative_to(ROOT)}: {lines} lines')
    assert not too_long, too_long


def test_imports_inside_functions_are_optional_heavy_dependencies_with_a_reason():
    lazy = _lazy_edges()
    offenders = []
    for path in _modules():
        module = '.'.join(path.relative_to(ROOT).with_suffix('').parts)
        text = path.read_text(encoding='utf-8')
        lines = text.splitlines()
        for function in ast.walk(ast.parse(text)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) \
                    else [node.module or '']
                where = f'{path.relative_to(ROOT)}:{node.lineno}'
                if any(name.startswith('action_recognition') and (module, name) not in lazy
                       for name in names):
                    offenders.append(f'{where}: imports the package inside a function (only '
                                     "the contract's declared lazy edges may)")
                    continue
                # The reason is a comment on the import's line or on the lines just above the
                # block of imports it belongs to.
                start = node.lineno - 1
                while start > 0 and lines[start - 1].strip().startswith(('import ', 'from ')):
                    start -= 1
                context = lines[max(0, start - 3):node.end_lineno]
                if not any('#' in line for line in context):
                    offenders.append(f'{where}: {names} without a comment saying why')
    assert not offenders, offenders


def test_functions_stay_short():
    """No function over MAX_FUNCTION_LINES lines (docstring included) but tables of data: a
    function most of whose lines are one literal."""
    too_long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            if length <= MAX_FUNCTION_LINES:
                continue
            literals = [item for item in ast.walk(node)
                        if isinstance(item, (ast.Dict, ast.List, ast.Tuple, ast.Set))]
            largest = max((item.end_lineno - item.lineno + 1 for item in literals), default=0)
            if largest < 0.8 * length:
                too_long.append(f'{path.relative_to(ROOT)}:{node.lineno} {node.name}: '
                                f'{length} lines')
    assert not too_long, too_long


LEAN_RUN = textwrap.dedent("""
    import sys
    from types import SimpleNamespace

    import numpy as np

    from action_recognition.node.core import NodeCore
    from action_recognition.node.parameters import parse_parameters

    core = NodeCore(parse_parameters({'hop': 1, 'score_threshold': 0.0}))
    rng = np.random.default_rng(0)
    results = []
    for i in range(20):
        frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        stamp = SimpleNamespace(sec=100 + i // 30, nanosec=(i % 30) * 33_333_333)
        msg = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='cam'), height=48,
                              width=64, encoding='rgb8', is_bigendian=0, step=64 * 3,
                              data=frame.tobytes())
        core.on_image_msg(msg)
        results += core.step()
    core.close()
    assert core.slot.model.path.suffix == '.onnx', core.slot.model.path
    heavy = sorted(name for name in ('torch', 'onnx', 'rosbags') if name in sys.modules)
    print(len(results), heavy)
""")


def test_the_node_runs_the_shipped_onnx_model_without_torch_onnx_or_rosbags():
    """What the import-linter contract says statically, at run time: a fresh interpreter runs
    the node core on the shipped ONNX model and has imported none of them."""
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    done = subprocess.run([sys.executable, '-c', LEAN_RUN], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    count, heavy = done.stdout.split(maxsplit=1)
    assert int(count) == 5 and heavy.strip() == '[]', done.stdout

"""The package's architecture, held by tests: layers without cycles, small modules, and imports
at the top (the import-linter contract in pyproject.toml holds the layer order itself)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'action_recognition'
MAX_LINES = 500


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
    offenders = []
    for path in _modules():
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
                if any(name.startswith('action_recognition') for name in names):
                    offenders.append(f'{where}: imports the package inside a function')
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

"""Writing files without losing any: unique temporary names, atomic publication, no clobbering.

Every command that writes a file or a directory goes through this module:

- :func:`check_output` refuses an output that is one of the command's inputs (always, even with
  ``force``) and an output that exists already unless ``force`` is given
  (:class:`OutputExistsError`, whose message names the ``--force`` option).
- :func:`atomic_path` / :func:`atomic_dir` give a fresh temporary file or directory with a unique
  name (``mkstemp``/``mkdtemp``: created exclusively, never through a symlink planted at a
  predictable name) in the target's own folder, and publish it under the final name only when
  the block ends without an exception: with ``os.replace`` when overwriting is allowed, with a
  hard link (which fails if the name was taken in the meantime) when it is not. On an exception
  the temporary is removed and nothing is left at the final name.
- :func:`remove_stale_temporaries` deletes the temporaries a killed process left behind (names
  made by this module for one target only).

A reader of the final name therefore sees either the previous file or the complete new one,
never a partial file.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import shutil
import tempfile

__all__ = [
    'OutputExistsError', 'SameAsInputError', 'check_output', 'atomic_path', 'atomic_dir',
    'atomic_write_bytes', 'publish', 'remove_stale_temporaries', 'temporary_prefix',
    'TEMP_SUFFIX',
]

TEMP_SUFFIX = '.tmp'


class OutputExistsError(FileExistsError):
    """The output exists and overwriting was not asked for (``--force``)."""


class SameAsInputError(ValueError):
    """The output is one of the inputs: writing it would destroy the input."""


def temporary_prefix(path: str | os.PathLike[str]) -> str:
    """The prefix of every temporary this module makes for ``path``: ``.<name>.``."""
    return f'.{Path(path).name}.'


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(path: str | os.PathLike[str], *, force: bool = False,
                 inputs: Iterable[str | os.PathLike[str] | None] = (),
                 what: str = 'output') -> Path:
    """Refuse writing ``path`` when it is an input, or exists and ``force`` is false.

    An input that is a directory (a rosbag2 recording, a data set) also protects everything
    inside it. Returns ``path`` as a :class:`Path`.
    """
    path = Path(path)
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        if _same(path, source):
            raise SameAsInputError(f'{what} {path} is the input {source}: refusing to overwrite '
                                   'it (choose another output)')
        if source.is_dir():
            resolved = path.resolve()
            if resolved == source.resolve() or source.resolve() in resolved.parents:
                raise SameAsInputError(f'{what} {path} is inside the input {source}: refusing '
                                       'to write there (choose another output)')
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputExistsError(f'{what} {path} exists already; pass --force to replace it')
    return path


def publish(temporary: Path, path: Path, *, force: bool) -> None:
    """Move the finished ``temporary`` (a file) to ``path`` in one step.

    ``force``: replace an existing ``path`` (``os.replace``). Otherwise ``path`` must not exist:
    a hard link claims the name atomically (``FileExistsError`` if it was taken meanwhile), then
    the temporary name is removed.
    """
    if force:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputExistsError(f'{path} appeared while it was being written; the new file is '
                                f'kept as {temporary}') from None
    except OSError:
        # File systems without hard links: check, then rename (a small race remains).
        if path.exists() or path.is_symlink():
            raise OutputExistsError(f'{path} appeared while it was being written; the new file '
                                    f'is kept as {temporary}') from None
        os.rename(temporary, path)
        return
    os.unlink(temporary)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, force: bool = False,
                keep_suffix: bool = True) -> Iterator[Path]:
    """A unique temporary file beside ``path``; published as ``path`` when the block succeeds.

    The temporary keeps ``path``'s suffix when ``keep_suffix`` (writers such as OpenCV's pick the
    container from it): ``.<name>.<random>.tmp<suffix>``. It exists (empty, mode 0644) when the
    block starts; the block writes it by name. On an exception it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = TEMP_SUFFIX + (path.suffix if keep_suffix else '')
    handle, name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=suffix,
                                    dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        yield temporary
        publish(temporary, path, force=force)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *,
                       force: bool = False) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`, flushed to disk first."""
    path = Path(path)
    with atomic_path(path, force=force) as temporary, temporary.open('wb') as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """A unique temporary directory ``.<name>.<random>.tmp/<name>`` published as ``path``.

    The directory the block fills has ``path``'s own name (tools such as rosbag2 name the files
    inside after their directory); it lives in a unique temporary parent beside ``path``. When
    the block succeeds it is renamed to ``path``; with ``force`` an existing ``path`` is moved
    aside first and deleted after the new one is in place. On an exception everything temporary
    is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix=temporary_prefix(path), suffix=TEMP_SUFFIX,
                                   dir=path.parent))
    try:
        os.chmod(holder, 0o755)
        inner = holder / path.name
        yield inner
        if not inner.exists():
            inner.mkdir()
        old: Path | None = None
        if path.exists() or path.is_symlink():
            if not force:
                raise OutputExistsError(f'{path} appeared while it was being written')
            old = holder / (path.name + '.old')
            os.rename(path, old)
        os.rename(inner, path)
    except BaseException:
        shutil.rmtree(holder, ignore_errors=True)
        raise
    shutil.rmtree(holder, ignore_errors=True)


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries of ``path`` (files or directories) a killed writer left behind.

    Only names this module makes for exactly this target are touched
    (``.<name>.<random>.tmp[suffix]``). Returns what was removed.
    """
    path = Path(path)
    prefix = temporary_prefix(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.iterdir():
        name = candidate.name
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        core, dot, _suffix = rest.partition(TEMP_SUFFIX)
        if not dot or not core or '.' in core:
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed

"""Settings declared once: frozen dataclasses whose fields carry type, default, range and text.

A group of settings is a frozen dataclass deriving from :class:`Settings`, whose fields are made
with :func:`setting`: the default (its Python type is the setting's type), a description, an
inclusive range for a number, choices or a pattern for a string, and when a change takes effect
in a running node (``'runtime'``, ``'reload'``: the model is reloaded, ``'startup'``). Everything
else is derived from those fields:

- validation: constructing a group converts and checks every value (:func:`convert`), then runs
  the group's own cross-field :meth:`Settings.rules`; :class:`SettingsError` gives every reason;
- the command-line flags (:func:`add_arguments`, :func:`from_arguments`);
- the node's parameters, their ``ParameterDescriptor`` and the shipped YAML config
  (:mod:`action_recognition.node.parameters`, :mod:`action_recognition.ros.node`).

Fields made without :func:`setting` are options for code (not parameters, not flags); a group
checks them in its :meth:`~Settings.rules`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
import math
import re
from typing import Any
from typing import Literal
from typing import TypeVar

import numpy as np

__all__ = ['Applies', 'SettingValue', 'SettingInfo', 'SettingsError', 'Settings', 'setting',
           'settings_of', 'convert', 'add_arguments', 'from_arguments']

Applies = Literal['runtime', 'reload', 'startup']
SettingValue = bool | int | float | str

_KEY = 'action_recognition.setting'
S = TypeVar('S', bound='Settings')


class SettingsError(ValueError):
    """Settings that were refused; the message gives every reason, joined by ``'; '``."""


@dataclass(frozen=True)
class SettingInfo:
    """What one setting is.

    Attributes:
        name: the field's name (the node parameter's name, ``--name-with-dashes`` on the CLI).
        default: the default; its Python type is the setting's type.
        description: what ``ros2 param describe`` and ``--help`` say.
        minimum, maximum: inclusive range of a number.
        choices: the values a string may take.
        pattern, pattern_hint: a regular expression a string must match in full, and what it
            means (for the refusal).
        applies: when a change takes effect in a running node.
        flags: command-line flags (default: ``--`` and the name with dashes).
    """

    name: str
    default: SettingValue
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    pattern_hint: str = ''
    applies: Applies = 'runtime'
    flags: tuple[str, ...] = ()

    @property
    def type(self) -> type:
        return type(self.default)

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or ('--' + self.name.replace('_', '-'),)


def setting(default: SettingValue, description: str, *, minimum: float | None = None,
            maximum: float | None = None, choices: tuple[str, ...] = (),
            pattern: str | None = None, pattern_hint: str = '', applies: Applies = 'runtime',
            flags: tuple[str, ...] = ()) -> Any:
    """A dataclass field that is a setting (see :class:`SettingInfo` for the arguments)."""
    info = SettingInfo('', default, description, minimum, maximum, choices, pattern,
                       pattern_hint, applies, flags)
    problem = _problem(info, default)
    if problem is not None:
        raise ValueError(f'invalid default: {problem}')
    return field(default=default, metadata={_KEY: info})


_INFOS: dict[type, tuple[SettingInfo, ...]] = {}


def _infos(cls: type) -> tuple[SettingInfo, ...]:
    found = _INFOS.get(cls)
    if found is None:
        found = tuple(replace(item.metadata[_KEY], name=item.name)
                      for item in fields(cls) if isinstance(item.metadata.get(_KEY), SettingInfo))
        _INFOS[cls] = found
    return found


def settings_of(group: type[Settings] | Settings) -> tuple[SettingInfo, ...]:
    """The settings of a group (class or instance), in declaration order."""
    return _infos(group if isinstance(group, type) else type(group))


def _problem(info: SettingInfo, value: Any) -> str | None:
    try:
        convert(info, value)
    except SettingsError as error:
        return str(error)
    return None


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if kind is int:
        return isinstance(value, (int, np.integer))
    return isinstance(value, (int, float, np.number))


def convert(info: SettingInfo, value: Any) -> SettingValue:
    """``value`` converted to the setting's type and checked; :class:`SettingsError` if not.

    A bool must be a bool (``numpy.bool_`` too); an int an integer (not a bool); a float any
    finite number; a string is stripped and must be one of the choices or match the pattern.
    """
    name, kind = info.name, info.type
    if kind is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise SettingsError(f'{name} must be a bool, got {value!r}')
        return bool(value)
    if kind is str:
        if not isinstance(value, str):
            raise SettingsError(f'{name} must be a string, got {value!r}')
        text = value.strip()
        if info.choices and text not in info.choices:
            raise SettingsError(f'{name} must be one of {list(info.choices)}, got {value!r}')
        if info.pattern is not None and not re.fullmatch(info.pattern, text):
            raise SettingsError(f'{name} must be {info.pattern_hint or info.pattern}, got '
                                f'{value!r}')
        return text
    if not _is_number(value, kind):
        what = 'an integer' if kind is int else 'a number'
        raise SettingsError(f'{name} must be {what}, got {value!r}')
    number: int | float = int(value) if kind is int else float(value)
    if not math.isfinite(number):
        raise SettingsError(f'{name} must be finite, got {value!r}')
    if info.minimum is not None and number < info.minimum:
        raise SettingsError(f'{name} must be >= {info.minimum}, got {value!r}')
    if info.maximum is not None and number > info.maximum:
        raise SettingsError(f'{name} must be <= {info.maximum}, got {value!r}')
    return number


class Settings:
    """Base of a group of settings (a frozen dataclass): checked when constructed.

    Each :func:`setting` field is converted and checked, then :meth:`rules` (cross-field rules
    and the checks of fields that are not settings) runs; :class:`SettingsError` gives every
    reason at once.
    """

    def __post_init__(self) -> None:
        problems = []
        for info in settings_of(self):
            try:
                object.__setattr__(self, info.name, convert(info, getattr(self, info.name)))
            except SettingsError as error:
                problems.append(str(error))
        if not problems:
            problems = self.rules()
        if problems:
            raise SettingsError('; '.join(problems))

    def rules(self) -> list[str]:
        """Reasons the group's values do not go together (empty: they do)."""
        return []

    def with_values(self: S, values: Mapping[str, Any]) -> S:
        """A copy with ``values`` (setting names of this group) changed, checked."""
        changed: S = replace(self, **values)  # type: ignore[type-var]
        return changed


def add_arguments(parser: argparse.ArgumentParser | Any, group: type[Settings], *,
                  defaults: Mapping[str, SettingValue] | None = None,
                  exclude: Iterable[str] = ()) -> None:
    """Add a flag for every setting of ``group`` but ``exclude`` (the default from ``defaults``
    where given, else the setting's own); :func:`from_arguments` reads them back."""
    defaults = defaults or {}
    skipped = set(exclude)
    for info in settings_of(group):
        if info.name in skipped:
            continue
        default = defaults.get(info.name, info.default)
        text = info.description
        if info.type is bool:
            action = 'store_true' if not default else argparse.BooleanOptionalAction
            parser.add_argument(*info.cli_flags, dest=info.name, action=action,
                                default=default, help=text)
            continue
        kwargs: dict[str, Any] = {'dest': info.name, 'default': default,
                                  'type': info.type, 'help': f'{text} (default: {default!r})'}
        if info.choices:
            kwargs['choices'] = list(info.choices)
        parser.add_argument(*info.cli_flags, **kwargs)


def from_arguments(group: type[S], args: argparse.Namespace, *,
                   base: S | None = None) -> S:
    """The group's settings from parsed flags (:func:`add_arguments`); settings without a flag
    keep ``base``'s values (or the defaults). :class:`SettingsError` names each refused flag."""
    values = {info.name: getattr(args, info.name) for info in settings_of(group)
              if hasattr(args, info.name)}
    try:
        return base.with_values(values) if base is not None else group(**values)
    except SettingsError as error:
        flags = {info.name: info.cli_flags[0] for info in settings_of(group)}
        text = str(error)
        for name, flag in flags.items():
            text = re.sub(rf'(^|; ){re.escape(name)}\b', rf'\g<1>{flag}', text)
        raise SettingsError(text) from error

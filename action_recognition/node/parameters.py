"""The node's parameters: the settings groups, one flat table of ROS parameters.

Every parameter is a setting of one group (:mod:`action_recognition.settings`), declared once
with its type, default, range or choices, description and when a change takes effect:

- :class:`~action_recognition.runtime.settings.ModelSettings`,
  :class:`~action_recognition.runtime.settings.BackendSettings`,
  :class:`~action_recognition.runtime.settings.StreamSettings` and
  :class:`~action_recognition.runtime.settings.InputSettings`: the pipeline's (``run`` takes
  the same as flags);
- :class:`NodeOptions`: the node's own (rate mode, enabled, diagnostics);
- :class:`SubscriptionSettings`: the image subscription (``image_transport``; its QoS until the
  release issue moves QoS to ROS's own override mechanism).

:data:`PARAMETERS` lists them all in declaration order; the ROS shell declares each with a
``ParameterDescriptor`` made from it, :func:`default_yaml` writes the shipped
``config/action_recognition.yaml`` from it, and :func:`parse_parameters` validates values into
a :class:`NodeSettings` with a reason for every refusal. ``half`` is a deprecated alias, read
into ``precision`` (``fp16``) with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
import logging
import textwrap
from typing import Any

from action_recognition.runtime.settings import BackendSettings
from action_recognition.runtime.settings import InputSettings
from action_recognition.runtime.settings import ModelSettings
from action_recognition.runtime.settings import precision_with_half
from action_recognition.runtime.settings import StreamSettings
from action_recognition.settings import setting
from action_recognition.settings import SettingInfo
from action_recognition.settings import Settings
from action_recognition.settings import settings_of
from action_recognition.settings import SettingsError
from action_recognition.settings import SettingValue

__all__ = ['NodeOptions', 'SubscriptionSettings', 'NodeSettings', 'GROUPS', 'PARAMETERS',
           'HALF', 'ParameterError', 'parse_parameters', 'definition_of', 'changed_names',
           'default_yaml']

LOGGER = logging.getLogger('action_recognition.node')


@dataclass(frozen=True)
class NodeOptions(Settings):
    """The node's own settings."""

    inference_rate_hz: float = setting(
        0.0, 'Run the latest window at this rate instead of every hop frames; 0: use hop.',
        minimum=0.0, maximum=1000.0)
    enabled: bool = setting(True, 'Process images; false: drop them (diagnostics keep '
                                  'running).')
    stale_input_s: float = setting(2.0, 'Diagnostics WARN when no image arrived for this long.',
                                   minimum=0.01, maximum=3600.0)
    diagnostics_period_s: float = setting(1.0, 'Period of /diagnostics messages.',
                                          minimum=0.05, maximum=60.0, applies='startup')


@dataclass(frozen=True)
class SubscriptionSettings(Settings):
    """The image subscription."""

    image_transport: str = setting(
        'raw', "'raw': subscribe to image (sensor_msgs/Image); 'compressed': to "
        'image/compressed.', choices=('raw', 'compressed'), applies='startup')
    qos_reliability: str = setting(
        'best_effort', 'Reliability of the image subscription (best_effort matches the '
        'sensor-data profile).', choices=('best_effort', 'reliable'), applies='startup')
    qos_depth: int = setting(2, 'History depth of the image subscription.', minimum=1,
                             maximum=100, applies='startup')


@dataclass(frozen=True)
class NodeSettings:
    """The node's parameters, validated, by group."""

    model: ModelSettings = field(default_factory=ModelSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    input: InputSettings = field(default_factory=InputSettings)
    node: NodeOptions = field(default_factory=NodeOptions)
    subscription: SubscriptionSettings = field(default_factory=SubscriptionSettings)

    def value(self, name: str) -> SettingValue:
        """The value of parameter ``name``."""
        value: SettingValue = getattr(getattr(self, _GROUP_OF[name]), name)
        return value

    @property
    def stream_settings(self) -> StreamSettings:
        """The streams' settings: with ``inference_rate_hz`` the node asks for the latest
        window at its rate (``schedule='latest'``), else one is due every ``hop`` frames."""
        schedule = 'latest' if self.node.inference_rate_hz > 0 else 'hop'
        return self.stream if self.stream.schedule == schedule else \
            replace(self.stream, schedule=schedule)


#: The groups, in declaration order: (attribute of :class:`NodeSettings`, group).
GROUPS: tuple[tuple[str, type[Settings]], ...] = (
    ('model', ModelSettings), ('backend', BackendSettings), ('stream', StreamSettings),
    ('input', InputSettings), ('node', NodeOptions), ('subscription', SubscriptionSettings))
PARAMETERS: tuple[SettingInfo, ...] = tuple(info for _, group in GROUPS
                                            for info in settings_of(group))
_GROUP_OF = {info.name: attribute for attribute, group in GROUPS
             for info in settings_of(group)}
_BY_NAME = {info.name: info for info in PARAMETERS}
assert len(_BY_NAME) == len(PARAMETERS), 'a parameter name is declared twice'

#: The deprecated alias of ``precision: fp16``; declared so that old parameter files load.
HALF = SettingInfo('half', False, 'Deprecated: use precision fp16 (true sets precision to fp16 '
                                  'and is set back to false).', applies='reload')


class ParameterError(SettingsError):
    """Parameter values that were refused; the message gives every reason."""


def parse_parameters(values: Mapping[str, Any], *, base: NodeSettings | None = None,
                     logger: logging.Logger | None = None) -> NodeSettings:
    """Validated :class:`NodeSettings` from ``values`` (the others from ``base`` or the
    defaults). :class:`ParameterError` lists every refused value. ``half: true`` is read into
    ``precision`` (``fp16``) with a warning."""
    base = base or NodeSettings()
    problems = [f'unknown parameter {name!r}' for name in values
                if name not in _BY_NAME and name != HALF.name]
    updates: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        if name in _GROUP_OF:
            updates.setdefault(_GROUP_OF[name], {})[name] = value
    half = values.get(HALF.name, False)
    if not isinstance(half, bool):
        problems.append(f'half must be a bool, got {half!r}')
    elif half:
        (logger or LOGGER).warning('the half parameter is deprecated: use precision fp16')
        precision = updates.get('backend', {}).get('precision', base.backend.precision)
        try:
            updates.setdefault('backend', {})['precision'] = precision_with_half(precision, True)
        except SettingsError as error:
            problems.append(str(error))
    groups: dict[str, Any] = {}
    for attribute, _group in GROUPS:
        current = getattr(base, attribute)
        try:
            groups[attribute] = current.with_values(updates[attribute]) \
                if attribute in updates else current
        except SettingsError as error:
            problems.append(str(error))
    if problems:
        raise ParameterError('; '.join(problems))
    return NodeSettings(**groups)


def definition_of(name: str) -> SettingInfo | None:
    """The declaration of parameter ``name`` (``None`` for an unknown name)."""
    return _BY_NAME.get(name)


def changed_names(old: NodeSettings, new: NodeSettings) -> list[str]:
    """The parameters whose values differ between ``old`` and ``new``."""
    return [info.name for info in PARAMETERS if old.value(info.name) != new.value(info.name)]


_YAML_HEADER = """\
# Parameters of action_recognition_node: the shipped default model on the CPU.
# Written by `python -m action_recognition.node.parameters` from the declarations of the
# parameters (action_recognition/runtime/settings.py, action_recognition/node/parameters.py);
# `ros2 param describe /action_recognition_node <name>` gives each one's description and range.
# (run time): `ros2 param set` changes it while the node runs; (reload): a change reloads the
# model on the inference worker; (start-up): read once, at start-up.
/**:
  ros__parameters:
"""
_WHEN = {'runtime': 'run time', 'reload': 'reload', 'startup': 'start-up'}


def _yaml_value(value: SettingValue) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return repr(value) if value == '' else value
    return repr(value)


def _note(info: SettingInfo) -> str:
    """A parameter's range or choices and when a change applies."""
    note = _WHEN[info.applies]
    if info.choices:
        return ' | '.join(info.choices) + f' ({note})'
    if info.minimum is not None and info.maximum is not None:
        if info.type is int:
            return f'{int(info.minimum)}..{int(info.maximum)} ({note})'
        return f'{info.minimum:g}..{info.maximum:g} ({note})'
    return note


def default_yaml() -> str:
    """``config/action_recognition.yaml``: every parameter at its default, grouped, its
    description above it, its range or choices and when a change applies beside it."""
    lines = [_YAML_HEADER.rstrip('\n')]
    for attribute, group in GROUPS:
        title = (group.__doc__ or attribute).strip().splitlines()[0].rstrip('.')
        lines.append(f'    # -- {attribute}: {title}')
        for info in settings_of(group):
            lines += textwrap.wrap(info.description, 99, initial_indent='    # ',
                                   subsequent_indent='    # ')
            lines.append(f'    {info.name}: {_yaml_value(info.default)}'.ljust(36)
                         + f'# {_note(info)}')
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    print(default_yaml(), end='')

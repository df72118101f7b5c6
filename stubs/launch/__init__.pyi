# Stubs for ros2/launch: the part the launch files of this package use.
from collections.abc import Iterable
from typing import Any

from launch.launch_context import LaunchContext as LaunchContext

class LaunchDescriptionEntity: ...

class Action(LaunchDescriptionEntity):
    def __init__(self, **kwargs: Any) -> None: ...

class Substitution:
    def perform(self, context: LaunchContext) -> str: ...

SomeSubstitutionsType = str | Substitution | Iterable[str | Substitution]

class LaunchDescription(LaunchDescriptionEntity):
    def __init__(self, initial_entities: Iterable[LaunchDescriptionEntity] | None = None, *,
                 deprecated_reason: str | None = None) -> None: ...
    def add_action(self, action: Action) -> None: ...

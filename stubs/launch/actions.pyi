from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from launch import Action
from launch import LaunchDescriptionEntity
from launch import SomeSubstitutionsType
from launch.launch_context import LaunchContext

class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value: SomeSubstitutionsType | None = None,
                 description: str | None = None, choices: Iterable[str] | None = None,
                 **kwargs: Any) -> None: ...

class OpaqueFunction(Action):
    def __init__(self, *,
                 function: Callable[..., Iterable[LaunchDescriptionEntity] | None],
                 args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                 **left_over_kwargs: Any) -> None: ...

class IncludeLaunchDescription(Action):
    def __init__(self, launch_description_source: Any, *,
                 launch_arguments: Iterable[tuple[SomeSubstitutionsType,
                                                  SomeSubstitutionsType]] | None = None,
                 **kwargs: Any) -> None: ...

class ExecuteProcess(Action):
    def __init__(self, *, cmd: Iterable[SomeSubstitutionsType], **kwargs: Any) -> None: ...

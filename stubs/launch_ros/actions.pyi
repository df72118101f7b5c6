# Stubs for ros2/launch_ros: launch_ros.actions.Node.
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from launch import Action
from launch import SomeSubstitutionsType

class Node(Action):
    def __init__(
        self, *,
        executable: SomeSubstitutionsType,
        package: SomeSubstitutionsType | None = None,
        name: SomeSubstitutionsType | None = None,
        namespace: SomeSubstitutionsType | None = None,
        exec_name: SomeSubstitutionsType | None = None,
        parameters: Iterable[SomeSubstitutionsType | Path | Mapping[str, Any]] | None = None,
        remappings: Iterable[tuple[SomeSubstitutionsType, SomeSubstitutionsType]] | None = None,
        ros_arguments: Iterable[SomeSubstitutionsType] | None = None,
        arguments: Iterable[SomeSubstitutionsType] | None = None,
        **kwargs: Any) -> None: ...

from collections.abc import Iterable

from launch import SomeSubstitutionsType
from launch import Substitution

class LaunchConfiguration(Substitution):
    def __init__(self, variable_name: SomeSubstitutionsType, *,
                 default: SomeSubstitutionsType | None = None) -> None: ...

class PathJoinSubstitution(Substitution):
    def __init__(self, substitutions: Iterable[SomeSubstitutionsType]) -> None: ...

class TextSubstitution(Substitution):
    def __init__(self, *, text: str) -> None: ...

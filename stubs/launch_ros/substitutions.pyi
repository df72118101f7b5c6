from launch import SomeSubstitutionsType
from launch import Substitution

class FindPackageShare(Substitution):
    def __init__(self, package: SomeSubstitutionsType) -> None: ...

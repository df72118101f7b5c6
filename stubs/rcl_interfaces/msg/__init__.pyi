# Stubs for rcl_interfaces/msg (ROS 2 Humble and later): parameter messages.
from typing import Any, ClassVar

class FloatingPointRange:
    from_value: float
    to_value: float
    step: float
    def __init__(self, *, from_value: float = ..., to_value: float = ...,
                 step: float = ...) -> None: ...

class IntegerRange:
    from_value: int
    to_value: int
    step: int
    def __init__(self, *, from_value: int = ..., to_value: int = ..., step: int = ...) -> None: ...

class ParameterType:
    PARAMETER_NOT_SET: ClassVar[int]
    PARAMETER_BOOL: ClassVar[int]
    PARAMETER_INTEGER: ClassVar[int]
    PARAMETER_DOUBLE: ClassVar[int]
    PARAMETER_STRING: ClassVar[int]
    PARAMETER_BYTE_ARRAY: ClassVar[int]
    PARAMETER_BOOL_ARRAY: ClassVar[int]
    PARAMETER_INTEGER_ARRAY: ClassVar[int]
    PARAMETER_DOUBLE_ARRAY: ClassVar[int]
    PARAMETER_STRING_ARRAY: ClassVar[int]
    type: int
    def __init__(self, *, type: int = ...) -> None: ...

class ParameterDescriptor:
    name: str
    type: int
    description: str
    additional_constraints: str
    read_only: bool
    dynamic_typing: bool
    floating_point_range: list[FloatingPointRange]
    integer_range: list[IntegerRange]
    def __init__(self, *, name: str = ..., type: int = ..., description: str = ...,
                 additional_constraints: str = ..., read_only: bool = ...,
                 dynamic_typing: bool = ...,
                 floating_point_range: list[FloatingPointRange] = ...,
                 integer_range: list[IntegerRange] = ...) -> None: ...

class ParameterValue:
    type: int
    bool_value: bool
    integer_value: int
    double_value: float
    string_value: str
    byte_array_value: list[bytes]
    bool_array_value: list[bool]
    integer_array_value: list[int]
    double_array_value: list[float]
    string_array_value: list[str]
    def __init__(self, **kwargs: Any) -> None: ...

class Parameter:
    name: str
    value: ParameterValue
    def __init__(self, *, name: str = ..., value: ParameterValue = ...) -> None: ...

class ParameterEvent:
    node: str
    new_parameters: list[Parameter]
    changed_parameters: list[Parameter]
    deleted_parameters: list[Parameter]
    def __init__(self, **kwargs: Any) -> None: ...

class SetParametersResult:
    successful: bool
    reason: str
    def __init__(self, *, successful: bool = ..., reason: str = ...) -> None: ...

class ListParametersResult:
    names: list[str]
    prefixes: list[str]
    def __init__(self, *, names: list[str] = ..., prefixes: list[str] = ...) -> None: ...

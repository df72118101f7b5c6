# Stubs for vision_msgs (ros-perception/vision_msgs, ROS 2 4.x): the messages this package uses.
from std_msgs.msg import Header

class ObjectHypothesis:
    class_id: str
    score: float
    def __init__(self, *, class_id: str = ..., score: float = ...) -> None: ...

class Classification:
    header: Header
    results: list[ObjectHypothesis]
    def __init__(self, *, header: Header = ...,
                 results: list[ObjectHypothesis] = ...) -> None: ...

class VisionClass:
    class_id: int
    class_name: str
    def __init__(self, *, class_id: int = ..., class_name: str = ...) -> None: ...

class LabelInfo:
    header: Header
    class_map: list[VisionClass]
    threshold: float
    def __init__(self, *, header: Header = ..., class_map: list[VisionClass] = ...,
                 threshold: float = ...) -> None: ...

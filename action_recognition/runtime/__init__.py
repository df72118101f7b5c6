"""The inference runtime (no ROS): backends, the clip ring, the recogniser, sources and sinks.

A frame's way: a source (or the node) hands a decoded RGB frame with its stamp in integer
nanoseconds to :class:`~action_recognition.runtime.recognizer.Recognizer`, which prepares it
once into its clip ring; a due window goes through a backend; the one result type,
:class:`~action_recognition.runtime.results.Recognition`, goes to every sink (JSON lines,
MCAP, annotated video) and to the ROS publisher.
"""

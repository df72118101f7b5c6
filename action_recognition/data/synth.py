"""The synthetic temporal-actions benchmark, in one namespace.

No public video data set can be downloaded where this package is tested, so a seeded generator
of clips that need motion (11 actions of one polygon *actor*, each moving class with a
time-reversed partner of the same single-frame distribution) checks that a model learns motion.
The benchmark lives in three modules, by concern; every public name is importable from here:

- :mod:`~action_recognition.data.synth_clips`: the classes, their label maps and the clip
  generator (``uint8`` RGB clips ``[T, S, S, 3]``, batches ``[N, T, S, S, 3]``); its docstring
  defines the actions;
- :mod:`~action_recognition.data.synth_scene`: what the generator draws (actor shapes, colours,
  backgrounds);
- :mod:`~action_recognition.data.synth_files`: the data set on disk in the UCF-101 layout
  (:func:`write_dataset`), one AVI file per clip (:func:`~action_recognition.data.video.
  write_video`, re-exported here with :data:`CODECS`).

Clips prepared for a model (resized, cropped and sampled as its spec says) are
:func:`~action_recognition.data.clips.synthetic_clips`.
"""

from __future__ import annotations

from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.synth_clips import clip_rng
from action_recognition.data.synth_clips import ClipMeta
from action_recognition.data.synth_clips import generate_clip
from action_recognition.data.synth_clips import generate_clip_with_meta
from action_recognition.data.synth_clips import generate_clips
from action_recognition.data.synth_clips import HFLIP_SWAP
from action_recognition.data.synth_clips import REVERSAL_PAIRS
from action_recognition.data.synth_clips import REVERSE_SWAP
from action_recognition.data.synth_clips import VFLIP_SWAP
from action_recognition.data.synth_files import video_name
from action_recognition.data.synth_files import write_dataset
from action_recognition.data.synth_scene import BACKGROUNDS
from action_recognition.data.synth_scene import MIN_COLOUR_DISTANCE
from action_recognition.data.synth_scene import SHAPES
from action_recognition.data.video import CODECS
from action_recognition.data.video import write_video

__all__ = [
    'CLASSES', 'REVERSAL_PAIRS', 'HFLIP_SWAP', 'VFLIP_SWAP', 'REVERSE_SWAP', 'SHAPES',
    'BACKGROUNDS', 'MIN_COLOUR_DISTANCE', 'ClipMeta', 'generate_clip', 'generate_clip_with_meta',
    'generate_clips', 'clip_rng', 'video_name', 'CODECS', 'write_video', 'write_dataset',
]

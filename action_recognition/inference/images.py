"""ROS-free conversion of camera images to ``uint8`` RGB ``[H, W, 3]`` numpy arrays.

The fields of ``sensor_msgs/msg/Image`` (``height``, ``width``, ``encoding``, ``is_bigendian``,
``step``, ``data``) and of ``sensor_msgs/msg/CompressedImage`` (``format``, ``data``) are taken as
plain values, so the same code serves the ROS node (rclpy messages), rosbag2 recordings (rosbags
messages) and tests, without cv_bridge.

Supported raw encodings: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``, ``mono16``
(either byte order; scaled to 8 bit by its high byte) and the packed 4:2:2 YUV encodings
``yuv422`` / ``uyvy`` (U Y0 V Y1) and ``yuv422_yuy2`` / ``yuyv`` (Y0 U Y1 V). Rows may be padded:
``step`` may exceed ``width * bytes_per_pixel``. Compressed images: JPEG and PNG (8 or 16 bit,
grey, colour or with alpha). Anything else raises :class:`ImageDecodeError` naming the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import Protocol

import cv2
import numpy as np

__all__ = [
    'ImageDecodeError', 'RAW_ENCODINGS', 'RawImage', 'CompressedImageLike', 'raw_to_rgb',
    'image_msg_to_rgb', 'compressed_to_rgb', 'compressed_msg_to_rgb', 'rgb_to_raw',
    'rgb_to_compressed',
]


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into an RGB frame; the message says why."""


# encoding -> (bytes per pixel, channels of the unpacked array)
RAW_ENCODINGS: dict[str, tuple[int, int]] = {
    'rgb8': (3, 3),
    'bgr8': (3, 3),
    'rgba8': (4, 4),
    'bgra8': (4, 4),
    'mono8': (1, 1),
    'mono16': (2, 1),
    'yuv422': (2, 2),
    'uyvy': (2, 2),
    'yuv422_yuy2': (2, 2),
    'yuyv': (2, 2),
}

_COLOR_CODES: dict[str, int | None] = {
    'rgb8': None,
    'bgr8': cv2.COLOR_BGR2RGB,
    'rgba8': cv2.COLOR_RGBA2RGB,
    'bgra8': cv2.COLOR_BGRA2RGB,
    'mono8': cv2.COLOR_GRAY2RGB,
    'mono16': cv2.COLOR_GRAY2RGB,
    'yuv422': cv2.COLOR_YUV2RGB_UYVY,
    'uyvy': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2,
    'yuyv': cv2.COLOR_YUV2RGB_YUY2,
}


class RawImage(Protocol):
    """The fields of ``sensor_msgs/msg/Image`` this module reads."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


class CompressedImageLike(Protocol):
    """The fields of ``sensor_msgs/msg/CompressedImage`` this module reads."""

    format: str
    data: Any


def _as_bytes_array(data: Any) -> np.ndarray:
    """Any buffer (bytes, array.array, numpy array, list of ints) -> flat uint8 array."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)
    except TypeError:
        pass
    if isinstance(data, Sequence) and not isinstance(data, str):
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError) as error:
            raise ImageDecodeError(f'image data is not a list of bytes: {error}') from error
    raise ImageDecodeError(f'image data of type {type(data).__name__} is not a byte buffer')


def raw_to_rgb(*, height: int, width: int, encoding: str, step: int, data: Any,
               is_bigendian: int | bool = False) -> np.ndarray:
    """Raw image fields -> contiguous ``uint8`` RGB ``[height, width, 3]``.

    ``step`` is the length of one row in bytes (``>= width * bytes_per_pixel``; padding at the
    end of each row is ignored); ``data`` holds at least ``step * height`` bytes.
    """
    name = encoding.strip().lower()
    if name not in RAW_ENCODINGS:
        raise ImageDecodeError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(RAW_ENCODINGS)}')
    if height < 1 or width < 1:
        raise ImageDecodeError(f'empty image: {width}x{height}')
    bytes_per_pixel, channels = RAW_ENCODINGS[name]
    if name in ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv') and width % 2:
        raise ImageDecodeError(f'{name} needs an even width, got {width}')
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageDecodeError(
            f'step {step} is shorter than a row of {width} {name} pixels ({row_bytes} bytes)')
    buffer = _as_bytes_array(data)
    # The last row needs only its pixels, not its padding.
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise ImageDecodeError(
            f'{name} image {width}x{height} with step {step} needs {needed} bytes, '
            f'got {buffer.size}')
    if buffer.size < step * height:
        buffer = np.concatenate([buffer, np.zeros(step * height - buffer.size, np.uint8)])
    rows = buffer[:step * height].reshape(height, step)[:, :row_bytes]
    if name == 'mono16':
        dtype = np.dtype('>u2') if is_bigendian else np.dtype('<u2')
        pixels16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        pixels = (pixels16 >> 8).astype(np.uint8)
    else:
        pixels = np.ascontiguousarray(rows).reshape(height, width, channels)
    code = _COLOR_CODES[name]
    if code is None:
        return np.ascontiguousarray(pixels)
    return np.ascontiguousarray(cv2.cvtColor(pixels, code))


def image_msg_to_rgb(msg: RawImage) -> np.ndarray:
    """A ``sensor_msgs/msg/Image`` (rclpy or rosbags) -> ``uint8`` RGB ``[H, W, 3]``."""
    return raw_to_rgb(height=int(msg.height), width=int(msg.width), encoding=str(msg.encoding),
                      step=int(msg.step), data=msg.data, is_bigendian=int(msg.is_bigendian))


def _sniff_format(head: bytes) -> str:
    if head.startswith(b'\xff\xd8'):
        return 'jpeg'
    if head.startswith(b'\x89PNG\r\n\x1a\n'):
        return 'png'
    return ''


def compressed_to_rgb(*, format: str, data: Any) -> np.ndarray:
    """Compressed image fields (JPEG or PNG) -> ``uint8`` RGB ``[H, W, 3]``.

    ``format`` follows image_transport: ``'jpeg'``, ``'png'`` or
    ``'<encoding>; <jpeg|png> compressed <encoding>'``. When the compressed encoding is ``rgb8``
    or ``rgba8`` the stored channels are already in RGB order; otherwise OpenCV's BGR is assumed.
    """
    buffer = _as_bytes_array(data)
    if buffer.size == 0:
        raise ImageDecodeError('compressed image has no data')
    lowered = format.strip().lower()
    sniffed = _sniff_format(buffer[:8].tobytes())
    declared = 'png' if 'png' in lowered else 'jpeg' if ('jpeg' in lowered or 'jpg' in lowered) \
        else ''
    if not sniffed:
        if declared:
            raise ImageDecodeError(f'compressed image declared {format!r} but its data is not '
                                   f'{declared.upper()} (first bytes {buffer[:4].tobytes()!r})')
        raise ImageDecodeError(
            f'unsupported compressed format {format!r}: data is neither JPEG nor PNG')
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageDecodeError(f'corrupt {sniffed.upper()} data ({buffer.size} bytes)')
    if decoded.dtype == np.uint16:
        decoded = (np.asarray(decoded, dtype=np.uint16) // 256).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        raise ImageDecodeError(f'unsupported {sniffed.upper()} sample type {decoded.dtype}')
    stored_rgb = 'compressed rgb' in lowered
    if decoded.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB))
    channels = decoded.shape[2]
    if channels == 1:
        return np.ascontiguousarray(cv2.cvtColor(decoded[:, :, 0], cv2.COLOR_GRAY2RGB))
    if channels == 3:
        return np.ascontiguousarray(decoded if stored_rgb
                                    else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))
    if channels == 4:
        return np.ascontiguousarray(decoded[:, :, :3] if stored_rgb
                                    else cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB))
    raise ImageDecodeError(f'unsupported {sniffed.upper()} with {channels} channels')


def compressed_msg_to_rgb(msg: CompressedImageLike) -> np.ndarray:
    """A ``sensor_msgs/msg/CompressedImage`` (rclpy or rosbags) -> ``uint8`` RGB ``[H, W, 3]``."""
    return compressed_to_rgb(format=str(msg.format), data=msg.data)


def rgb_to_raw(frame: np.ndarray, encoding: str = 'rgb8') -> tuple[int, bytes]:
    """``uint8`` RGB ``[H, W, 3]`` -> ``(step, data)`` in ``rgb8``, ``bgr8`` or ``mono8``.

    Used for debug images and recordings; the inverse of :func:`raw_to_rgb` for those encodings.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f'expected a uint8 RGB frame [H, W, 3], got {frame.dtype} {frame.shape}')
    if encoding == 'rgb8':
        out = frame
    elif encoding == 'bgr8':
        out = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    elif encoding == 'mono8':
        out = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    else:
        raise ValueError(f"encoding must be 'rgb8', 'bgr8' or 'mono8', got {encoding!r}")
    out = np.ascontiguousarray(out)
    return int(out.strides[0]), out.tobytes()


def rgb_to_compressed(frame: np.ndarray, fmt: str = 'jpeg', *, quality: int = 90
                      ) -> tuple[str, bytes]:
    """``uint8`` RGB ``[H, W, 3]`` -> ``(format, data)`` as image_transport writes them."""
    bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
    if fmt == 'jpeg':
        ok, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == 'png':
        ok, encoded = cv2.imencode('.png', bgr)
    else:
        raise ValueError(f"format must be 'jpeg' or 'png', got {fmt!r}")
    if not ok:
        raise ValueError(f'OpenCV could not encode a {frame.shape} frame as {fmt}')
    return f'rgb8; {fmt} compressed bgr8', encoded.tobytes()

"""ROS-free conversion of camera images to ``uint8`` RGB ``[H, W, 3]`` numpy arrays.

The fields of ``sensor_msgs/msg/Image`` (``height``, ``width``, ``encoding``, ``is_bigendian``,
``step``, ``data``) and of ``sensor_msgs/msg/CompressedImage`` (``format``, ``data``) are taken as
plain values, so the same code serves the ROS node (rclpy messages), rosbag2 recordings (rosbags
messages) and tests, without cv_bridge.

Supported raw encodings: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``, ``mono16``
(either byte order; scaled to 8 bit by its high byte) and the packed 4:2:2 YUV encodings
``yuv422`` / ``uyvy`` (U Y0 V Y1) and ``yuv422_yuy2`` / ``yuyv`` (Y0 U Y1 V). Rows may be padded:
``step`` may exceed ``width * bytes_per_pixel``. Compressed images: JPEG and PNG (8 or 16 bit,
grey, colour or with alpha). Anything else raises :class:`ImageDecodeError` naming the reason,
with a short stable :attr:`~ImageDecodeError.kind` (one of :data:`DECODE_ERROR_KINDS`).

Bounded work per image: nothing is allocated from a size that a message claims. A raw image's
``width * height`` is checked against ``max_pixels`` before its data is touched, its ``step``
against the limit and the data length, and its rows are viewed with strides over the bytes that
exist (only the pixel bytes are copied). A JPEG's or PNG's size is read from its header (the
first SOFn marker, the IHDR chunk) by a small bounded parser before anything is decoded; an
image above ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`) or with a header that cannot be
parsed is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
import re
from typing import Any
from typing import Protocol
import zlib

import cv2
import numpy as np

from action_recognition.logs import one_line

__all__ = [
    'ImageDecodeError', 'DECODE_ERROR_KINDS', 'DEFAULT_MAX_PIXELS', 'RAW_ENCODINGS', 'RawImage',
    'CompressedImageLike', 'raw_to_rgb', 'image_msg_to_rgb', 'compressed_image_size',
    'compressed_to_rgb', 'compressed_msg_to_rgb', 'rgb_to_raw', 'rgb_to_compressed',
]

#: The default limit on ``width * height`` of an image (4096 x 4096 pixels).
DEFAULT_MAX_PIXELS = 4096 * 4096

#: Every :attr:`ImageDecodeError.kind`: a short key for counting refusals by reason.
DECODE_ERROR_KINDS = (
    'oversized',             # width * height above the limit
    'empty image',           # zero width or height, or no data
    'unsupported encoding',  # a raw encoding this module does not read
    'unsupported format',    # compressed data that is neither JPEG nor PNG, or odd samples
    'format mismatch',       # declared JPEG/PNG, but the data is neither
    'bad step',              # a row length in bytes that does not fit the width or the data
    'odd width',             # a 4:2:2 image of odd width
    'truncated data',        # fewer bytes than the image needs
    'bad data',              # data that is not a byte buffer
    'corrupt jpeg',          # an unparsable JPEG header, or JPEG data that decodes to nothing
    'corrupt png',           # the same for PNG
    'decoder error',         # an error raised while decoding or converting (cv2.error, ...)
)


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into an RGB frame; the message says why.

    Attributes:
        kind: a short stable key for the reason (one of :data:`DECODE_ERROR_KINDS`), for
            counting refusals; the message is the whole sentence.
    """

    def __init__(self, message: str, kind: str = 'decoder error') -> None:
        super().__init__(message)
        self.kind = kind


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
            raise ImageDecodeError(f'image data is not a list of bytes: {error}',
                                   'bad data') from error
    raise ImageDecodeError(f'image data of type {type(data).__name__} is not a byte buffer',
                           'bad data')


def _check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """Refuse an image of ``width * height`` above ``max_pixels`` (Python ints: no overflow)."""
    if width * height > max_pixels:
        raise ImageDecodeError(
            f'{what} is {width}x{height} = {width * height} pixels, more than the limit of '
            f'{max_pixels} pixels', 'oversized')


def raw_to_rgb(*, height: int, width: int, encoding: str, step: int, data: Any,
               is_bigendian: int | bool = False,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Raw image fields -> contiguous ``uint8`` RGB ``[height, width, 3]``.

    ``step`` is the length of one row in bytes (``>= width * bytes_per_pixel``; padding at the
    end of each row is ignored); ``data`` holds at least ``step * (height - 1)`` bytes plus the
    pixels of the last row. An image of more than ``max_pixels`` pixels is refused before its
    data is read; nothing is allocated but the pixels themselves.
    """
    name = encoding.strip().lower()
    if name not in RAW_ENCODINGS:
        raise ImageDecodeError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(RAW_ENCODINGS)}',
            'unsupported encoding')
    if height < 1 or width < 1:
        raise ImageDecodeError(f'empty image: {width}x{height}', 'empty image')
    _check_pixels(width, height, max_pixels, f'the {name} image')
    bytes_per_pixel, channels = RAW_ENCODINGS[name]
    if name in ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv') and width % 2:
        raise ImageDecodeError(f'{name} needs an even width, got {width}', 'odd width')
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageDecodeError(
            f'step {step} is shorter than a row of {width} {name} pixels ({row_bytes} bytes)',
            'bad step')
    if step > max_pixels * bytes_per_pixel:
        raise ImageDecodeError(
            f'step {step} of the {name} image {width}x{height} claims a row longer than the '
            f'largest image allowed ({max_pixels} pixels, {max_pixels * bytes_per_pixel} bytes)',
            'oversized')
    buffer = _as_bytes_array(data)
    # The last row needs only its pixels, not its padding.
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise ImageDecodeError(
            f'{name} image {width}x{height} with step {step} needs {needed} bytes, '
            f'got {buffer.size}', 'truncated data')
    if step > buffer.size:  # only possible for one row: a step no data could hold
        raise ImageDecodeError(
            f'step {step} of the {name} image {width}x{height} is longer than its whole data '
            f'({buffer.size} bytes)', 'bad step')
    # A strided view of the bytes that exist (checked above: the last row ends inside the
    # buffer), then a copy of the pixel bytes only.
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1))
    try:
        pixels_bytes = np.array(rows, dtype=np.uint8, order='C')
        if name == 'mono16':
            dtype = np.dtype('>u2') if is_bigendian else np.dtype('<u2')
            pixels16 = pixels_bytes.view(dtype).reshape(height, width)
            pixels = (pixels16 >> 8).astype(np.uint8)
        else:
            pixels = pixels_bytes.reshape(height, width, channels)
        code = _COLOR_CODES[name]
        if code is None:
            return pixels
        return np.ascontiguousarray(cv2.cvtColor(pixels, code))
    except (cv2.error, MemoryError) as error:
        raise ImageDecodeError(f'converting the {name} image {width}x{height} failed: '
                               f'{one_line(error)}') from error


def image_msg_to_rgb(msg: RawImage, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A ``sensor_msgs/msg/Image`` (rclpy or rosbags) -> ``uint8`` RGB ``[H, W, 3]``."""
    return raw_to_rgb(height=int(msg.height), width=int(msg.width), encoding=str(msg.encoding),
                      step=int(msg.step), data=msg.data, is_bigendian=int(msg.is_bigendian),
                      max_pixels=max_pixels)


def _sniff_format(head: bytes) -> str:
    if head.startswith(b'\xff\xd8'):
        return 'jpeg'
    if head.startswith(b'\x89PNG\r\n\x1a\n'):
        return 'png'
    return ''


# JPEG markers (ITU T.81 table B.1): SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC) start a frame;
# TEM (01) and RST0-7 (D0-D7) stand alone; every other marker is followed by a 2-byte length.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_MAX_SEGMENTS = 1024  # before the frame header; real files have a handful
_JPEG_FILL = re.compile(rb'\xff+')


def _jpeg_size(data: memoryview) -> tuple[int, int]:
    """``(width, height)`` from the first SOFn marker of JPEG ``data`` (starting ``FF D8``).

    Walks the marker segments before the frame header (at most :data:`_JPEG_MAX_SEGMENTS`, each
    step moving forward, fill bytes skipped by a regular expression), so the work is bounded by
    the data's length; anything unexpected is refused as ``'corrupt jpeg'``.
    """
    def corrupt(why: str) -> ImageDecodeError:
        return ImageDecodeError(f'corrupt JPEG header: {why}', 'corrupt jpeg')

    end = len(data)
    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        fill = _JPEG_FILL.match(data, pos)
        if fill is None:
            raise corrupt(f'expected a marker at byte {pos}')
        pos = fill.end()
        if pos >= end:
            raise corrupt('the data ends before the frame header (SOFn)')
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0x00, 0xD8, 0xD9, 0xDA):
            names = {0x00: 'a stuffed zero byte', 0xD8: 'a second start of image',
                     0xD9: 'the end of image', 0xDA: 'the start of scan'}
            raise corrupt(f'{names[marker]} comes before the frame header (SOFn)')
        if pos + 2 > end:
            raise corrupt(f'the data ends inside the marker FF {marker:02X}')
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2 or pos + length > end:
            raise corrupt(f'the marker FF {marker:02X} at byte {pos - 2} has length {length}, '
                          f'{end - pos} bytes are left')
        if marker in _JPEG_SOF:
            if length < 8:
                raise corrupt(f'the frame header (SOF{marker - 0xC0}) is {length} bytes long')
            height = (data[pos + 3] << 8) | data[pos + 4]
            width = (data[pos + 5] << 8) | data[pos + 6]
            if width == 0 or height == 0:
                raise corrupt(f'the frame header (SOF{marker - 0xC0}) gives {width}x{height} '
                              '(a height from a DNL marker is not supported)')
            return width, height
        pos += length
    raise corrupt(f'no frame header (SOFn) in the first {_JPEG_MAX_SEGMENTS} markers')


def _png_size(data: memoryview) -> tuple[int, int]:
    """``(width, height)`` from the IHDR chunk, which must come first (with a valid CRC)."""
    def corrupt(why: str) -> ImageDecodeError:
        return ImageDecodeError(f'corrupt PNG header: {why}', 'corrupt png')

    if len(data) < 33:
        raise corrupt(f'{len(data)} bytes are too few for the signature and IHDR chunk')
    length = int.from_bytes(data[8:12], 'big')
    if bytes(data[12:16]) != b'IHDR' or length != 13:
        raise corrupt(f'the first chunk is {bytes(data[12:16])!r} of {length} bytes, '
                      "not b'IHDR' of 13 bytes")
    if zlib.crc32(data[12:29]) != int.from_bytes(data[29:33], 'big'):
        raise corrupt('the IHDR chunk fails its CRC')
    width = int.from_bytes(data[16:20], 'big')
    height = int.from_bytes(data[20:24], 'big')
    if not (0 < width < 2 ** 31 and 0 < height < 2 ** 31):
        raise corrupt(f'IHDR gives {width}x{height}')
    return width, height


def _header_size(buffer: np.ndarray, sniffed: str) -> tuple[int, int]:
    """``(width, height)`` from the header of a flat ``uint8`` JPEG or PNG buffer."""
    view = np.ascontiguousarray(buffer).data
    return _jpeg_size(view) if sniffed == 'jpeg' else _png_size(view)


def compressed_image_size(data: Any) -> tuple[str, int, int]:
    """``(format, width, height)`` of JPEG or PNG ``data``, read from its header only.

    ``format`` is ``'jpeg'`` or ``'png'``. Raises :class:`ImageDecodeError` when the data is
    neither, or its header cannot be parsed.
    """
    buffer = _as_bytes_array(data)
    if buffer.size == 0:
        raise ImageDecodeError('the compressed image has no data', 'empty image')
    sniffed = _sniff_format(buffer[:8].tobytes())
    if not sniffed:
        raise ImageDecodeError('the compressed data is neither JPEG nor PNG (first bytes '
                               f'{buffer[:4].tobytes()!r})', 'unsupported format')
    width, height = _header_size(buffer, sniffed)
    return sniffed, width, height


def compressed_to_rgb(*, format: str, data: Any,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Compressed image fields (JPEG or PNG) -> ``uint8`` RGB ``[H, W, 3]``.

    ``format`` follows image_transport: ``'jpeg'``, ``'png'`` or
    ``'<encoding>; <jpeg|png> compressed <encoding>'``. When the compressed encoding is ``rgb8``
    or ``rgba8`` the stored channels are already in RGB order; otherwise OpenCV's BGR is assumed.
    The size is read from the header first: an image of more than ``max_pixels`` pixels, or
    whose header cannot be parsed, is refused without being decoded.
    """
    buffer = _as_bytes_array(data)
    if buffer.size == 0:
        raise ImageDecodeError('compressed image has no data', 'empty image')
    lowered = format.strip().lower()
    sniffed = _sniff_format(buffer[:8].tobytes())
    declared = 'png' if 'png' in lowered else 'jpeg' if ('jpeg' in lowered or 'jpg' in lowered) \
        else ''
    if not sniffed:
        if declared:
            raise ImageDecodeError(f'compressed image declared {format!r} but its data is not '
                                   f'{declared.upper()} (first bytes {buffer[:4].tobytes()!r})',
                                   'format mismatch')
        raise ImageDecodeError(
            f'unsupported compressed format {format!r}: data is neither JPEG nor PNG',
            'unsupported format')
    name = sniffed.upper()
    width, height = _header_size(buffer, sniffed)
    _check_pixels(width, height, max_pixels, f'the {name} image (from its header)')
    try:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except (cv2.error, MemoryError) as error:
        raise ImageDecodeError(f'OpenCV failed to decode the {name} data ({buffer.size} '
                               f'bytes): {one_line(error)}') from error
    if decoded is None or decoded.size == 0:
        raise ImageDecodeError(f'corrupt {name} data ({buffer.size} bytes)', f'corrupt {sniffed}')
    if decoded.shape[:2] not in ((height, width), (width, height)):
        raise ImageDecodeError(f'the {name} header says {width}x{height} but '
                               f'{decoded.shape[1]}x{decoded.shape[0]} was decoded',
                               f'corrupt {sniffed}')
    try:
        return _to_rgb(decoded, name, stored_rgb='compressed rgb' in lowered)
    except (cv2.error, MemoryError) as error:
        raise ImageDecodeError(f'converting the decoded {name} image {width}x{height} failed: '
                               f'{one_line(error)}') from error


def _to_rgb(decoded: np.ndarray, name: str, *, stored_rgb: bool) -> np.ndarray:
    """An image as ``cv2.imdecode`` returns it -> ``uint8`` RGB ``[H, W, 3]``."""
    if decoded.dtype == np.uint16:
        decoded = (np.asarray(decoded, dtype=np.uint16) // 256).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        raise ImageDecodeError(f'unsupported {name} sample type {decoded.dtype}',
                               'unsupported format')
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
    raise ImageDecodeError(f'unsupported {name} with {channels} channels', 'unsupported format')


def compressed_msg_to_rgb(msg: CompressedImageLike, *,
                          max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A ``sensor_msgs/msg/CompressedImage`` (rclpy or rosbags) -> ``uint8`` RGB ``[H, W, 3]``."""
    return compressed_to_rgb(format=str(msg.format), data=msg.data, max_pixels=max_pixels)


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

"""Image message conversion: every raw encoding (with row padding), JPEG/PNG, bad messages."""

import array

import cv2
import numpy as np
import pytest

from action_recognition.inference.images import compressed_to_rgb
from action_recognition.inference.images import image_msg_to_rgb
from action_recognition.inference.images import ImageDecodeError
from action_recognition.inference.images import raw_to_rgb
from action_recognition.inference.images import rgb_to_compressed
from action_recognition.inference.images import rgb_to_raw


def _rgb(height=6, width=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _pad_rows(pixels: np.ndarray, pad: int) -> tuple[int, bytes]:
    """Rows of ``pixels`` (any [H, W(, C)] uint8 array) followed by ``pad`` bytes of 0xAB."""
    rows = pixels.reshape(pixels.shape[0], -1)
    padded = np.concatenate(
        [rows, np.full((rows.shape[0], pad), 0xAB, dtype=np.uint8)], axis=1)
    return padded.shape[1], padded.tobytes()


@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_colour_encodings(encoding, pad):
    rgb = _rgb()
    alpha = np.full((*rgb.shape[:2], 1), 77, dtype=np.uint8)
    pixels = {
        'rgb8': rgb,
        'bgr8': rgb[:, :, ::-1],
        'rgba8': np.concatenate([rgb, alpha], axis=2),
        'bgra8': np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }[encoding]
    step, data = _pad_rows(np.ascontiguousarray(pixels), pad)
    out = raw_to_rgb(height=6, width=8, encoding=encoding, step=step, data=data)
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('pad', [0, 3])
def test_mono8(pad):
    grey = _rgb()[:, :, 0]
    step, data = _pad_rows(grey, pad)
    out = raw_to_rgb(height=6, width=8, encoding='mono8', step=step, data=data)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)


@pytest.mark.parametrize('pad', [0, 4])
@pytest.mark.parametrize('big_endian', [False, True])
def test_mono16_both_byte_orders(big_endian, pad):
    high = _rgb()[:, :, 1]
    values = high.astype(np.uint16) * 256 + 17  # low byte must not leak into the result
    stored = values.astype('>u2' if big_endian else '<u2').view(np.uint8).reshape(6, 16)
    step, data = _pad_rows(stored, pad)
    out = raw_to_rgb(height=6, width=8, encoding='mono16', step=step, data=data,
                     is_bigendian=big_endian)
    np.testing.assert_array_equal(out[:, :, 0], high)
    np.testing.assert_array_equal(out[:, :, 2], high)


def _yuv_pairs(width_pairs=4, height=4):
    """Flat-colour 2-pixel pairs: a known RGB image and its packed Y/U/V (BT.601 video range,
    as cameras send it)."""
    rng = np.random.default_rng(3)
    colours = rng.integers(40, 216, (height, width_pairs, 3)).astype(np.float64)
    r, g, b = colours[..., 0], colours[..., 1], colours[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    y, u, v = (np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, u, v))
    rgb = np.repeat(colours, 2, axis=1).round().astype(np.uint8)
    uyvy = np.stack([u, y, v, y], axis=-1).reshape(height, width_pairs * 4)
    yuyv = np.stack([y, u, y, v], axis=-1).reshape(height, width_pairs * 4)
    return rgb, uyvy, yuyv


@pytest.mark.parametrize('pad', [0, 6])
@pytest.mark.parametrize('encoding', ['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'])
def test_yuv422_variants(encoding, pad):
    rgb, uyvy, yuyv = _yuv_pairs()
    packed = uyvy if encoding in ('yuv422', 'uyvy') else yuyv
    step, data = _pad_rows(packed, pad)
    out = raw_to_rgb(height=4, width=8, encoding=encoding, step=step, data=data)
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 3
    # The byte order matters: reading the same bytes as the other layout gives another image.
    other = 'yuyv' if encoding in ('yuv422', 'uyvy') else 'uyvy'
    wrong = raw_to_rgb(height=4, width=8, encoding=other, step=step, data=data)
    assert np.abs(wrong.astype(int) - rgb.astype(int)).max() > 20


def test_data_containers_rclpy_and_rosbags_style():
    rgb = _rgb()
    step, data = rgb_to_raw(rgb, 'rgb8')
    for container in (data, bytearray(data), array.array('B', data),
                      np.frombuffer(data, np.uint8), list(data)):
        out = raw_to_rgb(height=6, width=8, encoding='rgb8', step=step, data=container)
        np.testing.assert_array_equal(out, rgb)


def test_message_object_and_round_trip_through_rgb_to_raw():
    class Msg:
        height, width, encoding, is_bigendian = 6, 8, 'bgr8', 0

    rgb = _rgb(seed=5)
    Msg.step, Msg.data = rgb_to_raw(rgb, 'bgr8')
    np.testing.assert_array_equal(image_msg_to_rgb(Msg()), rgb)


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'encoding': 'bayer_rggb8'}, 'unsupported image encoding'),
    ({'step': 10}, 'step 10 is shorter'),
    ({'data': b'\x00' * 20}, 'needs 144 bytes, got 20'),
    ({'height': 0}, 'empty image'),
    ({'encoding': 'yuv422', 'width': 7, 'step': 14}, 'even width'),
    ({'data': object()}, 'not a byte buffer'),
])
def test_bad_raw_images_name_the_reason(kwargs, match):
    fields = {'height': 6, 'width': 8, 'encoding': 'rgb8', 'step': 24, 'data': bytes(144)}
    fields.update(kwargs)
    with pytest.raises(ImageDecodeError, match=match):
        raw_to_rgb(**fields)


def _smooth(height=32, width=48):
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=-1).astype(np.uint8)


def test_jpeg_and_png():
    rgb = _smooth()
    fmt, data = rgb_to_compressed(rgb, 'png')
    assert fmt == 'rgb8; png compressed bgr8'
    np.testing.assert_array_equal(compressed_to_rgb(format=fmt, data=data), rgb)
    fmt, data = rgb_to_compressed(rgb, 'jpeg', quality=95)
    out = compressed_to_rgb(format='jpeg', data=np.frombuffer(data, np.uint8))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4


def test_png_variants_grey_alpha_16bit_and_rgb_order():
    rgb = _smooth()
    ok, grey = cv2.imencode('.png', rgb[:, :, 0])
    out = compressed_to_rgb(format='png', data=grey.tobytes())
    np.testing.assert_array_equal(out[:, :, 1], rgb[:, :, 0])
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((*rgb.shape[:2], 1), 9, np.uint8)], 2)
    ok, encoded = cv2.imencode('.png', bgra)
    np.testing.assert_array_equal(compressed_to_rgb(format='png', data=encoded.tobytes()), rgb)
    ok, deep = cv2.imencode('.png', rgb[:, :, ::-1].astype(np.uint16) * 256 + 200)
    np.testing.assert_array_equal(compressed_to_rgb(format='png', data=deep.tobytes()), rgb)
    # image_transport stored the channels in RGB order ("compressed rgb8"): no swap.
    ok, as_rgb = cv2.imencode('.png', rgb)
    out = compressed_to_rgb(format='rgb8; png compressed rgb8', data=as_rgb.tobytes())
    np.testing.assert_array_equal(out, rgb)
    assert ok


@pytest.mark.parametrize(('fmt', 'data', 'match'), [
    ('jpeg', b'', 'no data'),
    ('jpeg', b'not an image at all', 'declared'),
    ('bmp', b'BM\x00\x00', 'neither JPEG nor PNG'),
    ('jpeg', b'\xff\xd8\xff\xe0' + b'\x00' * 40, 'corrupt JPEG'),
])
def test_bad_compressed_images_name_the_reason(fmt, data, match):
    with pytest.raises(ImageDecodeError, match=match):
        compressed_to_rgb(format=fmt, data=data)

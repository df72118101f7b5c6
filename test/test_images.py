"""Image message conversion: every raw encoding (with row padding), JPEG/PNG, bad messages,
and images whose headers claim huge sizes (refused from the header, in bounded time and memory).
"""

import array
import json
from pathlib import Path
import sys
import time

import cv2
from fixtures.image_bombs import jpeg_bomb
from fixtures.image_bombs import JPEG_BOMBS
from fixtures.image_bombs import png_bomb
from fixtures.image_bombs import PYTHON
from fixtures.image_bombs import raw_step_bomb_fields
from fixtures.image_bombs import RAW_STEP_BOMBS
from fixtures.image_bombs import run_measured
from fixtures.image_bombs import small_jpeg
from fixtures.image_bombs import small_png
import numpy as np
import pytest

from action_recognition.data.images import compressed_image_size
from action_recognition.data.images import compressed_to_rgb
from action_recognition.data.images import DECODE_ERROR_KINDS
from action_recognition.data.images import DEFAULT_MAX_PIXELS
from action_recognition.data.images import image_msg_to_rgb
from action_recognition.data.images import ImageDecodeError
from action_recognition.data.images import raw_to_rgb
from action_recognition.data.images import rgb_to_compressed
from action_recognition.data.images import rgb_to_raw


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


@pytest.mark.parametrize(('kwargs', 'match', 'kind'), [
    ({'encoding': 'bayer_rggb8'}, 'unsupported image encoding', 'unsupported encoding'),
    ({'step': 10}, 'step 10 is shorter', 'bad step'),
    ({'data': b'\x00' * 20}, 'needs 144 bytes, got 20', 'truncated data'),
    ({'height': 0}, 'empty image', 'empty image'),
    ({'encoding': 'yuv422', 'width': 7, 'step': 14}, 'even width', 'odd width'),
    ({'data': object()}, 'not a byte buffer', 'bad data'),
    ({'height': 1, 'step': 200}, 'step 200 .* longer than its whole data', 'bad step'),
])
def test_bad_raw_images_name_the_reason(kwargs, match, kind):
    fields = {'height': 6, 'width': 8, 'encoding': 'rgb8', 'step': 24, 'data': bytes(144)}
    fields.update(kwargs)
    with pytest.raises(ImageDecodeError, match=match) as info:
        raw_to_rgb(**fields)
    assert info.value.kind == kind


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


@pytest.mark.parametrize(('fmt', 'data', 'match', 'kind'), [
    ('jpeg', b'', 'no data', 'empty image'),
    ('jpeg', b'not an image at all', 'declared', 'format mismatch'),
    ('bmp', b'BM\x00\x00', 'neither JPEG nor PNG', 'unsupported format'),
    ('jpeg', b'\xff\xd8\xff\xe0' + b'\x00' * 40, 'corrupt JPEG', 'corrupt jpeg'),
])
def test_bad_compressed_images_name_the_reason(fmt, data, match, kind):
    with pytest.raises(ImageDecodeError, match=match) as info:
        compressed_to_rgb(format=fmt, data=data)
    assert info.value.kind == kind


# -- sizes from the header, and images that claim huge sizes -------------------------------------

def _jpeg(image, *params):
    ok, encoded = cv2.imencode('.jpg', image, list(params))
    assert ok
    return encoded.tobytes()


def test_header_sizes_of_jpeg_and_png_variants():
    bgr = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    variants = [
        _jpeg(bgr), _jpeg(bgr[:, :, 0]), _jpeg(bgr, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        _jpeg(bgr, cv2.IMWRITE_JPEG_OPTIMIZE, 1), _jpeg(bgr, cv2.IMWRITE_JPEG_RST_INTERVAL, 1),
        _jpeg(bgr, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
    ]
    for image in (bgr, bgr[:, :, 0], np.concatenate([bgr, bgr[:, :, :1]], 2),
                  bgr.astype(np.uint16) * 250):
        ok, encoded = cv2.imencode('.png', image)
        assert ok
        variants.append(encoded.tobytes())
    for data in variants:
        fmt, width, height = compressed_image_size(data)
        assert (width, height) == (53, 37), fmt
        assert compressed_to_rgb(format=fmt, data=data).shape == (37, 53, 3)
    # Segments before the frame header are skipped by their length (an APP1 with a fake SOF
    # inside, a comment, fill bytes before a marker).
    data = small_jpeg(16, 24)
    fake = b'\xff\xc0\x00\x11\x08\xff\xdc\xff\xdc'
    extra = b'\xff\xe1' + (2 + len(fake)).to_bytes(2, 'big') + fake + \
        b'\xff\xff\xff\xfe\x00\x05abc'
    patched = data[:2] + extra + data[2:]
    assert compressed_image_size(patched) == ('jpeg', 24, 16)
    assert compressed_to_rgb(format='jpeg', data=patched).shape == (16, 24, 3)


def _refusal(call):
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError) as info:
        call()
    seconds = time.perf_counter() - start
    assert info.value.kind in DECODE_ERROR_KINDS, info.value.kind
    return info.value, seconds


@pytest.mark.parametrize(('height', 'width'), JPEG_BOMBS)
def test_jpeg_bombs_are_refused_from_the_header(height, width):
    data = jpeg_bomb(height, width)
    assert len(data) < 1000
    assert compressed_image_size(data) == ('jpeg', width, height)
    error, seconds = _refusal(lambda: compressed_to_rgb(format='jpeg', data=data))
    assert error.kind == 'oversized' and seconds < 0.1
    assert f'{width}x{height}' in str(error) and str(DEFAULT_MAX_PIXELS) in str(error)


@pytest.mark.parametrize(('height', 'width'), [(65500, 65500), (20000, 30000), (1, 2 ** 31 - 1)])
def test_png_bombs_are_refused_from_the_header(height, width):
    data = png_bomb(height, width)
    assert compressed_image_size(data) == ('png', width, height)
    error, seconds = _refusal(lambda: compressed_to_rgb(format='png', data=data))
    assert error.kind == 'oversized' and seconds < 0.1


@pytest.mark.parametrize('step', RAW_STEP_BOMBS)
def test_raw_images_claiming_huge_rows_are_refused(step):
    fields = raw_step_bomb_fields(step)
    error, seconds = _refusal(lambda: raw_to_rgb(**fields))
    assert error.kind == 'oversized' and seconds < 0.1
    # With a limit that would allow such a row, the data length still refuses it.
    error, _ = _refusal(lambda: raw_to_rgb(**fields, max_pixels=step))
    assert error.kind == 'bad step' and 'longer than its whole data (3 bytes)' in str(error)


def test_raw_images_above_the_limit_are_refused_before_their_data_is_read():
    class Untouchable:  # any access to the data would fail the test
        def __getattr__(self, name):
            raise AssertionError(f'data.{name} was read')

    for height, width in ((4097, 4096), (65535, 65535), (1, 2 ** 40)):
        error, seconds = _refusal(lambda h=height, w=width: raw_to_rgb(
            height=h, width=w, encoding='mono8', step=w, data=Untouchable()))
        assert error.kind == 'oversized' and seconds < 0.1
    # A whole message of 4097 x 4097 mono8 bytes (all present) is refused too.
    big = bytes(4097 * 4097)
    error, _ = _refusal(lambda: raw_to_rgb(height=4097, width=4097, encoding='mono8',
                                           step=4097, data=big))
    assert error.kind == 'oversized'


def test_the_limit_is_a_parameter_and_inclusive():
    rgb = _smooth(32, 48)
    step, data = rgb_to_raw(rgb)
    np.testing.assert_array_equal(
        raw_to_rgb(height=32, width=48, encoding='rgb8', step=step, data=data,
                   max_pixels=32 * 48), rgb)
    with pytest.raises(ImageDecodeError, match='more than the limit of 1535 pixels'):
        raw_to_rgb(height=32, width=48, encoding='rgb8', step=step, data=data,
                   max_pixels=32 * 48 - 1)
    for fmt in ('png', 'jpeg'):
        declared, encoded = rgb_to_compressed(rgb, fmt)
        assert compressed_to_rgb(format=declared, data=encoded,
                                 max_pixels=32 * 48).shape == (32, 48, 3)
        error, _ = _refusal(lambda f=declared, d=encoded: compressed_to_rgb(
            format=f, data=d, max_pixels=32 * 48 - 1))
        assert error.kind == 'oversized'

    class Msg:
        height, width, encoding, is_bigendian = 32, 48, 'rgb8', 0

    Msg.step, Msg.data = step, data
    with pytest.raises(ImageDecodeError, match='more than the limit of 100 pixels'):
        image_msg_to_rgb(Msg(), max_pixels=100)


def test_raw_rows_are_viewed_not_padded_and_the_result_owns_its_pixels():
    rgb = _rgb(5, 4)
    step, data = _pad_rows(rgb, 7)
    # The last row without its padding (the message ends after the last pixel).
    out = raw_to_rgb(height=5, width=4, encoding='rgb8', step=step, data=data[:-7])
    np.testing.assert_array_equal(out, rgb)
    # The frame does not keep the message's buffer alive (nor is it a view of it).
    buffer = np.frombuffer(rgb.tobytes(), np.uint8).copy()
    out = raw_to_rgb(height=5, width=4, encoding='rgb8', step=12, data=buffer)
    np.testing.assert_array_equal(out, rgb)
    assert out.base is None or not np.shares_memory(out, buffer)
    assert out.flags.writeable and out.flags.c_contiguous


@pytest.mark.parametrize(('make', 'kind'), [
    (lambda: small_jpeg()[:40], 'corrupt jpeg'),  # ends before the frame header
    (lambda: small_jpeg().replace(b'\xff\xc0', b'\xff\xd9', 1), 'corrupt jpeg'),  # EOI first
    (lambda: small_jpeg()[:2] + b'\x00\x00' + small_jpeg()[2:], 'corrupt jpeg'),  # no marker
    (lambda: small_jpeg()[:2] + b'\xff\xd0' * 2000, 'corrupt jpeg'),  # endless markers
    (lambda: small_png()[:30], 'corrupt png'),  # too short for IHDR
    (lambda: small_png()[:29] + b'\x00\x00\x00\x00' + small_png()[33:], 'corrupt png'),  # CRC
    (lambda: png_bomb(0, 10), 'corrupt png'),  # zero height
])
def test_unparsable_headers_are_refused_not_decoded_blindly(make, kind, monkeypatch):
    data = make()

    def never(*args, **kwargs):
        raise AssertionError('cv2.imdecode ran on data whose header was not parsed')

    monkeypatch.setattr(cv2, 'imdecode', never)
    error, seconds = _refusal(lambda: compressed_to_rgb(format='', data=data))
    assert error.kind == kind and seconds < 0.1, error
    assert str(error).startswith(('corrupt JPEG header: ', 'corrupt PNG header: '))


def test_opencv_errors_become_decode_errors():
    # Above OpenCV's own pixel limit (2^30) when the caller's limit lets it through: OpenCV
    # raises cv2.error, which must come out as an ImageDecodeError.
    data = jpeg_bomb(65500, 65500)
    error, _ = _refusal(lambda: compressed_to_rgb(format='jpeg', data=data, max_pixels=2 ** 33))
    assert error.kind == 'decoder error' and 'OpenCV failed to decode' in str(error)
    assert set(DECODE_ERROR_KINDS) >= {'oversized', 'corrupt jpeg', 'decoder error'}


CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from fixtures import image_bombs as bombs
from action_recognition.data import images

def peak_mb():
    # VmHWM, this process's own peak (ru_maxrss would carry the parent's across vfork + exec).
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

# A harmless run first: what decoding small images costs.
images.compressed_to_rgb(format='jpeg', data=bombs.small_jpeg())
images.compressed_to_rgb(format='png', data=bombs.small_png())
images.raw_to_rgb(**bombs.raw_step_bomb_fields(3))
baseline = peak_mb()
cases = [(f'jpeg {h}x{w}', lambda h=h, w=w: images.compressed_to_rgb(
             format='jpeg', data=bombs.jpeg_bomb(h, w))) for h, w in bombs.JPEG_BOMBS]
cases.append(('png 65500x65500', lambda: images.compressed_to_rgb(
    format='png', data=bombs.png_bomb(65500, 65500))))
cases += [(f'raw step {s}', lambda s=s: images.raw_to_rgb(**bombs.raw_step_bomb_fields(s)))
          for s in bombs.RAW_STEP_BOMBS]
results = []
for name, call in cases:
    start = time.perf_counter()
    try:
        call()
        outcome = 'accepted'
    except images.ImageDecodeError as error:
        outcome = 'ImageDecodeError ' + str(getattr(error, 'kind', None))
    except BaseException as error:
        outcome = type(error).__name__
    results.append([name, outcome, time.perf_counter() - start])
print(json.dumps({'baseline_mb': baseline, 'peak_mb': peak_mb(), 'results': results}))
"""


def test_bombs_in_a_child_process_stay_fast_and_small(tmp_path):
    """Every bomb in a fresh process that imports only images.py (numpy, cv2): each is refused
    with an ImageDecodeError in well under a second and the peak RSS stays near a harmless run.
    The child's address space is capped at 3 GB so that a regression fails there, not the
    machine."""
    test_dir = Path(__file__).resolve().parent
    code, peak_mb, output = run_measured([PYTHON, '-c', CHILD, str(test_dir)], cwd=tmp_path,
                                         timeout_s=120, address_space_gb=3)
    assert code == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    for name, outcome, seconds in report['results']:
        assert outcome == 'ImageDecodeError oversized', (name, outcome)
        assert seconds < 0.1, (name, seconds)
    assert len(report['results']) == 6
    print(f"child peak RSS {peak_mb:.0f} MB (after imports and a harmless run "
          f"{report['baseline_mb']:.0f} MB)", file=sys.stderr)
    assert peak_mb < 150
    assert peak_mb - report['baseline_mb'] < 20

"""bench: a tiny run works and its table/JSON/PNG carry the fields (no timing asserts)."""

import json

import pytest

from action_recognition.cli import main


def test_tiny_bench_run(tmp_path, capsys):
    out_json = tmp_path / 'bench.json'
    out_png = tmp_path / 'bench.png'
    code = main(['bench', '--models', 'eco_lite_add_small', '--backends', 'torch',
                 'torch-stream', 'onnxruntime-int8', '--frames', '4', '--size',
                 '112', '--threads', '1', '--repeats', '2', '--warmup', '0', '--stream-windows',
                 '1', '--calibration-clips', '1', '--eval-clips', '2', '--json', str(out_json),
                 '--plot', str(out_png), '--no-progress'])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert 'machine:' in printed and 'load average' in printed and 'fp32 peak' in printed
    data = json.loads(out_json.read_text())
    assert data['machine']['cores'] >= 1 and data['machine']['cpu']
    assert data['peak_gmacs']['1'] > 0 and len(data['load_before']) == 3
    rows = data['rows']
    assert [r['backend'] for r in rows] == ['torch', 'torch-stream', 'onnxruntime-int8']
    for row in rows:
        assert row['note'] == '', row['note']
        assert row['latency_p50_ms'] > 0 and row['latency_p90_ms'] >= row['latency_p50_ms']
        assert row['clips_per_s'] > 0 and row['gmacs_per_s'] > 0 and row['stream_fps'] > 0
        assert row['peak_rss_mb'] > 0 and row['gmac_per_clip'] > 0 and row['four_d_only']
    assert rows[2]['top1_agreement_vs_fp32'] is not None
    assert out_png.stat().st_size > 1000


def test_unknown_model_is_a_clear_error(capsys):
    assert main(['bench', '--models', 'nope', '--no-progress', '--threads', '1']) == 1
    assert 'unknown model' in capsys.readouterr().out


def test_converted_5d_model_is_benchmarked_beside_the_original(tmp_path, capsys):
    # eco_lite_conv3d_5d at its narrowest on the small 2D-Net: the original (5D, torch) and its
    # converted 4D-only twin (torch-4d), timed in one run.
    out_json = tmp_path / 'bench.json'
    code = main(['bench', '--models', 'eco_lite_conv3d_5d', '--backends', 'torch', 'torch-4d',
                 '--frames', '4', '--size', '112', '--threads', '1', '--repeats', '1',
                 '--warmup', '0', '--stream-windows', '0', '--json', str(out_json),
                 '--no-progress'])
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = json.loads(out_json.read_text())['rows']
    assert [r['backend'] for r in rows] == ['torch', 'torch-4d']
    assert all(r['note'] == '' and r['latency_p50_ms'] > 0 for r in rows), rows


def test_openvino_backends_beside_onnxruntime(tmp_path, capsys):
    out_json = tmp_path / 'bench.json'
    code = main(['bench', '--models', 'eco_lite_add_small', '--backends', 'onnxruntime',
                 'openvino', 'openvino-bf16', 'openvino-int8', '--frames', '4', '--size', '112',
                 '--threads', '1', '--repeats', '2', '--warmup', '0', '--stream-windows', '1',
                 '--calibration-clips', '2', '--eval-clips', '2', '--json', str(out_json),
                 '--no-progress'])
    printed = capsys.readouterr().out
    assert code == 0, printed
    machine = next(line for line in printed.splitlines() if line.startswith('machine:'))
    assert ', openvino 20' in machine  # the machine line names OpenVINO's version
    rows = {r['backend']: r for r in json.loads(out_json.read_text())['rows']}
    assert list(rows) == ['onnxruntime', 'openvino', 'openvino-bf16', 'openvino-int8']
    if rows['openvino-bf16']['note']:  # a CPU without bf16
        assert 'no bf16 support' in rows['openvino-bf16']['note']
        del rows['openvino-bf16']
    for name, row in rows.items():
        assert row['note'] == '', row['note']
        assert row['latency_p50_ms'] > 0 and row['stream_fps'] > 0, name
        # Agreement with fp32 for the reduced precisions only, as for onnxruntime-int8.
        assert (row['top1_agreement_vs_fp32'] is None) == (name in ('onnxruntime', 'openvino'))


def test_a_4d_form_is_benchmarked_beside_its_5d_original_on_every_backend(tmp_path, capsys):
    # NAME:4d is NAME through the converter: the same backends time both in one run.
    out_json = tmp_path / 'bench.json'
    code = main(['bench', '--models', 'x3d_m_5d', 'x3d_m_5d:4d', '--backends', 'onnxruntime',
                 'openvino', '--frames', '4', '--size', '64', '--threads', '1', '--repeats',
                 '1', '--warmup', '0', '--stream-windows', '0', '--eval-clips', '0', '--json',
                 str(out_json), '--no-progress'])
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = json.loads(out_json.read_text())['rows']
    assert [(r['model'], r['backend'], r['four_d_only']) for r in rows] == [
        ('x3d_m_5d', 'onnxruntime', False), ('x3d_m_5d', 'openvino', False),
        ('x3d_m_5d:4d', 'onnxruntime', True), ('x3d_m_5d:4d', 'openvino', True)]
    assert all(r['note'] == '' and r['latency_p50_ms'] > 0 for r in rows), rows
    # Same network; the converter adds only its fused stem's work: conv_t's 27 MACs per output
    # five times over instead of once, plus the 5 of conv_xy (4 frames of 24 x 32 x 32).
    assert rows[2]['gmac_per_clip'] - rows[0]['gmac_per_clip'] == pytest.approx(
        (4 * 27 - 5) * 4 * 24 * 32 * 32 / 1e9, rel=0.05)
    assert main(['bench', '--models', 'nope:4d', '--no-progress', '--threads', '1']) == 1
    assert 'unknown model' in capsys.readouterr().out


def test_builder_options_after_at_reach_the_model(tmp_path, capsys):
    # x3d_xs@fused_stem=true builds the fused stem: 5x the stem conv's MACs, one run beside it.
    out_json = tmp_path / 'bench.json'
    code = main(['bench', '--models', 'x3d_xs', 'x3d_xs@fused_stem=true', '--backends', 'torch',
                 '--frames', '4', '--size', '64', '--threads', '1', '--repeats', '1',
                 '--warmup', '0', '--stream-windows', '0', '--json', str(out_json),
                 '--no-progress'])
    printed = capsys.readouterr().out
    assert code == 0, printed
    plain, fused = json.loads(out_json.read_text())['rows']
    assert fused['model'] == 'x3d_xs@fused_stem=true' and fused['note'] == ''
    stem_conv_t = 4 * 24 * 32 * 32 * 27 / 1e9  # conv_t's GMAC at 4x64
    assert fused['gmac_per_clip'] - plain['gmac_per_clip'] == pytest.approx(
        4 * stem_conv_t - 4 * 24 * 32 * 32 * 5 / 1e9, rel=0.05)
    assert main(['bench', '--models', 'x3d_xs@fused_stem', '--no-progress']) == 1
    assert 'KEY=VALUE' in capsys.readouterr().out

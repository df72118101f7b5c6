"""Export: the 4D-only proof, metadata, self-contained file, parity, fp16 and int8."""

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import onnx
from onnx import helper
from onnx import TensorProto
import onnxruntime as ort
import pytest
import torch
from torch import nn

from action_recognition.cli import main
from action_recognition.data.clips import prepare_clip
from action_recognition.data.sampling import sample_indices
from action_recognition.data.synth_clips import CLASSES
from action_recognition.data.video import write_video
from action_recognition.deploy.calibration import calibration_clips
from action_recognition.deploy.export import export_onnx
from action_recognition.deploy.onnx_export import ExportError
from action_recognition.io.onnx_check import check_onnx_4d_only
from action_recognition.io.specs import metadata_proof
from action_recognition.io.specs import metadata_spec
from action_recognition.io.specs import PROOF_METADATA_KEY
from action_recognition.io.specs import read_onnx_metadata
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.protocol import ModelLoadError
from action_recognition.runtime.torch_backend import load_checkpoint_model
from action_recognition.spec import ModelSpec
from action_recognition.spec import SPEC_METADATA_KEY

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / 'models' / 'action_recognition_default.pt'


class Tiny4d(nn.Module):
    """Frames [B*T, 3, H, W] -> logits [B, classes], 2D convs and a (3, 1) temporal conv."""

    def __init__(self, num_classes, num_frames):
        super().__init__()
        self.num_frames = num_frames
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.temporal = nn.Conv2d(8, 8, (3, 1), padding=(1, 0))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        _, c, h, w = x.shape
        x = x.reshape(-1, self.num_frames, c, h * w).permute(0, 2, 1, 3)  # [B, C, T, HW]
        x = torch.relu(self.temporal(x))
        return self.fc(x.mean(dim=(2, 3)))


class Tiny5d(nn.Module):
    def __init__(self, num_classes, num_frames):
        super().__init__()
        self.num_frames = num_frames
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        _, c, h, w = x.shape
        x = x.reshape(-1, self.num_frames, c, h, w).transpose(1, 2)
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


def _spec(**kwargs):
    base = dict(model='tiny', num_classes=11, num_frames=4, labels=CLASSES,
                input_size=(32, 32), resize_short=36)
    base.update(kwargs)
    return ModelSpec(**base)


def _tiny(cls=Tiny4d, spec=None):
    torch.manual_seed(0)
    spec = spec or _spec()
    return cls(spec.num_classes, spec.num_frames).eval()


def test_export_4d_model_is_proven_self_contained_and_dynamic(tmp_path):
    spec = _spec(frame_stride=2)
    path = tmp_path / 'out' / 'tiny.onnx'
    report = export_onnx(_tiny(spec=spec), spec, path)
    assert report.four_d_only and report.problems == [] and report.max_rank == 4
    assert report.max_abs_diff <= 1e-4
    assert [p.name for p in path.parent.iterdir()] == ['tiny.onnx']  # no external data
    proto = onnx.load(path, load_external_data=False)
    assert not any(init.data_location == TensorProto.EXTERNAL
                   for init in proto.graph.initializer)
    assert check_onnx_4d_only(proto) == []
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelSpec.from_json(meta[SPEC_METADATA_KEY]) == spec
    assert json.loads(meta['labels']) == list(CLASSES)
    assert meta['clip_length'] == '4' and meta['frame_stride'] == '2'
    assert meta['input_size'] == '32x32'
    assert json.loads(meta['mean']) == list(spec.mean) and json.loads(meta['std']) == list(
        spec.std)
    assert proto.opset_import[0].version == 17
    (frames,) = proto.graph.input
    assert frames.name == 'frames' and frames.type.tensor_type.elem_type == TensorProto.UINT8
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    clips = np.random.default_rng(0).integers(0, 256, (3 * 4, 3, 32, 32), dtype=np.uint8)
    (logits,) = session.run(['logits'], {'frames': clips})
    assert logits.shape == (3, 11) and logits.dtype == np.float32


def test_proof_fails_on_a_5d_model(tmp_path):
    spec = _spec()
    with pytest.raises(ExportError, match='not 4D-only'):
        export_onnx(_tiny(Tiny5d), spec, tmp_path / 'five.onnx')
    assert not (tmp_path / 'five.onnx').exists()
    report = export_onnx(_tiny(Tiny5d), spec, tmp_path / 'five.onnx', allow_5d=True)
    assert not report.four_d_only and report.max_rank == 5
    text = '\n'.join(report.problems)
    assert '3D kernel' in text and 'rank 5' in text and 'initializer' in text


def test_registered_5d_model_is_refused_unless_asked(tmp_path, capsys):
    spec = _spec(model='eco_lite_conv3d_5d')
    with pytest.raises(ExportError, match='allow_5d'):
        export_onnx(_tiny(Tiny5d), spec, tmp_path / 'x.onnx')
    code = main(['export', '--model', 'eco_lite_conv3d_5d', '--num-classes', '4', '--frames',
                 '4', '--size', '112', '--output', str(tmp_path / 'x.onnx')])
    assert code == 1 and '--allow-5d' in capsys.readouterr().out
    assert not (tmp_path / 'x.onnx').exists()


def test_cli_exports_a_registered_4d_model(tmp_path, capsys):
    out = tmp_path / 'small.onnx'
    code = main(['export', '--model', 'eco_lite_add_small', '--num-classes', '5', '--frames',
                 '4', '--size', '112', '--output', str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert 'max abs diff' in printed and '4D-only proof: passed' in printed
    assert check_onnx_4d_only(onnx.load(out)) == []


def test_cli_builder_options_go_into_the_model_and_its_spec(tmp_path, capsys):
    out = tmp_path / 'x3d.onnx'
    code = main(['export', '--model', 'x3d_xs', '--num-classes', '5', '--frames', '4', '--size',
                 '64', '--option', 'fused_stem=true', '--option', 'crop_size=64', '--eval-clips',
                 '2', '--output', str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    proto = onnx.load(out)
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata_spec(metadata, out).options == {'fused_stem': True, 'crop_size': 64}
    stem = [n.op_type for n in proto.graph.node if n.name.startswith('/model/blocks.0/')]
    assert stem.count('Conv') == 1 and 'Transpose' not in stem  # the fused stem
    code = main(['export', '--model', 'x3d_xs', '--checkpoint', str(out), '--option',
                 'fused_stem=true', '--output', str(tmp_path / 'y.onnx')])
    assert code == 1 and 'checkpoint carries' in capsys.readouterr().out


def test_unknown_rank_cannot_be_proven():
    shape_in = helper.make_tensor_value_info('shape', TensorProto.INT64, [None])
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node('Reshape', ['x', 'shape'], ['y'])], 'g',
                              [x, shape_in], [y])
    problems = check_onnx_4d_only(helper.make_model(graph))
    assert problems and 'unknown rank' in problems[0]


def test_parity_failure_fails_the_export(tmp_path):
    with pytest.raises(ExportError, match='disagree'):
        export_onnx(_tiny(), _spec(), tmp_path / 'x.onnx', tolerance=-1.0)


def test_fp16_keeps_io_types(tmp_path):
    path = tmp_path / 'tiny16.onnx'
    report = export_onnx(_tiny(), _spec(), path, fp16=True, eval_clips=11)
    proto = onnx.load(path)
    assert report.precision == 'fp16' and report.four_d_only
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(i.data_type == TensorProto.FLOAT16 for i in proto.graph.initializer)
    assert not any(i.data_type == TensorProto.FLOAT for i in proto.graph.initializer)
    # The uint8 input is cast straight to float16 (exact for 0..255).
    (cast,) = [node for node in proto.graph.node if 'frames' in node.input]
    assert cast.op_type == 'Cast'
    assert helper.get_attribute_value(cast.attribute[0]) == TensorProto.FLOAT16
    if report.quantized_max_abs_diff is not None:  # the CPU provider could run it
        assert report.quantized_max_abs_diff < 1e-2 and report.top1_agreement >= 0.9


def test_int8_static_qdq_reports_agreement_and_accuracy(tmp_path):
    path = tmp_path / 'tiny8.onnx'
    report = export_onnx(_tiny(), _spec(), path, int8=True, calibration_clips=8,
                         eval_clips=11)
    proto = onnx.load(path)
    ops = {node.op_type for node in proto.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    assert report.precision == 'int8' and report.four_d_only
    assert report.top1_agreement is not None and 0.0 <= report.top1_agreement <= 1.0
    assert report.accuracy is not None and report.accuracy_fp32 is not None
    assert 'synthetic accuracy' in report.summary()


def test_int8_calibration_from_a_directory(tmp_path):
    clips = np.random.default_rng(0).integers(0, 256, (3, 6, 40, 48, 3), dtype=np.uint8)
    for i, clip in enumerate(clips):
        np.save(tmp_path / f'clip{i}.npy', clip)
    report = export_onnx(_tiny(), _spec(), tmp_path / 'q.onnx', int8=True,
                         calibration=tmp_path, eval_clips=4)
    assert report.precision == 'int8'
    with pytest.raises(ExportError, match='calibration directory not found'):
        export_onnx(_tiny(), _spec(), tmp_path / 'q.onnx', int8=True,
                    calibration=tmp_path / 'missing', force=True)


def test_calibration_reads_videos_and_skips_unreadable_files(tmp_path):
    spec = _spec()
    video = np.random.default_rng(0).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    write_video(tmp_path / 'a.avi', video)  # lossless: decodes to exactly `video`
    (tmp_path / 'b.mp4').write_bytes(b'not a video')
    clips = calibration_clips(tmp_path, spec, 4)
    assert clips.shape == (1, 4, 3, 32, 32) and clips.dtype == np.uint8
    assert np.array_equal(clips[0], prepare_clip(video, sample_indices(spec, 6), spec))


class TinyWithExtraState(Tiny4d):
    """Keeps plain data as extra state (as the Inception 2D-Net does)."""

    def get_extra_state(self):
        return {'flag': True}

    def set_extra_state(self, state):
        pass


def test_modules_with_extra_state_export_at_the_asked_opset(tmp_path):
    model = _tiny(TinyWithExtraState)
    report = export_onnx(model, _spec(), tmp_path / 'extra.onnx')
    assert report.four_d_only
    assert onnx.load(tmp_path / 'extra.onnx').opset_import[0].version == 17
    assert model.state_dict()['_extra_state'] == {'flag': True}  # restored after the export


def test_int8_keeps_the_preprocessing_before_the_first_convolution_in_float(tmp_path):
    # The default model standardises each frame (means, variance, Pow) before its first
    # convolution: on uint8 steps that lost 4 of 110 synthetic clips; kept in float, none.
    model, spec = load_checkpoint_model(DEFAULT_MODEL)
    path = tmp_path / 'default8.onnx'
    report = export_onnx(model, spec, path, int8=True, calibration_clips=8, eval_clips=22)
    proto = onnx.load(path)
    producers = {out: node for node in proto.graph.node for out in node.output}
    pows = [node for node in proto.graph.node if node.op_type == 'Pow']
    assert pows, 'the standardisation is in the graph'
    for node in pows:
        assert producers[node.input[0]].op_type != 'DequantizeLinear', node.name
    assert any(node.op_type == 'QuantizeLinear' for node in proto.graph.node)
    assert report.top1_agreement >= 0.95


# -- the 4D-only proof recorded in the file, checked at load without onnx -------------------------

def _metadata(path):
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def test_export_records_the_proof_of_its_graph_and_load_trusts_only_that_graph(tmp_path, caplog):
    path = tmp_path / 'tiny.onnx'
    export_onnx(_tiny(), _spec(), path, eval_clips=0)
    metadata, digest = read_onnx_metadata(path.read_bytes())
    proof = metadata_proof(metadata, digest)
    assert proof is not None and proof.four_d_only and proof.max_rank == 4
    assert metadata == _metadata(path)  # read without onnx, as onnx reads it
    with caplog.at_level('INFO'):
        load_backend(path, threads=1).close()
    assert 'carries no 4D-only proof' not in caplog.text
    # A 5D graph given the 4D graph's proof: the proof is of another graph, so the load checks
    # the file itself and refuses it.
    forged = tmp_path / 'forged.onnx'
    export_onnx(_tiny(Tiny5d), _spec(), forged, eval_clips=0, allow_5d=True)
    proto = onnx.load(forged)
    for entry in proto.metadata_props:
        if entry.key == PROOF_METADATA_KEY:
            entry.value = metadata[PROOF_METADATA_KEY]
    forged.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelLoadError, match='rank 5'), caplog.at_level('INFO'):
        load_backend(forged)
    assert 'forged.onnx carries no 4D-only proof of its graph: checking it now' in caplog.text
    # A second graph field in front of the proven one: protobuf parsers merge the two, so the
    # proven graph is not the one that would run. Refused before anything reads it.
    graph = onnx.load(forged).graph.SerializeToString()
    length, size = b'', len(graph)
    while True:
        length += bytes([size & 0x7F | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            break
    doubled = tmp_path / 'doubled.onnx'
    doubled.write_bytes(b'\x3a' + length + graph + path.read_bytes())
    with pytest.raises(ModelLoadError, match=r'not an ONNX file \(the graph field appears twice'):
        load_backend(doubled)


LOAD_WITHOUT_ONNX = """
import sys
sys.modules['onnx'] = None  # as on a robot without the onnx package
from action_recognition.runtime.backends import load_backend
from action_recognition.runtime.protocol import ModelLoadError
try:
    load_backend(sys.argv[1], allow_5d=sys.argv[2] == 'allow')
except ModelLoadError as error:
    print('refused:', error)
else:
    print('loaded')
"""


def test_a_file_without_a_proof_needs_onnx_or_allow_5d(tmp_path):
    path = tmp_path / 'old.onnx'
    export_onnx(_tiny(), _spec(), path, eval_clips=0)
    proto = onnx.load(path)
    kept = [p for p in proto.metadata_props if p.key != PROOF_METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)  # as exported before proofs were recorded
    path.write_bytes(proto.SerializeToString())

    def load(mode):
        done = subprocess.run([sys.executable, '-c', LOAD_WITHOUT_ONNX, str(path), mode],
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip()

    assert load('refuse').startswith(f'refused: {path} carries no 4D-only proof of its graph')
    assert 're-export it, install onnx, or set allow_5d' in load('refuse')
    assert load('allow') == 'loaded'
    load_backend(path, threads=1).close()  # with onnx installed it is checked here

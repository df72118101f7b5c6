"""Runs in the RKNN toolchain environment (``.venv-rknn``): build, simulate, report placement.

Run as a script (``.venv-rknn/bin/python rknn_driver.py REQUEST.json``) by
:mod:`action_recognition.deploy.targets.rockchip`; it imports only numpy and rknn-toolkit2 (the
package itself needs torch, which that environment does not have). The request names the
float-input ONNX file, the target platform, the precision, the calibration clips (``.npy``) and
the evaluation clips; the driver writes the ``.rknn`` file and the simulator's logits on the
evaluation clips (``.npy``). With ``verbose``, the toolkit's compiler prints its build table
(``ID OpType DataType Target ...``, one row per operator with CPU or NPU) on the process's own
output, which the caller reads for the placement (:func:`placement`).
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import sys

import numpy as np


def placement(log: str) -> tuple[list[str], list[str], list[str]]:
    """``(operators on the NPU, on the CPU, the output's layout)`` from the build table in
    ``log``, each as ``'OpType (data type)'``; the input and output operators aside.

    The third list holds the reshapes that feed an output operator directly: the toolkit lays a
    classifier's ``[1, K, 1, 1]`` result out as the graph's ``[1, K]`` output on the CPU when
    ``K`` is not a multiple of its NPU's channel alignment (16); no data is computed there.
    """
    rows = re.findall(r'RKNN: \[[^\]]*\] (\d+)\s+(\w+)\s+(\w+)\s+(CPU|NPU)\s', log)
    npu: list[str] = []
    cpu: list[str] = []
    output: list[str] = []
    for index, (_, op, dtype, target) in enumerate(rows):
        if op in ('InputOperator', 'OutputOperator'):
            continue
        name = f'{op} ({dtype})'
        feeds_output = index + 1 < len(rows) and rows[index + 1][1] == 'OutputOperator'
        if target == 'NPU':
            npu.append(name)
        elif op == 'Reshape' and feeds_output:
            output.append(name)
        else:
            cpu.append(name)
    return npu, cpu, output


def main(request_path: str) -> int:
    from rknn.api import RKNN  # the toolkit exists in .venv-rknn only

    request = json.loads(Path(request_path).read_text())
    work = Path(request['workdir'])
    rknn = RKNN(verbose=True)
    quantize = request['precision'] == 'int8'
    rknn.config(target_platform=request['platform'], optimization_level=3,
                quantized_dtype='w8a8')  # used only when building with do_quantization
    if rknn.load_onnx(request['onnx']) != 0:
        raise RuntimeError(f'rknn-toolkit2 cannot load {request["onnx"]}')
    dataset = None
    if quantize:
        dataset = work / 'dataset.txt'
        dataset.write_text('\n'.join(request['calibration']) + '\n')
    if rknn.build(do_quantization=quantize,
                  dataset=str(dataset) if dataset is not None else None) != 0:
        raise RuntimeError('rknn build failed (see the toolkit output above)')
    if rknn.export_rknn(request['output']) != 0:
        raise RuntimeError('rknn export failed')
    if rknn.init_runtime() != 0:  # no target: the toolkit's simulator
        raise RuntimeError('the rknn simulator did not start')
    logits = [np.asarray(rknn.inference(inputs=[np.load(path).astype(np.float32)],
                                        data_format='nchw')[0], dtype=np.float32)
              for path in request['eval']]
    np.save(work / 'logits.npy', np.concatenate(logits) if logits else np.zeros((0, 0)))
    rknn.release()
    (work / 'result.json').write_text(json.dumps({'version': _version()}))
    return 0


def _version() -> str:
    try:
        from importlib.metadata import version  # standard library, only for the report

        return version('rknn-toolkit2')
    except Exception:
        return 'unknown'


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))

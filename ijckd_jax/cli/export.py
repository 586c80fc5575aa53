"""Exports a run's trained model as the one function it predicts with, BatchNorm folded.
(tools/export_student.py is the same program.)

    ijckd-export runs/ijckd --out shipped/ijckd [--formats jax,onnx] [--step N] [--data-dir DIR]

The model is the one the run's objective evaluates with: the student with its own classifier
(ce, kd, srrl, ijckd_distance), the student through the connector into the frozen teacher's
classifier (ijckd, simkd, ce_teacher_classifier), or the joint classifier (ijckd_joint).
OUT/model.jax takes uint8 RGB images [batch, H, W, 3] (normalised inside) and returns
logits; any process with jax loads it (tools/predict.py, or jax.export.deserialize).
--formats jax,onnx also writes OUT/model.onnx (jax2onnx; run it with onnxruntime).
OUT/model.json says what it is. Nothing is written unless each file's logits equal the
training evaluation's within 1e-4 on the run's own test images.
"""
import argparse
import sys

from ijckd_jax.deploy.artifact import FORMATS, export_run
from ijckd_jax.errors import RunError


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('run_directory', metavar='RUN_DIR', help="a training run's --workdir")
    parser.add_argument('--out', required=True, help='the directory to create')
    parser.add_argument('--step', type=int, help="the checkpoint's step; the latest if omitted")
    parser.add_argument('--formats', default='jax',
                        help='comma-separated: jax (a serialized jax.export artifact, StableHLO), '
                             'onnx (needs jax2onnx and onnxruntime)')
    parser.add_argument('--data-dir', default='',
                        help="where tfds finds the run's data set, if not its default (for the check)")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        description = export_run(arguments.run_directory, arguments.out, arguments.step, arguments.data_dir,
                                 tuple(name.strip() for name in arguments.formats.split(',') if name.strip()))
    except RunError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    parts = ' + '.join(description['architecture'].values())
    print(f"{arguments.run_directory} (epoch {description['epoch']}): {parts}; "
          f"{description['parameters']['total']:,} parameters, {description['macs_per_image'] / 1e6:.1f} M MACs "
          'per image.')
    for name, difference in description['parity']['max_abs_logit_difference'].items():
        print(f"{FORMATS[name]}: logits within {difference:.1e} of training's on "
              f"{description['parity']['images']} test images.")
    print(f'wrote {arguments.out}')
    return 0

"""The shipped model: BatchNorm folded on every kind of block of the zoo, every kind of layer through
ONNX, the export of a trained run checked against its training evaluation, loaded without
this project, and used by predict. (Every objective's export, in both formats, is checked in
test_train.test_each_objective_trains_end_to_end.)"""
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import EXAMPLES
from ijckd_jax.cli import export as export_command
from ijckd_jax.cli import predict as predict_command
from ijckd_jax.data.pipeline import load_split
from ijckd_jax.deploy.artifact import call_artifact, call_onnx, export_onnx
from ijckd_jax.deploy.fold import fold_batch_norm, folded, trace_pairs
from ijckd_jax.deploy.trained import run_config
from ijckd_jax.frozen_model import ARTIFACT, DESCRIPTION, ONNX
from ijckd_jax.models import create_model

# Pre-activation blocks read a BatchNorm after a residual sum: kept as scale and shift.
# wrn_D_k: (D − 4) / 6 blocks in each of 3 groups, and the last BatchNorm.
AFFINE = {'wrn_16_1': 7}


def drawn_variables(model, images, seed=0):
    """Variables of `model` drawn at random, BatchNorm's scale, shift and statistics away from
    their initial values so that folding them has something to fold (faster than model.init)."""
    rng = np.random.default_rng(seed)
    abstract = jax.eval_shape(model.init, jax.random.key(0), images)

    def draw(path, leaf):
        if len(leaf.shape) > 1:  # kernels: He-scaled, so that activations keep their size
            return rng.normal(0, np.sqrt(2 / np.prod(leaf.shape[:-1])), leaf.shape).astype(np.float32)
        offset = {'scale': 0.5, 'var': 0.5}.get(path[-1].key, -0.5)
        return (offset + rng.uniform(size=leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


# Every kind of layer in the zoo: residual blocks with 1×1 shortcuts (resnet8, and ResNet50's
# bottlenecks), BatchNorm kept as scale and shift (wrn_16_1), grouped convolutions, channel
# shuffle and average pooling (ShuffleV1), depthwise convolutions and channel split
# (ShuffleV2, MobileNetV2, MobileNetV1), max pooling (vgg8; resnet18 after its 7×7 stem).
ONNX_MODELS = ('resnet8', 'ResNet50', 'wrn_16_1', 'ShuffleV1', 'ShuffleV2', 'MobileNetV2', 'MobileNetV1', 'vgg8',
               'resnet18')


def normalized(images):
    """uint8 images as the models read them, in the test's and in the exported program."""
    return (images.astype(jnp.float32) / 255 - 0.5) / 0.25


# Folding follows each conv → BatchNorm pair whatever the depth, so one model of each kind of
# block is enough (the deeper ones of a family repeat the same blocks): every kind of layer
# above, through ONNX too, and the ImageNet bottleneck.
@pytest.mark.parametrize('name', [pytest.param(name, marks=pytest.mark.quick) if name == 'resnet8' else name
                                  for name in ONNX_MODELS + ('resnet50',)])
def test_every_kind_of_block_of_the_zoo_folds_within_1e_5_and_runs_in_onnxruntime(name):
    model = create_model(name, 10)
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    inputs = normalized(images)
    variables = drawn_variables(model, inputs)
    pairs = trace_pairs(model, variables, inputs)
    batch_norms = sum(path[-1].key == 'mean'
                      for path, _ in jax.tree_util.tree_flatten_with_path(variables['batch_stats'])[0])
    assert len(pairs.folded) + len(pairs.affine) == batch_norms
    assert len(pairs.affine) == AFFINE.get(name, 0)

    def logits(variables, images, pairs=None):
        if pairs is None:
            return model.apply(variables, normalized(images)).logits
        with folded(pairs):
            return model.apply(variables, normalized(images)).logits

    @jax.jit
    def both(variables, images):
        folded_variables = fold_batch_norm(variables, pairs)
        return logits(variables, images), logits(folded_variables, images, pairs), folded_variables

    reference, result, folded_variables = both(variables, images)
    assert 'batch_stats' not in folded_variables
    scale = float(jnp.abs(reference).max())
    assert scale > 1e-2  # the logits are not trivially small
    np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-5 * scale)
    if name in ONNX_MODELS:
        result = call_onnx(export_onnx(lambda batch: logits(folded_variables, batch, pairs), 32), images)
        np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-5 * scale)


@pytest.fixture(scope='module')
def shipped_teacher(teacher, tmp_path_factory):
    """The shared resnet8 teacher run exported through the command, and its output."""
    out = tmp_path_factory.mktemp('shipped') / 'resnet8'
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        assert export_command.main([str(teacher[0]), '--out', str(out), '--formats', 'jax,onnx']) == 0
    return out


def test_the_export_predicts_as_the_run_evaluated(teacher, shipped_teacher, capsys):
    """Each file's test top-1 equals the run's last-epoch top-1 exactly; model.json says what
    it is."""
    description = json.loads((shipped_teacher / DESCRIPTION).read_text())
    summary = json.loads((teacher[0] / 'summary.json').read_text())
    assert description['architecture'] == {'student': 'resnet8', 'classifier': "the student resnet8's own classifier"}
    # resnet8's 83,892 less one of BatchNorm's two per channel: 336 channels, folded into biases.
    assert description['parameters']['total'] == 83_892 - 336
    assert description['parity']['max_abs_logit_difference'].keys() == {'jax', 'onnx'}
    assert max(description['parity']['max_abs_logit_difference'].values()) <= 1e-4
    assert description['parity']['images'] == EXAMPLES
    assert (description['epoch'], description['step']) == (2, 4)
    assert description['input']['shape'] == ['batch', 32, 32, 3]
    config, _, _ = run_config(str(teacher[0]))
    with tfds.testing.mock_data(num_examples=EXAMPLES):
        split = load_split(config.data, 'test', 0, 1)
    for logits in (call_artifact((shipped_teacher / ARTIFACT).read_bytes(), split.images),
                   call_onnx((shipped_teacher / ONNX).read_bytes(), split.images)):
        assert 100 * np.mean(logits.argmax(1) == split.labels) == summary['last_top1']


def test_the_export_runs_in_a_process_without_this_project(shipped_teacher, tmp_path):
    """jax alone loads and calls model.jax; a batch of 3 (the export's batch is symbolic)."""
    script = ('import sys, jax, numpy as np\n'
              f'data = open({str(shipped_teacher / ARTIFACT)!r}, "rb").read()\n'
              'model = jax.export.deserialize(bytearray(data))\n'
              'logits = model.call(np.zeros((3, 32, 32, 3), np.uint8))\n'
              'assert not any(name.startswith(("ijckd_jax", "flax")) for name in sys.modules), "imported"\n'
              'print(logits.shape, logits.dtype)\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, 'JAX_PLATFORMS': 'cpu'}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '(3, 100) float32'


def test_predict_prints_the_top_5_of_each_image(shipped_teacher, tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    folder = tmp_path / 'images'
    folder.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f'{index}.png')
    (folder / 'broken.png').write_bytes(b'not a png')
    capsys.readouterr()
    assert predict_command.main([str(shipped_teacher), str(folder)]) == 0
    output = capsys.readouterr()
    lines = output.out.strip().splitlines()
    logits = call_artifact((shipped_teacher / ARTIFACT).read_bytes(), images)
    assert len(lines) == 3 and f'{folder / "broken.png"}: unreadable, skipped' in output.err
    for line, row in zip(lines, logits):
        classes = [int(entry.split()[0]) for entry in line.split(': ', 1)[1].split(', ')]
        assert classes == list(np.argsort(-row, kind='stable')[:5])


def export_error(arguments, capsys):
    """Runs the export command expecting failure; its one error line."""
    assert export_command.main(arguments) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    return line


def test_bad_exports_are_one_line_and_write_nothing(teacher, shipped_teacher, tmp_path, capsys):
    out = str(tmp_path / 'out')
    assert export_error([str(tmp_path), '--out', out], capsys) == (
        f'error: {tmp_path} is not a run directory (no run.json); pass the --workdir of a training run '
        '(with config.seeds, one of its seed_N folders).')
    assert export_error([str(teacher[0]), '--out', str(shipped_teacher)], capsys) == (
        f'error: {shipped_teacher} already exists; pass another --out or remove it first.')
    assert export_error([str(teacher[0]), '--out', out, '--step', '3'], capsys) == (
        f'error: {teacher[0]} has no checkpoint of step 3; it has 2, 4.')
    fresh = tmp_path / 'fresh'
    fresh.mkdir()
    shutil.copy(teacher[0] / 'run.json', fresh / 'run.json')
    assert export_error([str(fresh), '--out', out], capsys) == (
        f'error: {fresh} has no checkpoint yet: let the run finish an epoch, then export.')
    damaged = tmp_path / 'damaged'
    shutil.copytree(teacher[0], damaged, ignore=shutil.ignore_patterns('export'))
    for root, _, names in os.walk(damaged / 'checkpoints' / '4'):
        for name in names:
            if not name.startswith(('_CHECKPOINT_METADATA', '_METADATA')):
                (damaged / root / name).write_bytes(b'damaged')
    line = export_error([str(damaged), '--out', out], capsys)
    assert line.startswith(f'error: The checkpoint {damaged / "checkpoints" / "4"} cannot be read (')
    assert line.endswith('); export an earlier one with --step, or train again.')
    assert export_error([str(teacher[0]), '--out', out, '--formats', 'jax,tflite2'], capsys) == (
        'error: Unknown format tflite2; the formats are jax, onnx, e.g. --formats jax,onnx.')
    assert not os.path.exists(out) and not [name for name in os.listdir(tmp_path) if name.startswith('.out')]

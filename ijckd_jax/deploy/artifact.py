"""The shipped model: a run's deployed model with BatchNorm folded, serialized, checked and
described.

`export_run` writes OUT/ with, for each format asked for,
- model.jax: a serialized jax.export artifact (StableHLO, the weights inside): uint8 RGB
  images [batch, H, W, 3] in, float32 logits out, the batch size symbolic. A process with
  only jax installed loads it with jax.export.deserialize and calls it;
- model.onnx: the same function through jax2onnx, run with onnxruntime;
and model.json: what it is (architecture, classes, normalisation, input size, the run and
epoch it came from, parameters, MACs, the parity measured for each file).
Before anything is written each file's logits on real images of the run's evaluation split
are compared with the training evaluation's logits (the unfolded model, the path eval_step
takes); beyond TOLERANCE nothing is written. OUT/ is written aside and renamed into place,
so it is whole or absent.
"""
import importlib.util
import json
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from ijckd_jax import files
from ijckd_jax.data import stream
from ijckd_jax.data.folders import class_names as folder_classes, is_image_folder
from ijckd_jax.data.pipeline import in_memory, load_split
from ijckd_jax.deploy.cost import count_macs, count_parameters
from ijckd_jax.deploy.inference import deployed_model, deployed_variables, fold, predict
from ijckd_jax.deploy.trained import load_trained_run
from ijckd_jax.distillation import evaluation_logits, forward
from ijckd_jax.errors import RunError
from ijckd_jax.frozen_model import ARTIFACT, DESCRIPTION, ONNX
from ijckd_jax.objectives import get_objective
from ijckd_jax.training.steps import normalize

FORMATS = {'jax': ARTIFACT, 'onnx': ONNX}
ONNX_INSTALL = ('pip install -r requirements-onnx.txt && pip install --no-deps jax2onnx==0.17.1 (its '
                "declared dependencies pin an older orbax-checkpoint than this project's; export needs none "
                'of them)')
TOLERANCE = 1e-4  # largest |Δ logit| allowed between the artifact and the training evaluation
CHECK_IMAGES = 64
# Lowered for both, so that the file runs on a CPU or an NVIDIA GPU.
PLATFORMS = ('cpu', 'cuda')


class ExportError(RunError):
    """An export that cannot be made, or that would not match its run."""


def training_logits(run, images):
    """The training evaluation's logits (distillation.forward, unfolded, the whole teacher)."""
    config = run.config
    outputs, _ = forward(run.distiller, run.trainable, run.teacher_variables,
                         normalize(images, config.data.mean, config.data.std), train=False)
    return evaluation_logits(outputs, get_objective(config.loss.name))


def serving_function(run):
    """uint8 images → logits of the run's deployed model, BatchNorm folded; and its parts."""
    config = run.config
    deployed = deployed_model(run.distiller, config.loss.name, config.data.image_size, config.data.mean,
                              config.data.std)
    variables = deployed_variables(deployed, run.trainable, run.teacher_variables)
    folded = fold(deployed, variables, config.data.image_size)
    return (lambda images: predict(deployed, folded.variables, images, folded.pairs)), deployed, folded


def export_function(function, image_size):
    """jax.export of `function` on uint8 [batch, size, size, 3], batch symbolic; serialized."""
    batch, = jax.export.symbolic_shape('batch')
    images = jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.uint8)
    return jax.export.export(jax.jit(function), platforms=PLATFORMS)(images).serialize()


def call_artifact(serialized, images):
    """The logits of a serialized artifact on `images`, as a user's process computes them."""
    return np.asarray(jax.export.deserialize(bytearray(serialized)).call(images))


def check_formats(formats):
    """Unknown formats, or ONNX without its packages: an ExportError before any work."""
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ExportError(f'Unknown format {", ".join(unknown) or "(none)"}; the formats are '
                          f'{", ".join(FORMATS)}, e.g. --formats jax,onnx.')
    if 'onnx' in formats and not onnx_installed():
        raise ExportError(f'--formats onnx needs jax2onnx, onnx and onnxruntime: {ONNX_INSTALL}.')


def onnx_installed():
    return all(importlib.util.find_spec(name) for name in ('jax2onnx', 'onnx', 'onnxruntime'))


def export_onnx(function, image_size):
    """`function` through jax2onnx, batch symbolic; the serialized ONNX model."""
    # jax2onnx imports its example plugins for equinox and dm-pix, which are not installed,
    # and logs a traceback for each at WARNING; onnx_ir warns of shape values it leaves
    # untyped. Noise for this export, whose result is checked against training anyway.
    for name in ('jax2onnx.plugins.plugin_system', 'onnx_ir'):
        logging.getLogger(name).setLevel(logging.ERROR)
    from jax2onnx import to_onnx

    batch, = jax.export.symbolic_shape('batch')
    images = jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.uint8)
    return to_onnx(function, [images], model_name='ijckd_jax_student').SerializeToString()


def call_onnx(serialized, images):
    """The logits of a serialized ONNX model on `images`, with onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(serialized, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: np.asarray(images)})[0]


EXPORTERS = {'jax': (export_function, call_artifact), 'onnx': (export_onnx, call_onnx)}


def evaluation_images(config, count=CHECK_IMAGES):
    """The first `count` images of the run's evaluation split, uint8."""
    if in_memory(config.data):
        return load_split(config.data, config.data.eval_split, 0, 1).images[:count]
    images, _, mask = next(iter(stream.stream_eval_batches(config.data, count, 1, 0, 1)))
    return np.asarray(images)[np.asarray(mask)]


def describe(run, workdir, deployed, folded, parity):
    """model.json's content; parity: {'images': how many were compared, 'formats': {format:
    the largest |Δ logit| on them}}."""
    config = run.config
    size = config.data.image_size
    parts = {'student': config.student.model}
    if 'connector' in folded.variables:
        parts['connector'] = config.connector.kind
    if deployed.classifier == 'teacher':
        parts['classifier'] = f'the frozen teacher {config.teacher.model}\'s classifier'
    elif deployed.classifier == 'joint':
        parts['classifier'] = 'the joint classifier'
    else:
        parts['classifier'] = f'the student {config.student.model}\'s own classifier'
    names = class_names(config)
    parameters = {part: count_parameters(variables) for part, variables in folded.variables.items()}
    loading = {'jax': f'{ARTIFACT}: jax.export (StableHLO) for {", ".join(PLATFORMS)}; '
                      'jax.export.deserialize(bytearray(data)).call(images)',
               'onnx': f'{ONNX}: ONNX (jax2onnx), e.g. onnxruntime.InferenceSession(path).run(None, {{name: images}})'}
    return {
        'files': {name: loading[name] for name in parity['formats']},
        'input': {'shape': ['batch', size, size, 3], 'dtype': 'uint8', 'channels': 'RGB',
                  'normalization': 'inside: (x / 255 - mean) / std',
                  'mean': list(config.data.mean), 'std': list(config.data.std)},
        'output': {'shape': ['batch', config.data.num_classes], 'dtype': 'float32', 'meaning': 'logits'},
        'objective': config.loss.name, 'architecture': parts, 'teacher': config.teacher.model or None,
        'num_classes': config.data.num_classes, 'class_names': names, 'dataset': config.data.dataset,
        'batch_norm': batch_norm_note(folded),
        'parameters': {**parameters, 'total': sum(parameters.values())},
        'macs_per_image': count_macs(deployed, folded, size),
        'run': os.path.abspath(workdir), 'step': run.step, 'epoch': run.epoch,
        'parity': {'images': parity['images'], 'tolerance': TOLERANCE,
                   'max_abs_logit_difference': parity['formats']},
    }


def batch_norm_note(folded):
    """How the BatchNorms were folded, counted."""
    into = sum(len(pairs.folded) for pairs in folded.pairs.values())
    affine = sum(len(pairs.affine) for pairs in folded.pairs.values())
    note = f'{into} folded into the convolution they follow'
    kept = f"; {affine} whose input is not a convolution's alone, kept as a per-channel scale and shift"
    return note + (kept if affine else '')


def class_names(config):
    """The class names of an image-folder run (its class folders, in label order); else None."""
    if is_image_folder(config.data.dataset):
        return folder_classes(config.data.dataset, config.data.train_split)
    return None


def export_run(workdir, out, step=None, data_dir='', formats=('jax',)):
    """Exports the run in `workdir` (checkpoint `step`, else its latest) to `out` in each of
    `formats`; returns model.json's content. Nothing is written unless every check passes."""
    check_formats(formats)
    out = os.path.abspath(out)
    files.remove_abandoned(out)
    if os.path.exists(out):
        raise ExportError(f'{out} already exists; pass another --out or remove it first.')
    run = load_trained_run(workdir, step, data_dir)
    function, deployed, folded = serving_function(run)
    images = evaluation_images(run.config)
    expected = np.asarray(jax.jit(lambda images: training_logits(run, images))(images))
    serialized, differences = {}, {}
    for name in formats:
        export, call = EXPORTERS[name]
        serialized[name] = export(function, run.config.data.image_size)
        differences[name] = float(np.max(np.abs(call(serialized[name], images) - expected)))
        if not differences[name] <= TOLERANCE:
            raise ExportError(f'The {name} export\'s logits differ from the training evaluation\'s by '
                              f'{differences[name]:.3g} (over {TOLERANCE:g}) on {len(images)} test images: '
                              'nothing was written. Please report it with the run\'s config.')
    description = describe(run, workdir, deployed, folded, {'images': len(images), 'formats': differences})
    write_export(out, serialized, description)
    return description


def write_export(out, serialized, description):
    """Writes OUT/ ({format: bytes} and model.json) aside and renames it into place: whole or
    absent."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    staging = files.staging_path(out)
    try:
        os.makedirs(staging)
        for name, content in serialized.items():
            with open(os.path.join(staging, FORMATS[name]), 'wb') as file:
                file.write(content)
        with open(os.path.join(staging, DESCRIPTION), 'w') as file:
            json.dump(description, file, indent=2)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

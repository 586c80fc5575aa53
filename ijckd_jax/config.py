"""Checks of a run's config, made before any work: a bad value is named with its fix.

The configs themselves, their defaults and the paper's experiment tables live in configs/.
"""
import os

import ml_collections

from ijckd_jax.connectors import check_connector_name
from ijckd_jax.data.pipeline import reads_with_tf_data
from ijckd_jax.models import check_model_name
from ijckd_jax.objectives import get_objective, resolve_settings
from ijckd_jax.runtime import MATMUL_PRECISIONS, tensorflow_installed

DTYPES = ('float32', 'bfloat16')


class ConfigError(ValueError):
    """A config value that cannot run; the message names the field and the fix."""


def validate_config(config, device_count):
    """Every check that can fail before any work: names, settings, batch sizes, the teacher."""
    check_model_name(config.student.model)
    objective = get_objective(config.loss.name)
    resolve_settings(config.loss.name, {key: value for key, value in config.loss.items() if key != 'name'})
    if objective.uses_teacher:
        check_model_name(config.teacher.model)
        if not config.teacher.checkpoint:
            raise ConfigError(
                f"Objective '{config.loss.name}' needs a teacher but config.teacher.checkpoint is "
                'empty. Convert PyTorch weights with tools/convert_torch_weights.py or train one '
                'with configs/cifar_teacher.py, then pass --config.teacher.checkpoint=DIR.')
    if objective.uses_connector:
        check_connector_name(config.connector.kind)
    if config.global_batch_size <= 0 or config.global_batch_size % device_count:
        raise ConfigError(f'config.global_batch_size={config.global_batch_size} must be a positive '
                         f'multiple of the {device_count} devices the batch is sharded over.')
    if config.eval_batch_size <= 0:
        raise ConfigError(f'config.eval_batch_size={config.eval_batch_size} must be positive.')
    dataset = config.data.dataset
    if dataset.startswith(('/', '.', '~')) and not os.path.isdir(dataset):
        raise ConfigError(f"config.data.dataset='{dataset}' is a path but not a directory. Give an "
                         'image folder with train/ and test/ class folders, or a tfds name such '
                         "as 'cifar100'.")
    if reads_with_tf_data(config.data) and not tensorflow_installed():
        raise ConfigError(f"config.data.dataset='{dataset}' is read with tf.data, which needs "
                          "TensorFlow: pip install tensorflow-cpu (or pip install -e '.[tensorflow]').")
    if config.dtype not in DTYPES:
        raise ConfigError(f"config.dtype must be one of {', '.join(DTYPES)}, got '{config.dtype}'.")
    if config.matmul_precision not in MATMUL_PRECISIONS:
        raise ConfigError(f"config.matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, "
                          f"got '{config.matmul_precision}'.")


def describe_unknown_fields(config, paths):
    """For each dotted path that `config` lacks, the group it fails in and that group's fields."""
    problems = []
    for path in paths:
        node, walked = config, ['config']
        for name in path.split('.'):
            if not isinstance(node, ml_collections.ConfigDict):
                problems.append(f"--config.{path}: {'.'.join(walked)} is a value, not a group.")
                break
            if name not in node:
                problems.append(f"--config.{path}: {'.'.join(walked)} has no field '{name}'; "
                                f"its fields: {', '.join(node.keys())}.")
                break
            node = node[name]
            walked.append(name)
    return ' '.join(problems)

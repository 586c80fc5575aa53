"""A model saved as a directory: its architecture (model.json) and its variables (orbax).

This is what a teacher is: the converter writes it from a PyTorch checkpoint, and the trainer
loads it as the frozen teacher. The directory appears whole or not at all.
"""
import json
import os
import shutil
import tempfile
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from ijckd_jax.models import abstract_variables, check_model_name

METADATA = 'model.json'
VARIABLES = 'variables'


class FrozenModel(NamedTuple):
    model_name: str
    num_classes: int
    variables: Any  # {'params': ..., 'batch_stats': ...}


def this_process_alone():
    """Orbax options for I/O that one process does by itself, also in a multi-host run."""
    index = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=index, active_processes={index})


def save_frozen_model(directory, frozen: FrozenModel, source: str = '') -> None:
    """Writes `frozen` to `directory`, which must not exist yet."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory):
        raise FileExistsError(f'{directory} already exists; choose another --out or remove it first.')
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(directory)}.', dir=parent)
    try:
        with ocp.StandardCheckpointer(multiprocessing_options=this_process_alone()) as checkpointer:
            checkpointer.save(os.path.join(staging, VARIABLES), jax.tree.map(np.asarray, frozen.variables))
        metadata = {'model': frozen.model_name, 'num_classes': frozen.num_classes, 'source': source}
        with open(os.path.join(staging, METADATA), 'w') as file:
            json.dump(metadata, file, indent=2)
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def describe_differences(stored, expected) -> str:
    """Every variable that one tree has and the other lacks, and every shape that differs; ''
    when the stored variables fit the expected ones."""
    stored, expected = ({'/'.join(path): tuple(leaf.shape)
                         for path, leaf in traverse_util.flatten_dict(tree).items()}
                        for tree in (stored, expected))
    lines = [f'  missing {name} {list(shape)}' for name, shape in expected.items() if name not in stored]
    lines += [f'  unexpected {name} {list(shape)}' for name, shape in stored.items() if name not in expected]
    lines += [f'  {name}: stored {list(stored[name])}, expected {list(shape)}'
              for name, shape in expected.items() if name in stored and stored[name] != shape]
    return '\n'.join(lines)


def load_frozen_model(directory) -> FrozenModel:
    """Reads a directory written by `save_frozen_model`, restored into the shapes of the model
    that its model.json names; variables of another model are refused with every difference."""
    metadata_path = os.path.join(directory, METADATA)
    if not os.path.isfile(metadata_path):
        raise FileNotFoundError(
            f'{directory} is not a saved model (no {METADATA}). Convert a PyTorch checkpoint with '
            'tools/convert_torch_weights.py or train a teacher with configs/cifar_teacher.py.')
    with open(metadata_path) as file:
        metadata = json.load(file)
    model_name, num_classes = metadata['model'], int(metadata['num_classes'])
    check_model_name(model_name)
    variables_path = os.path.abspath(os.path.join(directory, VARIABLES))
    if not os.path.isdir(variables_path):
        raise FileNotFoundError(f'{directory} has {METADATA} but no {VARIABLES}/ directory: the saved '
                                'model is incomplete; convert or export it again.')
    expected = abstract_variables(model_name, num_classes)
    with ocp.StandardCheckpointer(multiprocessing_options=this_process_alone()) as checkpointer:
        stored = checkpointer.metadata(variables_path).item_metadata.tree
        differences = describe_differences(stored, expected)
        if differences:
            raise ValueError(f'{directory}: {METADATA} names {model_name} with {num_classes} classes, '
                             f'but the saved variables are not that model\'s:\n{differences}')
        variables = checkpointer.restore(variables_path, expected)
    return FrozenModel(model_name, num_classes, jax.tree.map(np.asarray, variables))

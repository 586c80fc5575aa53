"""A model saved as a directory: its architecture (model.json) and its variables (orbax).

This is what a teacher is: the converter writes it from a PyTorch checkpoint, and the trainer
loads it as the frozen teacher. The directory appears whole or not at all.
"""
import json
import os
import shutil
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from ijckd_jax import files
from ijckd_jax.errors import SavedModelError
from ijckd_jax.models import abstract_variables, check_model_name
from ijckd_jax.restoring import restoring

METADATA = 'model.json'
VARIABLES = 'variables'
# The files of a shipped model's directory (tools/export_student.py): the jax.export file, the
# ONNX file and what they are, read by tools/predict.py and recognised by the converter.
ARTIFACT = 'model.jax'
ONNX = 'model.onnx'
DESCRIPTION = 'model.json'
TRAINING_DATA = ('dataset', 'image_size', 'mean', 'std')  # what model.json records of a trained model's data


class FrozenModel(NamedTuple):
    model_name: str
    num_classes: int
    variables: Any  # {'params': ..., 'batch_stats': ...}


def this_process_alone():
    """Orbax options for I/O that one process does by itself, also in a multi-host run."""
    index = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=index, active_processes={index})


def save_frozen_model(directory, frozen: FrozenModel, source: str = '', replace=False, record=None) -> None:
    """Writes `frozen` to `directory`, which must not exist yet unless `replace`: written aside
    and renamed into place, so that the directory is whole or absent (or the old one). `record`
    adds fields to model.json (e.g. 'data': what a trained model was trained on)."""
    directory = os.path.abspath(directory)
    files.remove_abandoned(directory)
    if os.path.exists(directory) and not replace:
        raise FileExistsError(f'{directory} already exists; choose another --out or remove it first.')
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    staging = files.staging_path(directory)
    try:
        with ocp.StandardCheckpointer(multiprocessing_options=this_process_alone()) as checkpointer:
            checkpointer.save(os.path.join(staging, VARIABLES), jax.tree.map(np.asarray, frozen.variables))
        metadata = {'model': frozen.model_name, 'num_classes': frozen.num_classes, 'source': source, **(record or {})}
        with open(os.path.join(staging, METADATA), 'w') as file:
            json.dump(metadata, file, indent=2)
        if os.path.exists(directory):
            replaced = files.staging_path(directory, 'replaced')
            os.rename(directory, replaced)
            os.rename(staging, directory)
            shutil.rmtree(replaced)
        else:
            os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def training_data(directory, metadata):
    """The data a saved model was trained on, {'dataset', 'image_size', 'mean', 'std'}, from its
    model.json (`metadata`), or from the run.json of the run it came from (exports written before
    model.json recorded it); None where neither says (a converted PyTorch checkpoint)."""
    if isinstance(metadata.get('data'), dict):
        return metadata['data']
    run_path = os.path.join(str(metadata.get('source', '')), 'run.json')
    if not os.path.isfile(run_path):
        return None
    try:
        with open(run_path) as file:
            fields = json.load(file)['config']
        return {name: fields[f'data.{name}'] for name in TRAINING_DATA}
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
        raise SavedModelError(
            f'{directory} is not a saved model (no {METADATA}). Convert a PyTorch checkpoint with '
            'tools/convert_torch_weights.py or train a teacher with configs/cifar_teacher.py.')
    with open(metadata_path) as file:
        metadata = json.load(file)
    model_name, num_classes = metadata['model'], int(metadata['num_classes'])
    check_model_name(model_name)
    variables_path = os.path.abspath(os.path.join(directory, VARIABLES))
    if not os.path.isdir(variables_path):
        raise SavedModelError(f'{directory} has {METADATA} but no {VARIABLES}/ directory: the saved '
                              'model is incomplete; convert or export it again.')
    expected = abstract_variables(model_name, num_classes)
    with restoring(), ocp.StandardCheckpointer(multiprocessing_options=this_process_alone()) as checkpointer:
        try:
            stored = checkpointer.metadata(variables_path).item_metadata
        except (OSError, ValueError, KeyError) as error:
            raise unreadable(directory, error) from None
        if stored is None:
            raise unreadable(directory, 'orbax finds no metadata')
        differences = describe_differences(stored.tree, expected)
        if differences:
            raise SavedModelError(f'{directory}: {METADATA} names {model_name} with {num_classes} '
                                  f"classes, but the saved variables are not that model's:\n{differences}")
        try:
            variables = checkpointer.restore(variables_path, expected)
        except (OSError, ValueError, KeyError) as error:
            raise unreadable(directory, error) from None
    return FrozenModel(model_name, num_classes, jax.tree.map(np.asarray, variables))


def unreadable(directory, error):
    """The error for saved variables that orbax cannot read (a file deleted or truncated)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return SavedModelError(f'{directory}/{VARIABLES} cannot be read ({reason[:200]}); the saved model '
                           'is damaged: convert or export it again.')

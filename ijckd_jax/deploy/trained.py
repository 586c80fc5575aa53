"""A finished (or running) training run read back from its workdir: its config from run.json,
the variables of one checkpoint, the frozen teacher's, and the distiller they belong to."""
import json
import os
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from ijckd_jax.distillation import build_distiller
from ijckd_jax.errors import RunError, WorkdirError
from ijckd_jax.frozen_model import load_frozen_model
from ijckd_jax.objectives import get_objective, loss_overrides
from ijckd_jax.restoring import restoring
from ijckd_jax.training.state import create_optimizer, create_train_state, merge_variables
from ijckd_jax.training.workdir import RUN, checkpointed_steps


class TrainedRun(NamedTuple):
    config: Any              # the run's config (its math fields, from run.json)
    distiller: Any
    trainable: Any           # {'student', 'connector', 'joint_classifier'}: {'params'[, 'batch_stats']}
    teacher_variables: Any   # the frozen teacher's, {} for a model trained alone
    step: int
    epoch: int               # epochs finished at `step`


def run_config(workdir):
    """The config run.json records (the fields that change what the run computes), and the
    run's steps per epoch and training examples held on the devices (None if streamed)."""
    path = os.path.join(workdir, RUN)
    if not os.path.isfile(path):
        raise WorkdirError(f'{workdir} is not a run directory (no {RUN}); pass the --workdir of a '
                           'training run (with config.seeds, one of its seed_N folders).')
    with open(path) as file:
        run = json.load(file)
    flat = {tuple(key.split('.')): value for key, value in run['config'].items()}
    config = ml_collections.ConfigDict(traverse_util.unflatten_dict(flat))
    # Where the data is is not a math field: tfds's default place, never downloaded.
    config.data.data_dir, config.data.download = '', False
    return config, run['steps_per_epoch'], run.get('examples')


def load_trained_run(workdir, step=None, data_dir='') -> TrainedRun:
    """The run in `workdir` at checkpoint `step` (its latest by default), its data read from
    `data_dir` (tfds's default place if empty)."""
    config, steps_per_epoch, examples = run_config(workdir)
    config.data.data_dir = data_dir
    steps = checkpointed_steps(workdir)
    if not steps:
        raise WorkdirError(f'{workdir} has no checkpoint yet: let the run finish an epoch, then export.')
    step = steps[-1] if step is None else step
    if step not in steps:
        raise WorkdirError(f'{workdir} has no checkpoint of step {step}; it has {", ".join(map(str, steps))}.')
    distiller = build_distiller(config.loss.name, config.student.model, config.teacher.model or None,
                                config.data.num_classes, config.connector.kind, config.connector.factor,
                                config.data.image_size, settings=loss_overrides(config.loss), examples=examples)
    optimizer = create_optimizer(config.optimizer, steps_per_epoch)
    abstract = jax.eval_shape(lambda key: create_train_state(distiller, optimizer, key, config.data.image_size),
                              jax.random.key(0))
    target = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), abstract)
    directory = os.path.abspath(os.path.join(workdir, 'checkpoints', str(step)))
    try:
        with restoring(), ocp.CheckpointManager(os.path.dirname(directory)) as manager:
            state = manager.restore(step, args=ocp.args.StandardRestore(target))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f'The checkpoint {directory} cannot be read ({type(error).__name__}: '
                       f'{str(error)[:200]}); export an earlier one with --step, or train again.') from None
    uses_teacher = get_objective(config.loss.name).uses_teacher
    teacher_variables = load_frozen_model(config.teacher.checkpoint).variables if uses_teacher else {}
    return TrainedRun(config, distiller, merge_variables(state.params, state.batch_stats), teacher_variables,
                      step, step // steps_per_epoch)

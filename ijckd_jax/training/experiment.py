"""What a config trains with: its rows' modules, the spec of its steps, the initial state on
the mesh and the frozen teacher. The teacher is loaded at every start and never written into
the student's checkpoints."""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from ijckd_jax.distillation import build_distiller
from ijckd_jax.errors import SavedModelError
from ijckd_jax.frozen_model import load_frozen_model
from ijckd_jax.objectives import get_objective, loss_overrides, resolve_settings
from ijckd_jax.training.layout import rows_of
from ijckd_jax.training.state import create_train_state
from ijckd_jax.training.steps import Row, Spec, optimizer_of

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


class Experiment(NamedTuple):
    """Everything a config trains with, placed on a mesh: the state is {row: TrainState},
    stacked over config.seeds where several train together."""
    spec: Spec
    state: Any
    teacher_variables: Any
    seeds: Any  # int32: the seed, or [seeds] for several trained together


def load_teacher(config):
    """The frozen teacher's variables, checked against the config's architecture and classes
    (validate_config checks its model.json before any work; this checks what was loaded)."""
    frozen = load_frozen_model(config.teacher.checkpoint)
    if (frozen.model_name, frozen.num_classes) != (config.teacher.model, config.data.num_classes):
        raise SavedModelError(f'Teacher checkpoint {config.teacher.checkpoint} holds {frozen.model_name} '
                              f'with {frozen.num_classes} classes, but the config asks for '
                              f'{config.teacher.model} with {config.data.num_classes} classes.')
    return frozen.variables


def create_experiment(config, mesh, steps_per_epoch, teacher_variables, examples=None) -> Experiment:
    """The spec, the initial state (replicated) and the teacher of `config`, a run alone or a
    table (layout.rows_of); `examples`, the training split's size where it is held on the
    devices (CRD's bank).

    Paired by construction: a row's state starts as its run alone would (create_train_state
    splits the seed's key the same way for every objective, so rows of one seed share the
    student backbone's initialisation) and every row sees the seed's batches.
    """
    rows = tuple(make_row(name, row_config, examples) for name, row_config in rows_of(config).items())
    teachers = [row.distiller.teacher for row in rows if row.distiller.teacher is not None]
    spec = Spec(rows, teachers[0] if teachers else None, FrozenDict(config.optimizer.to_dict()), steps_per_epoch,
                tuple(config.data.mean), tuple(config.data.std), mesh, config.global_batch_size,
                len(config.seeds), vectorize_seeds(config))
    seeds = np.asarray(config.seeds or config.seed, np.int32)
    return Experiment(spec, initial_state(spec, seeds, config.data.image_size), mesh.replicate(teacher_variables),
                      seeds)


def make_row(name, config, examples=None):
    """The Row of a row's config: its distiller, its objective and its settings, defaults
    filled in."""
    settings = resolve_settings(config.loss.name, loss_overrides(config.loss))
    distiller = build_distiller(config.loss.name, config.student.model, config.teacher.model or None,
                                config.data.num_classes, config.connector.kind,
                                config.connector.factor, config.data.image_size, DTYPES[config.dtype], settings,
                                examples)
    hashable = {key: tuple(value) if isinstance(value, list) else value for key, value in settings.items()}
    return Row(name, distiller, get_objective(config.loss.name), FrozenDict(hashable))


def initial_state(spec, seeds, image_size):
    """Every row's fresh state from the seed's key, stacked over `seeds` where several train
    together, replicated over the mesh."""
    optimizer = optimizer_of(spec)

    def create(seed):
        key = jax.random.key(seed)
        return jax.device_get({row.name: create_train_state(row.distiller, optimizer, key, image_size)
                               for row in spec.rows})
    # Not one jitted program: each student model's initialisation is compiled once and shared
    # by every row and run that trains it (distillation.init_trainable), the same values bit
    # for bit: the initial states of the 17 objectives, two tables of eight of them and two
    # runs of seeds on one pair took 9.2 s against 34.6 s as one program each (CPU). Several
    # seeds are created one after another with those programs rather than vmapped: the seeds'
    # states are then their runs' alone by construction, and a vmapped initialisation was a
    # program of its own (4.2 s to compile for 5 seeds of a resnet8, against 2.6 s for its
    # train step).
    if not seeds.ndim:
        return spec.mesh.replicate(create(seeds))
    states = [create(seed) for seed in seeds]
    return spec.mesh.replicate(jax.tree.map(lambda *leaves: np.stack(leaves), *states))


def vectorize_seeds(config):
    """Whether config.seeds are vmapped: config.seeds_vectorized, 'auto' on accelerators only
    (on a CPU the seeds' steps in turn measured faster: bench/RESULTS.md)."""
    if config.seeds_vectorized == 'auto':
        return jax.default_backend() != 'cpu'
    return config.seeds_vectorized == 'vmap'

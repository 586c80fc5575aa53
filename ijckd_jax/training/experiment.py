"""What one configuration trains with: the modules, the initial state on the mesh, the frozen
teacher and the jitted steps. The teacher is loaded at every start and never written into
the student's checkpoints."""
import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ijckd_jax.distillation import build_distiller
from ijckd_jax.errors import SavedModelError
from ijckd_jax.frozen_model import load_frozen_model
from ijckd_jax.objectives import resolve_settings
from ijckd_jax.training import steps
from ijckd_jax.training.state import TrainState, create_optimizer, create_train_state

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


class Experiment(NamedTuple):
    """Everything one configuration trains with, placed on a mesh: for several seeds
    (config.seeds), the state and what is drawn from the seed are stacked over them."""
    distiller: Any
    state: TrainState
    teacher_variables: Any
    # (state, teacher_variables, *training_inputs) -> (state, metrics): the inputs are a
    # sharded batch (images, labels), or the split held on the devices, the epoch's order
    # and `seeds`.
    train_step: Callable
    # With the split on the devices, count -> the jitted step that runs `count` steps in one
    # dispatch, with metrics stacked (train_step itself for count 1); else None.
    train_steps: Optional[Callable]
    eval_step: Callable   # (state, teacher_variables, images, labels, mask[, teacher_logits]) -> sums
    teacher_logits_step: Optional[Callable]  # (teacher_variables, images) -> logits
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


def create_experiment(config, mesh, steps_per_epoch, teacher_variables, data_on_device=False) -> Experiment:
    """The modules, the initial state (replicated) and the jitted steps of `config`; with
    `data_on_device`, the train step draws its batch from the split held on the devices, and
    config.seeds, if any, train together: every step runs each seed's (vmapped)."""
    settings = resolve_settings(config.loss.name, {k: v for k, v in config.loss.items() if k != 'name'})
    distiller = build_distiller(config.loss.name, config.student.model, config.teacher.model or None,
                                config.data.num_classes, config.connector.kind,
                                config.connector.factor, config.data.image_size, DTYPES[config.dtype])
    seeds = np.asarray(config.seeds or config.seed, np.int32)
    steps = jitted_steps(distiller, config.loss.name, frozen(settings), frozen(config.optimizer.to_dict()),
                         steps_per_epoch,
                         tuple(config.data.mean), tuple(config.data.std), mesh, config.global_batch_size,
                         data_on_device, bool(seeds.ndim))
    initial_state = functools.partial(create_train_state, distiller, steps.optimizer,
                                      image_size=config.data.image_size)
    if seeds.ndim:
        initial_state = jax.vmap(initial_state)
    keys = jax.random.key(seeds) if not seeds.ndim else jax.vmap(jax.random.key)(seeds)
    state = jax.jit(initial_state, out_shardings=mesh.replicated)(keys)
    return Experiment(distiller, state, mesh.replicate(teacher_variables), steps.train_step, steps.train_steps,
                      steps.eval_step, steps.teacher_logits_step, seeds)


def frozen(settings):
    """A dict of settings as sorted (name, value) items, lists as tuples: hashable."""
    return tuple(sorted((name, tuple(value) if isinstance(value, list) else value)
                        for name, value in settings.items()))


class JittedSteps(NamedTuple):
    optimizer: Any
    train_step: Callable
    train_steps: Optional[Callable]
    eval_step: Callable
    teacher_logits_step: Optional[Callable]


@functools.cache
def jitted_steps(distiller, objective_name, settings, optimizer_settings, steps_per_epoch, mean, std, mesh,
                 global_batch, data_on_device, over_seeds) -> JittedSteps:
    """The optimizer and the jitted steps of one configuration (settings as sorted items), made
    once per process: a run that repeats a configuration (resumed, another seed alone, the
    same student again) reuses their traces and compiled programs."""
    optimizer = create_optimizer(ml_collections.ConfigDict(dict(optimizer_settings)), steps_per_epoch)
    normalization = dict(mean=mean, std=std)
    step_settings = dict(distiller=distiller, objective_name=objective_name, settings=dict(settings),
                         optimizer=optimizer, **normalization)
    train_steps = None
    if data_on_device:
        one_step = functools.partial(steps.train_step_on_device, mesh=mesh, steps_per_epoch=steps_per_epoch,
                                     global_batch=global_batch, **step_settings)
        one_step = steps.over_seeds(one_step) if over_seeds else one_step
        step = jax.jit(one_step, donate_argnums=0)
        train_steps = functools.cache(lambda count: step if count == 1 else jax.jit(
            steps.scan_steps(one_step, count), donate_argnums=0))
    else:
        step = jax.jit(functools.partial(steps.train_step, **step_settings), donate_argnums=0)
    evaluation = functools.partial(steps.eval_step, distiller=distiller, objective_name=objective_name,
                                   **normalization)
    if over_seeds:
        evaluation = over_seeds_evaluation(evaluation)
    teacher_logits = None
    if distiller.teacher is not None:
        teacher_logits = jax.jit(functools.partial(steps.teacher_logits_step, teacher=distiller.teacher,
                                                   **normalization))
    return JittedSteps(optimizer, step, train_steps, jax.jit(evaluation), teacher_logits)


def over_seeds_evaluation(evaluation):
    """An eval step for a state stacked over seeds; the batch and teacher logits shared."""
    def evaluated(state, *batch):
        return jax.vmap(lambda state: evaluation(state, *batch))(state)
    return evaluated

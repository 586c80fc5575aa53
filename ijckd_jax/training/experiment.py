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
from ijckd_jax.objectives import loss_overrides, resolve_settings
from ijckd_jax.training import steps
from ijckd_jax.training.state import create_optimizer, create_train_state

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


class Member(NamedTuple):
    """One trained model of an experiment: its method (None for a single run; a comparison
    table's states, metrics and sums are keyed by it), modules and objective."""
    method: Optional[str]
    distiller: Any
    objective_name: str


class Experiment(NamedTuple):
    """Everything one configuration trains with, placed on a mesh: for several seeds
    (config.seeds), the state and what is drawn from the seed are stacked over them; for a
    comparison table, the state is one such per method."""
    members: tuple  # Member
    state: Any  # TrainState, or {method: TrainState} for a table
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


def create_experiment(config, mesh, steps_per_epoch, teacher_variables, data_on_device=False,
                      examples=None) -> Experiment:
    """The modules, the initial state (replicated) and the jitted steps of `config`; with
    `data_on_device`, the train step draws its batch from the split held on the devices (of
    `examples` examples), and config.seeds, if any, train together: every step runs each seed's
    (vmapped)."""
    distiller, settings = modules_and_settings(config, examples)
    seeds = np.asarray(config.seeds or config.seed, np.int32)
    steps = jitted_steps(distiller, config.loss.name, frozen(settings), frozen(config.optimizer.to_dict()),
                         steps_per_epoch,
                         tuple(config.data.mean), tuple(config.data.std), mesh, config.global_batch_size,
                         data_on_device, bool(seeds.ndim))
    state = initial_state(functools.partial(create_train_state, distiller, steps.optimizer,
                                            image_size=config.data.image_size), seeds, mesh)
    return Experiment((Member(None, distiller, config.loss.name),), state, mesh.replicate(teacher_variables),
                      steps.train_step, steps.train_steps, steps.eval_step, steps.teacher_logits_step, seeds)


def modules_and_settings(config, examples=None):
    """The distiller of a run's config and its objective's settings, defaults filled in;
    `examples`, the training split's size where it is held on the devices (CRD's bank)."""
    settings = resolve_settings(config.loss.name, loss_overrides(config.loss))
    distiller = build_distiller(config.loss.name, config.student.model, config.teacher.model or None,
                                config.data.num_classes, config.connector.kind,
                                config.connector.factor, config.data.image_size, DTYPES[config.dtype], settings,
                                examples)
    return distiller, settings


def initial_state(create, seeds, mesh):
    """create(key) for the seed, or vmapped over `seeds` stacked, replicated over the mesh."""
    if seeds.ndim:
        create = jax.vmap(create)
    keys = jax.random.key(seeds) if not seeds.ndim else jax.vmap(jax.random.key)(seeds)
    return jax.jit(create, out_shardings=mesh.replicated)(keys)


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
    step = functools.partial(steps.train_step, distiller=distiller, objective_name=objective_name,
                             settings=dict(settings), optimizer=optimizer, steps_per_epoch=steps_per_epoch,
                             **normalization)
    evaluation = functools.partial(steps.eval_step, distiller=distiller, objective_name=objective_name,
                                   **normalization)
    return jit_steps(optimizer, step, evaluation, distiller.teacher, normalization, mesh, steps_per_epoch,
                     global_batch, data_on_device, over_seeds, vectorized=True)


def jit_steps(optimizer, step, evaluation, teacher, normalization, mesh, steps_per_epoch, global_batch,
              data_on_device, over_seeds, vectorized):
    """JittedSteps of a train step and an eval step (a run's or a table's): on the split held
    on the devices the batch is drawn in the step, and a state stacked over seeds is stepped
    and evaluated vmapped (`vectorized`) or in turn."""
    train_steps = None
    if data_on_device:
        one_step = functools.partial(steps.train_step_on_device, step=step, mesh=mesh,
                                     steps_per_epoch=steps_per_epoch, global_batch=global_batch)
        step, train_steps = jit_on_device(steps.over_seeds(one_step, vectorized) if over_seeds else one_step)
    else:
        step = jax.jit(step, donate_argnums=0)
    if over_seeds:
        evaluation = over_seeds_evaluation(evaluation, vectorized)
    teacher_logits = None
    if teacher is not None:
        teacher_logits = jax.jit(functools.partial(steps.teacher_logits_step, teacher=teacher, **normalization))
    return JittedSteps(optimizer, step, train_steps, jax.jit(evaluation), teacher_logits)


def jit_on_device(one_step):
    """The jitted step on the split held on the devices, and count -> the jitted step that runs
    `count` of them in one dispatch (a scan)."""
    step = jax.jit(one_step, donate_argnums=0)
    return step, functools.cache(lambda count: step if count == 1 else jax.jit(
        steps.scan_steps(one_step, count), donate_argnums=0))


def over_seeds_evaluation(evaluation, vectorized=True):
    """An eval step for a state stacked over seeds, vmapped or one seed after another
    (steps.in_turn); the batch and teacher logits shared."""
    def evaluated(state, *batch):
        def one(state):
            return evaluation(state, *batch)
        return (jax.vmap(one) if vectorized else steps.in_turn(one))(state)
    return evaluated


def vectorize_seeds(config):
    """Whether a table's seeds are vmapped: config.seeds_vectorized, 'auto' on accelerators
    only (on a CPU the seeds' steps in turn measured faster: bench/RESULTS.md)."""
    if config.seeds_vectorized == 'auto':
        return jax.default_backend() != 'cpu'
    return config.seeds_vectorized == 'vmap'


def create_table_experiment(config, method_configs, mesh, steps_per_epoch, teacher_variables,
                            data_on_device=False, examples=None) -> Experiment:
    """A comparison table's experiment: one state per method ({method: TrainState}, each
    stacked over config.seeds if any), and one jitted step that draws each seed's batch once,
    runs the frozen teacher on it once and updates every method's state from it.

    Paired by construction: a method's state starts as its run alone would (create_train_state
    splits the seed's key the same way for every objective, so methods of one seed share the
    student backbone's initialisation) and every method sees the seed's batches.
    """
    members, step_members = [], []
    for method, method_config in method_configs.items():
        distiller, settings = modules_and_settings(method_config, examples)
        members.append(Member(method, distiller, method_config.loss.name))
        step_members.append((method, distiller, method_config.loss.name, frozen(settings)))
    teachers = [member.distiller.teacher for member in members if member.distiller.teacher is not None]
    seeds = np.asarray(config.seeds or config.seed, np.int32)
    jitted = jitted_table_steps(tuple(step_members), teachers[0] if teachers else None,
                                frozen(config.optimizer.to_dict()), steps_per_epoch, tuple(config.data.mean),
                                tuple(config.data.std), mesh, config.global_batch_size, data_on_device,
                                bool(seeds.ndim), vectorize_seeds(config))
    optimizer = jitted.optimizer

    def initial_states(key):
        return {member.method: create_train_state(member.distiller, optimizer, key, config.data.image_size)
                for member in members}
    state = initial_state(initial_states, seeds, mesh)
    return Experiment(tuple(members), state, mesh.replicate(teacher_variables), jitted.train_step,
                      jitted.train_steps, jitted.eval_step, jitted.teacher_logits_step, seeds)


@functools.cache
def jitted_table_steps(step_members, teacher, optimizer_settings, steps_per_epoch, mean, std, mesh, global_batch,
                       data_on_device, over_seeds, vectorized) -> JittedSteps:
    """jitted_steps for a comparison table: made once per process, so that a table run again
    (resumed, or the same table in another workdir) reuses its traces and compiled programs."""
    optimizer = create_optimizer(ml_collections.ConfigDict(dict(optimizer_settings)), steps_per_epoch)
    normalization = dict(mean=mean, std=std)
    step = functools.partial(steps.table_train_step, members=step_members, teacher=teacher,
                             optimizer=optimizer, steps_per_epoch=steps_per_epoch, **normalization)
    evaluation = functools.partial(steps.table_eval_step, members=step_members, **normalization)
    return jit_steps(optimizer, step, evaluation, teacher, normalization, mesh, steps_per_epoch, global_batch,
                     data_on_device, over_seeds, vectorized)

"""train_and_evaluate: a run from its config to summary.json.

Check the config and the workdir, read the data, load the frozen teacher (nothing is written
until all three are good), build the jitted steps, then for each epoch train, evaluate
(accuracy and the paper's error-bound terms), log and checkpoint; a run restarted on the same
workdir resumes exactly from its latest checkpoint. With config.seeds, the seeds' runs train
together, their state stacked over seeds, each logged, checkpointed and summarised in its own
workdir/seed_{seed}.
"""
import contextlib
import functools
import os
import signal
import threading
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from clu import parameter_overview

from ijckd_jax import files
from ijckd_jax.bound import classifier_comparison
from ijckd_jax.config import check_workdir_writable, validate_config
from ijckd_jax.data import device as device_data
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.errors import ConfigError
from ijckd_jax.objectives import get_objective
from ijckd_jax.runtime import describe_arithmetic, describe_compilation_cache, matmul_precision
from ijckd_jax.training import checkpoints
from ijckd_jax.training.experiment import create_experiment, load_teacher
from ijckd_jax.training.mesh import Mesh
from ijckd_jax.training.metrics import create_writer
from ijckd_jax.training.progress import Progress
from ijckd_jax.training.steps import count_correct
from ijckd_jax.training.workdir import (History, WorkdirLock, check_belongs, export_student, flatten,
                                        record_run, summarize, write_summary)

# Jitted once: the student's and the teacher's classifier keep their shapes for the whole run.
compare_classifier_weights = jax.jit(classifier_comparison)
compare_classifier_weights_over_seeds = jax.jit(jax.vmap(classifier_comparison, in_axes=(0, None)))


def train_and_evaluate(config, workdir):
    """Trains the student of `config`, evaluating every epoch; returns the summary (for
    config.seeds, one summary per seed, each run in workdir/seed_{seed})."""
    if config.distributed:
        initialize_distributed(config)
    validate_config(config, jax.device_count())
    runs = seed_runs(config, workdir)
    for run in runs:
        check_workdir_writable(run.workdir)
        check_belongs(run.workdir, run.config, jax.device_count())
    logging.info(describe_arithmetic(config.dtype, config.matmul_precision))
    logging.info(describe_compilation_cache())
    with matmul_precision(config.matmul_precision):
        summaries = train_validated(config, runs)
    return summaries if config.seeds else summaries[0]


class SeedRun(NamedTuple):
    """One seed's run: its config (config.seed its seed), its workdir, and its index in a
    state stacked over seeds (None for a run alone); with a writer and checkpoints once started."""
    config: Any
    workdir: str
    index: Optional[int]
    writer: Any = None
    manager: Any = None


def seed_runs(config, workdir):
    """The run of `config` in `workdir`; for config.seeds, each seed's in workdir/seed_{seed}."""
    if not config.seeds:
        return [SeedRun(config, workdir, None)]
    runs = []
    for index, seed in enumerate(config.seeds):
        seed_config = config.copy_and_resolve_references()
        seed_config.seed = seed
        runs.append(SeedRun(seed_config, os.path.join(workdir, f'seed_{seed}'), index))
    return runs


def train_validated(config, runs):
    """train_and_evaluate of a validated config, under its arithmetic precision."""
    objective = get_objective(config.loss.name)
    pipeline = Pipeline(config, jax.process_index(), jax.process_count(), jax.device_count())
    teacher_variables = load_teacher(config) if objective.uses_teacher else {}
    mesh = Mesh()
    device_split = place_training_data(config, pipeline, mesh)
    if config.seeds and jax.default_backend() == 'cpu':
        logging.warning('Seeds trained together on a CPU are slower than one after another (5 seeds took '
                        '15x one seed\'s step: bench/RESULTS.md); consider separate runs with --config.seed.')
    if config.seeds and device_split is None:
        raise ConfigError(f'config.seeds={config.seeds!r} trains the seeds together from the training '
                          'split held on the devices, but it does not fit there; train each seed in its '
                          'own run with --config.seed.')
    with contextlib.ExitStack() as locks:
        for run in runs:
            os.makedirs(run.workdir, exist_ok=True)
            locks.enter_context(WorkdirLock(run.workdir))
            files.remove_abandoned(os.path.join(run.workdir, 'export'))
            record_run(run.workdir, run.config, jax.device_count(), pipeline.steps_per_epoch)
        return train_in_workdirs(config, runs, objective, pipeline, device_split, mesh, teacher_variables)


def train_in_workdirs(config, runs, objective, pipeline, device_split, mesh, teacher_variables):
    """The runs themselves, once their workdirs are locked; returns their summaries."""
    experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, teacher_variables,
                                   data_on_device=device_split is not None)
    runs = [run._replace(manager=checkpoints.checkpoint_manager(run.workdir, config.checkpoints_to_keep))
            for run in runs]
    state = restore(runs, experiment.state, mesh)  # a checkpoint that cannot be read stops the run here
    runs = [run._replace(writer=create_writer(run.workdir, just_logging=jax.process_index() > 0)) for run in runs]
    try:
        if state is None:
            state = experiment.state
            announce_fresh_runs(state, runs)
        teacher_accuracy, teacher_logits = evaluate_teacher(experiment, config, pipeline, mesh, runs,
                                                            current_step(state))
        with StopRequest() as stop:
            state, histories = train_epochs(config, experiment, state, pipeline, device_split, mesh, runs,
                                            stop, teacher_logits)
    finally:
        for run in runs:
            run.manager.wait_until_finished()
            run.writer.flush()
    return [finish_run(run, history, select(state, run.index), objective, teacher_accuracy)
            for run, history in zip(runs, histories)]


def finish_run(run, history, state, objective, teacher_accuracy):
    """Writes a run's summary (and the export of a model trained alone); returns the summary."""
    summary = summarize(history.entries, teacher_accuracy, run.config)
    logging.info('Done: best top-1 %.2f%% (epoch %d), last top-1 %.2f%%; summary in %s.',
                 summary['best_top1'], summary['best_epoch'] + 1, summary['last_top1'],
                 os.path.join(run.workdir, 'summary.json'))
    write_summary(run.workdir, summary)
    if not objective.uses_teacher:
        export_student(state, run.config, run.workdir)
    run.manager.close()
    return summary


def select(tree, index):
    """One seed's part of a tree stacked over seeds; the tree itself for index None."""
    return tree if index is None else jax.tree.map(lambda leaf: leaf[index], tree)


def of_seed(values, index):
    """{name: float} of one seed from evaluate's {name: array}."""
    return {name: float(value if index is None else value[index]) for name, value in values.items()}


def current_step(state):
    """The state's step (each seed's, equal, for a state stacked over seeds)."""
    return int(np.ravel(jax.device_get(state.step))[0])


def restore(runs, state, mesh):
    """The runs' latest checkpoint, restored into the structure and shardings of `state`; None
    when there is none. Seeds resume from their latest common step: a later one that a kill left
    in some seeds only is removed (it is recomputed exactly)."""
    if runs[0].index is None:
        return checkpoints.restore(runs[0].manager, state, runs[0].manager.latest_step())
    common = set.intersection(*(set(run.manager.all_steps()) for run in runs))
    step = max(common, default=None)
    for run in runs:
        for later in [saved for saved in run.manager.all_steps() if step is None or saved > step]:
            logging.warning('Removing checkpoint %d of %s: the other seeds have not saved it.', later,
                            run.workdir)
            run.manager.delete(later)
    if step is None:
        return None
    seeds = [checkpoints.restore(run.manager, select(state, run.index), step) for run in runs]
    return jax.jit(lambda seeds: jax.tree.map(lambda *leaves: jnp.stack(leaves), *seeds),
                   out_shardings=mesh.replicated)(seeds)


def initialize_distributed(config):
    """jax.distributed.initialize with the settings the config gives; the rest auto-detected."""
    settings = {'coordinator_address': config.coordinator_address or None,
                'num_processes': config.num_processes or None,
                'process_id': config.process_id if config.process_id >= 0 else None}
    jax.distributed.initialize(**{key: value for key, value in settings.items() if value is not None})


def announce_fresh_runs(state, runs):
    """Logs the parameter overview and records each run's config as hyperparameters."""
    parameter_overview.log_parameter_overview(select(state, runs[0].index).params)
    for run in runs:
        run.writer.write_hparams({key: str(value) for key, value in flatten(run.config.to_dict()).items()})


def place_training_data(config, pipeline, mesh):
    """The training split sharded over the devices, where config.data.on_device asks for it
    and an in-memory split fits (device_data.MEMORY_FRACTION); else None: the host feeds batches."""
    if not (config.data.on_device and pipeline.in_memory):
        return None
    if not device_data.fits_on_devices(pipeline.train_split, mesh.mesh.local_devices):
        logging.info('The training split does not fit on the devices: the host feeds the batches.')
        return None
    split = device_data.place_split(pipeline.train_split, mesh)
    logging.info('Training split on the devices: %d examples, %.1f MiB; crops and flips in the step.',
                 split.labels.shape[0], split.images.nbytes / 2**20)
    return split


def evaluate(step_function, batches, mesh, teacher_logits=None):
    """Every summed metric of step_function over batches of (images, labels, mask), per example,
    as arrays ([seeds] for a step over seeds); with `teacher_logits` (one array per batch),
    step_function also takes the batch's."""
    totals = None
    for index, (images, labels, mask) in enumerate(batches):
        arguments = mesh.shard(images, labels, mask)
        if teacher_logits is not None:
            arguments.append(teacher_logits[index])
        sums = step_function(*arguments)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    return {name: np.asarray(total, np.float64) / np.asarray(totals['count'], np.float64)
            for name, total in totals.items() if name != 'count'}


def evaluate_teacher(experiment, config, pipeline, mesh, runs, step):
    """The frozen teacher's logits on every test batch, kept for the run's evaluations (they
    never change), and its test accuracy, logged; (None, None) for a model trained alone."""
    if experiment.teacher_logits_step is None:
        return None, None
    logits = [experiment.teacher_logits_step(experiment.teacher_variables, *mesh.shard(images))
              for images, _, _ in pipeline.evaluation()]
    accuracy = of_seed(evaluate(count_hits, pipeline.evaluation(), mesh, logits), None)
    logging.info('Teacher %s: top-1 %.2f%%, top-5 %.2f%%.', config.teacher.model, accuracy['top1'],
                 accuracy['top5'])
    for run in runs:
        run.writer.write_scalars(step, {f'teacher_{name}': value for name, value in accuracy.items()})
    return accuracy, logits


@jax.jit
def count_hits(images, labels, mask, logits):
    """count_correct of precomputed logits, in evaluate's argument order."""
    return count_correct(logits, labels, mask)


def compare_classifiers(distiller, objective, state, teacher_variables, over_seeds):
    """‖W_t − W_s‖_F and their cosine (arrays, [seeds] `over_seeds`), where the student predicts
    with a classifier of its own of the teacher classifier's shape; {} elsewhere."""
    if distiller.teacher is None or objective.evaluation_classifier != 'student':
        return {}
    student = state.params['student'][distiller.student.classifier_name]['kernel']
    teacher = teacher_variables['params'][distiller.teacher.classifier_name]['kernel']
    if student.shape[int(over_seeds):] != teacher.shape:
        return {}
    compare = compare_classifier_weights_over_seeds if over_seeds else compare_classifier_weights
    return {name: np.asarray(value) for name, value in jax.device_get(compare(student, teacher)).items()}


def dispatches(steps, steps_per_dispatch):
    """How many steps each dispatch of an epoch's `steps` runs: as many as asked, the rest last."""
    return [steps_per_dispatch] * (steps // steps_per_dispatch) + [steps % steps_per_dispatch] * bool(
        steps % steps_per_dispatch)


def train_epoch(config, experiment, state, pipeline, device_split, mesh, epoch, progress, stop):
    """The steps of `epoch` from the state's step on; returns the state."""
    start = current_step(state) % pipeline.steps_per_epoch
    if device_split is None:
        for images, labels in pipeline.train_epoch(epoch, start):
            state, metrics = experiment.train_step(state, experiment.teacher_variables,
                                                   *mesh.shard(images, labels))
            progress.record(metrics)
            stop.check()
        return state
    order = device_data.epoch_order(device_split, epoch, mesh, experiment.seeds)
    for count in dispatches(pipeline.steps_per_epoch - start, config.steps_per_dispatch):
        state, metrics = experiment.train_steps(count)(state, experiment.teacher_variables, *device_split,
                                                       order, experiment.seeds)
        progress.record(metrics, count)
        stop.check()
    return state


class StopRequest:
    """Ctrl-C while training, taken at a safe point: the first one stops the loop after its
    current step (a checkpoint being saved is finished first), a second one at once."""

    def __enter__(self):
        self.requested, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.request)
        return self

    def request(self, signal_number, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logging.warning('Ctrl-C: stopping after this step (press it again to stop at once).')

    def check(self):
        """Stops here (KeyboardInterrupt) if Ctrl-C was pressed."""
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exception):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train_epochs(config, experiment, state, pipeline, device_split, mesh, runs, stop, teacher_logits):
    """The epochs from the state's step on: train, evaluate, checkpoint; returns each run's history."""
    steps_per_epoch = pipeline.steps_per_epoch
    step = current_step(state)
    histories = [History(run.workdir, step // steps_per_epoch) for run in runs]
    progress = Progress(steps_per_epoch * config.num_epochs, step, config.global_batch_size,
                        [run.writer for run in runs], config.log_every_steps,
                        [None if run.index is None else run.config.seed for run in runs])
    objective = get_objective(config.loss.name)
    for epoch in range(step // steps_per_epoch, config.num_epochs):
        state = train_epoch(config, experiment, state, pipeline, device_split, mesh, epoch, progress, stop)
        progress.flush()
        step = current_step(state)
        accuracy = evaluate(functools.partial(experiment.eval_step, state, experiment.teacher_variables),
                            pipeline.evaluation(), mesh, teacher_logits)
        accuracy.update(compare_classifiers(experiment.distiller, objective, state,
                                            experiment.teacher_variables, bool(config.seeds)))
        for run, history in zip(runs, histories):
            seed_accuracy = of_seed(accuracy, run.index)
            history.append({'epoch': epoch, 'step': step, **seed_accuracy})
            run.writer.write_scalars(step, {f'test_{name}': value for name, value in seed_accuracy.items()})
            checkpoints.save(run.manager, select(state, run.index), seed_accuracy)
        logging.info('Epoch %d/%d: test top-1 %s%%, top-5 %s%%.', epoch + 1, config.num_epochs,
                     ' '.join(f'{value:.2f}' for value in np.ravel(accuracy['top1'])),
                     ' '.join(f'{value:.2f}' for value in np.ravel(accuracy['top5'])))
        stop.check()
    return state, histories

"""train_and_evaluate: a run from its config to summary.json.

Check the config and the workdir, read the data, load the frozen teacher (nothing is written
until all three are good), build the jitted steps, then for each epoch train, evaluate
(accuracy and the paper's error-bound terms), log and checkpoint; a run restarted on the same
workdir resumes exactly from its latest checkpoint.
"""
import functools
import os
import signal
import threading

import jax
import jax.numpy as jnp
from absl import logging
from clu import parameter_overview

from ijckd_jax import files
from ijckd_jax.bound import classifier_comparison
from ijckd_jax.config import check_workdir_writable, validate_config
from ijckd_jax.data import device as device_data
from ijckd_jax.data.pipeline import Pipeline
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


def train_and_evaluate(config, workdir):
    """Trains the student of `config`, evaluating every epoch; returns the summary."""
    if config.distributed:
        initialize_distributed(config)
    validate_config(config, jax.device_count())
    check_workdir_writable(workdir)
    check_belongs(workdir, config, jax.device_count())
    logging.info(describe_arithmetic(config.dtype, config.matmul_precision))
    logging.info(describe_compilation_cache())
    with matmul_precision(config.matmul_precision):
        return train_validated(config, workdir)


def train_validated(config, workdir):
    """train_and_evaluate of a validated config, under its arithmetic precision."""
    objective = get_objective(config.loss.name)
    pipeline = Pipeline(config, jax.process_index(), jax.process_count(), jax.device_count())
    teacher_variables = load_teacher(config) if objective.uses_teacher else {}
    os.makedirs(workdir, exist_ok=True)
    with WorkdirLock(workdir):
        files.remove_abandoned(os.path.join(workdir, 'export'))
        record_run(workdir, config, jax.device_count(), pipeline.steps_per_epoch)
        return train_in_workdir(config, workdir, objective, pipeline, teacher_variables)


def train_in_workdir(config, workdir, objective, pipeline, teacher_variables):
    """The run itself, once its workdir is locked; returns the summary."""
    mesh = Mesh()
    device_split = place_training_data(config, pipeline, mesh)
    experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, teacher_variables,
                                   data_on_device=device_split is not None)
    writer = create_writer(workdir, just_logging=jax.process_index() > 0)
    manager = checkpoints.checkpoint_manager(workdir, config.checkpoints_to_keep)
    try:
        state = checkpoints.restore_latest(manager, experiment.state)
        if state is None:
            state = experiment.state
            announce_fresh_run(state, config, writer)
        teacher_accuracy, teacher_logits = evaluate_teacher(experiment, config, pipeline, mesh, writer,
                                                            int(state.step))
        with StopRequest() as stop:
            state, history = train_epochs(config, experiment, state, pipeline, device_split, mesh, writer,
                                          manager, workdir, stop, teacher_logits)
    finally:
        manager.wait_until_finished()
        writer.flush()
    summary = summarize(history.entries, teacher_accuracy, config)
    logging.info('Done: best top-1 %.2f%% (epoch %d), last top-1 %.2f%%; summary in %s.',
                 summary['best_top1'], summary['best_epoch'] + 1, summary['last_top1'],
                 os.path.join(workdir, 'summary.json'))
    write_summary(workdir, summary)
    if not objective.uses_teacher:
        export_student(state, config, workdir)
    manager.close()
    return summary


def initialize_distributed(config):
    """jax.distributed.initialize with the settings the config gives; the rest auto-detected."""
    settings = {'coordinator_address': config.coordinator_address or None,
                'num_processes': config.num_processes or None,
                'process_id': config.process_id if config.process_id >= 0 else None}
    jax.distributed.initialize(**{key: value for key, value in settings.items() if value is not None})


def announce_fresh_run(state, config, writer):
    """Logs the parameter overview and records the config as hyperparameters."""
    parameter_overview.log_parameter_overview(state.params)
    writer.write_hparams({key: str(value) for key, value in flatten(config.to_dict()).items()})


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
    """Every summed metric of step_function over batches of (images, labels, mask), per example;
    with `teacher_logits` (one array per batch), step_function also takes the batch's."""
    totals = None
    for index, (images, labels, mask) in enumerate(batches):
        arguments = mesh.shard(images, labels, mask)
        if teacher_logits is not None:
            arguments.append(teacher_logits[index])
        sums = step_function(*arguments)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    return {name: float(total) / float(totals['count']) for name, total in totals.items()
            if name != 'count'}


def evaluate_teacher(experiment, config, pipeline, mesh, writer, step):
    """The frozen teacher's logits on every test batch, kept for the run's evaluations (they
    never change), and its test accuracy, logged; (None, None) for a model trained alone."""
    if experiment.teacher_logits_step is None:
        return None, None
    logits = [experiment.teacher_logits_step(experiment.teacher_variables, *mesh.shard(images))
              for images, _, _ in pipeline.evaluation()]
    accuracy = evaluate(count_hits, pipeline.evaluation(), mesh, logits)
    logging.info('Teacher %s: top-1 %.2f%%, top-5 %.2f%%.', config.teacher.model, accuracy['top1'],
                 accuracy['top5'])
    writer.write_scalars(step, {f'teacher_{name}': value for name, value in accuracy.items()})
    return accuracy, logits


@jax.jit
def count_hits(images, labels, mask, logits):
    """count_correct of precomputed logits, in evaluate's argument order."""
    return count_correct(logits, labels, mask)


def compare_classifiers(distiller, objective, state, teacher_variables):
    """‖W_t − W_s‖_F and their cosine, where the student predicts with a classifier of its
    own of the teacher classifier's shape; {} elsewhere."""
    if distiller.teacher is None or objective.evaluation_classifier != 'student':
        return {}
    student = state.params['student'][distiller.student.classifier_name]['kernel']
    teacher = teacher_variables['params'][distiller.teacher.classifier_name]['kernel']
    if student.shape != teacher.shape:
        return {}
    return {name: float(value) for name, value in
            jax.device_get(compare_classifier_weights(student, teacher)).items()}


def dispatches(steps, steps_per_dispatch):
    """How many steps each dispatch of an epoch's `steps` runs: as many as asked, the rest last."""
    return [steps_per_dispatch] * (steps // steps_per_dispatch) + [steps % steps_per_dispatch] * bool(
        steps % steps_per_dispatch)


def train_epoch(config, experiment, state, pipeline, device_split, mesh, epoch, progress, stop):
    """The steps of `epoch` from the state's step on; returns the state."""
    start = int(state.step) % pipeline.steps_per_epoch
    if device_split is None:
        for images, labels in pipeline.train_epoch(epoch, start):
            state, metrics = experiment.train_step(state, experiment.teacher_variables,
                                                   *mesh.shard(images, labels))
            progress.record(metrics)
            stop.check()
        return state
    order = device_data.epoch_order(device_split, epoch, mesh, pipeline.seed)
    for count in dispatches(pipeline.steps_per_epoch - start, config.steps_per_dispatch):
        state, metrics = experiment.train_steps(count)(state, experiment.teacher_variables, *device_split,
                                                       order)
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


def train_epochs(config, experiment, state, pipeline, device_split, mesh, writer, manager, workdir, stop,
                 teacher_logits):
    """The epochs from the state's step on: train, evaluate, checkpoint; returns the history."""
    steps_per_epoch = pipeline.steps_per_epoch
    step = int(state.step)
    history = History(workdir, step // steps_per_epoch)
    progress = Progress(steps_per_epoch * config.num_epochs, step, config.global_batch_size, writer,
                        config.log_every_steps)
    objective = get_objective(config.loss.name)
    for epoch in range(step // steps_per_epoch, config.num_epochs):
        state = train_epoch(config, experiment, state, pipeline, device_split, mesh, epoch, progress, stop)
        progress.flush()
        step = int(state.step)
        accuracy = evaluate(functools.partial(experiment.eval_step, state, experiment.teacher_variables),
                            pipeline.evaluation(), mesh, teacher_logits)
        accuracy.update(compare_classifiers(experiment.distiller, objective, state,
                                            experiment.teacher_variables))
        history.append({'epoch': epoch, 'step': step, **accuracy})
        writer.write_scalars(step, {f'test_{name}': value for name, value in accuracy.items()})
        logging.info('Epoch %d/%d: test top-1 %.2f%%, top-5 %.2f%%.', epoch + 1, config.num_epochs,
                     accuracy['top1'], accuracy['top5'])
        checkpoints.save(manager, state, accuracy)
        stop.check()
    return state, history

"""train_and_evaluate: a run from its config to summary.json.

Check the config and the workdir, read the data, load the frozen teacher (nothing is written
until all three are good), build the experiment, then for each epoch train, evaluate
(accuracy and the paper's error-bound terms), log and checkpoint; a run restarted on the same
workdir resumes exactly from its latest checkpoint. Every config trains rows × seeds in one
step (training/layout.py: a run alone is one row and one seed), each row × seed a run logged,
checkpointed and summarised in its own run directory.
"""
import contextlib
import os
import shutil
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from clu import parameter_overview

from ijckd_jax import files
from ijckd_jax.bound import classifier_comparison
from ijckd_jax.config import check_workdir_writable
from ijckd_jax.data import device as device_data
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.errors import ConfigError
from ijckd_jax.objectives import get_objective
from ijckd_jax.runtime import describe_arithmetic, describe_compilation_cache, matmul_precision
from ijckd_jax.training import checkpoints, steps
from ijckd_jax.training.experiment import create_experiment, load_teacher
from ijckd_jax.training.layout import check_layout, loss_field, record_layout, runs_of, validate
from ijckd_jax.training.mesh import Mesh
from ijckd_jax.training.metrics import DETAILS, create_writer, details_shown
from ijckd_jax.training.progress import Progress
from ijckd_jax.training.runs import assemble, listing, of_run, seed_order, select
from ijckd_jax.training.steps import SplitBatch, count_correct, step_count
from ijckd_jax.training.workdir import (History, WorkdirLock, check_belongs, check_same_examples,
                                        checkpointed_steps, export_student, flatten, record_run, summarize,
                                        write_summary)

# Jitted once: the student's and the teacher's classifier keep their shapes for the whole run.
compare_classifier_weights = jax.jit(classifier_comparison)
compare_classifier_weights_over_seeds = jax.jit(jax.vmap(classifier_comparison, in_axes=(0, None)))


def train_and_evaluate(config, workdir):
    """Trains the student of `config`, evaluating every epoch; returns the summary of a run
    alone (in `workdir` itself), else a list: for config.seeds, one summary per seed, each run
    in workdir/seed_{seed}; for a table, even of one row, one per row × seed, row by row."""
    if config.distributed:
        initialize_distributed(config)
    validate(config, jax.device_count())
    check_layout(workdir, config)
    runs = runs_of(config, workdir)
    for run in runs:
        check_workdir_writable(run.workdir)
        check_belongs(run.workdir, run.config, jax.device_count())
    logging.info(describe_arithmetic(config.dtype, config.matmul_precision))
    logging.info(describe_compilation_cache())
    with matmul_precision(config.matmul_precision):
        summaries = train_validated(config, runs, workdir)
    return summaries[0] if [run.workdir for run in runs] == [workdir] else summaries


def train_validated(config, runs, workdir):
    """train_and_evaluate of a validated config, under its arithmetic precision."""
    uses_teacher = any(get_objective(run.config.loss.name).uses_teacher for run in runs)
    pipeline = Pipeline(config, jax.process_index(), jax.process_count(), jax.device_count())
    teacher_variables = load_teacher(config) if uses_teacher else {}
    mesh = Mesh()
    device_split = place_training_data(config, pipeline, mesh)
    examples = split_size(device_split)
    check_memory_banks(runs, examples, config)
    if config.seeds and jax.default_backend() == 'cpu' and config.seeds_vectorized == 'vmap':
        logging.warning('Seeds vmapped on a CPU are slower than one after another (5 seeds took 15x one '
                        "seed's step: bench/RESULTS.md); consider --config.seeds_vectorized=in_turn.")
    if config.seeds and device_split is None:
        raise ConfigError(f'config.seeds={config.seeds!r} trains the seeds together from the training '
                          'split held on the devices, but it does not fit there; train each seed in its '
                          'own run with --config.seed.')
    new_directories = [directory for directory in [workdir] + [run.workdir for run in runs]
                       if not os.path.exists(directory)]
    try:
        with contextlib.ExitStack() as locks:
            if jax.process_index() == 0:
                record_layout(workdir, config)
            for run in runs:
                os.makedirs(run.workdir, exist_ok=True)
                locks.enter_context(WorkdirLock(run.workdir))
                files.remove_abandoned(os.path.join(run.workdir, 'export'))
                record_run(run.workdir, run.config, jax.device_count(), pipeline.steps_per_epoch, examples)
            return train_in_workdirs(config, runs, pipeline, device_split, mesh, teacher_variables)
    except BaseException:
        remove_if_nothing_kept(runs, new_directories)
        raise


def remove_if_nothing_kept(runs, new_directories):
    """Removes the workdirs this run created where it stopped (diverged, interrupted, failed)
    before any of its runs kept a checkpoint: there is nothing to resume or report."""
    if jax.process_index() > 0 or any(checkpointed_steps(run.workdir) for run in runs):
        return
    for directory in new_directories:
        shutil.rmtree(directory, ignore_errors=True)


def check_memory_banks(runs, examples, config):
    """Runs whose objective indexes the training split (CRD) have it on the devices, of the
    size their memory bank was made for."""
    warned = set()
    for run in runs:
        if get_objective(run.config.loss.name).uses_examples:
            if examples is None:
                raise ConfigError(f"config.loss.name='{run.config.loss.name}' keeps a memory bank indexed by each "
                                  "example's position in the training split, but the split does not fit on the "
                                  'devices; train on a smaller split or devices with more memory.')
            check_same_examples(run.workdir, examples)
            negatives = run.config.loss.get('negatives', 0)
            if negatives > examples and run.row not in warned:
                warned.add(run.row)
                logging.warning('%s scores %d negatives per example each step (its CIFAR-100 setting), more than the '
                                '%d examples of this split: its step costs several times that of KD here; '
                                '--config.%s.negatives=N sets fewer.', run.config.loss.name.upper(), negatives,
                                examples, loss_field(config, run.row))


def split_size(device_split):
    """The number of examples of the training split held on the devices; None where the host
    feeds the batches."""
    return None if device_split is None else int(device_split.labels.shape[0])


def train_in_workdirs(config, runs, pipeline, device_split, mesh, teacher_variables):
    """The runs themselves, once their workdirs are locked; returns their summaries."""
    experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, teacher_variables,
                                   split_size(device_split))
    runs = [run._replace(manager=checkpoints.checkpoint_manager(run.workdir, config.checkpoints_to_keep))
            for run in runs]
    state = restore_runs(runs, experiment.state, mesh)  # a checkpoint that cannot be read stops the run here
    runs = [run._replace(writer=create_writer(run.workdir, just_logging=jax.process_index() > 0)) for run in runs]
    try:
        if state is None:
            state = experiment.state
            announce_fresh_runs(state, runs)
        teacher_accuracy, teacher_logits = evaluate_teacher(experiment, config, pipeline, runs, current_step(state))
        state, histories = train_epochs(config, experiment._replace(state=state), pipeline, device_split, runs,
                                        teacher_logits)
    finally:
        for run in runs:
            run.manager.wait_until_finished()
            run.writer.flush()
    return [finish_run(run, history, select(state, run), teacher_accuracy)
            for run, history in zip(runs, histories)]


def finish_run(run, history, state, teacher_accuracy):
    """Writes a run's summary (and the export of a model trained alone); returns the summary."""
    summary = summarize(history.entries, teacher_accuracy, run.config)
    logging.info('Done: best top-1 %.2f%%, top-5 %.2f%% (epoch %d, %s), last top-1 %.2f%%; summary in %s.',
                 summary['best_top1'], summary['best_top5'], summary['best_epoch'], summary['best_checkpoint'],
                 summary['last_top1'], os.path.join(run.workdir, 'summary.json'))
    write_summary(run.workdir, summary)
    if not get_objective(run.config.loss.name).uses_teacher:
        export_student(state, run.config, run.workdir)
    run.manager.close()
    return summary


def current_step(state):
    """The state's step (each row's and seed's, equal)."""
    return int(np.ravel(jax.device_get(step_count(state)))[0])


def restore_runs(runs, state, mesh):
    """The runs' latest common checkpoint, restored into the structure and shardings of
    `state`; None when there is none. A later one that a kill left in some of the runs trained
    together only is removed (it is recomputed exactly)."""
    common = set.intersection(*(set(run.manager.all_steps()) for run in runs))
    step = max(common, default=None)
    for run in runs:
        for later in [saved for saved in run.manager.all_steps() if step is None or saved > step]:
            logging.warning('Removing checkpoint %d of %s: the runs trained with it have not all saved it.', later,
                            run.workdir)
            run.manager.delete(later)
    if step is None:
        return None
    parts = [checkpoints.restore(run.manager, select(state, run), step) for run in runs]
    return jax.jit(lambda parts: assemble(parts, runs), out_shardings=mesh.replicated)(parts)


def initialize_distributed(config):
    """jax.distributed.initialize with the settings the config gives; the rest auto-detected."""
    settings = {'coordinator_address': config.coordinator_address or None,
                'num_processes': config.num_processes or None,
                'process_id': config.process_id if config.process_id >= 0 else None}
    jax.distributed.initialize(**{key: value for key, value in settings.items() if value is not None})


def announce_fresh_runs(state, runs):
    """Records each run's config as hyperparameters; logs the parameter overview among the
    details."""
    if details_shown():
        DETAILS.debug('Parameters:\n%s', parameter_overview.get_parameter_overview(select(state, runs[0]).params))
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
    as arrays ([seeds] for a step over seeds), keyed as the step keys them; step_function takes
    the sharded batch with the batch's `teacher_logits` (one array per batch, or None)."""
    totals = None
    for index, (images, labels, mask) in enumerate(batches):
        logits = None if teacher_logits is None else teacher_logits[index]
        sums = mesh.settled(step_function((*mesh.shard(images, labels, mask), logits)))
        totals = sums if totals is None else mesh.settled(jax.tree.map(jnp.add, totals, sums))
    return per_example(jax.device_get(totals))


def per_example(totals):
    """{name: total / count} of sums with their 'count', at every level of a tree of them."""
    if 'count' not in totals:
        return {key: per_example(value) for key, value in totals.items()}
    return {name: np.asarray(total, np.float64) / np.asarray(totals['count'], np.float64)
            for name, total in totals.items() if name != 'count'}


def evaluate_teacher(experiment, config, pipeline, runs, step):
    """The frozen teacher's logits on every test batch, kept for the run's evaluations (they
    never change), and its test accuracy, logged; (None, None) where no row distils."""
    spec = experiment.spec
    if spec.teacher is None:
        return None, None
    logits = [spec.mesh.settled(steps.teacher_logits(experiment.teacher_variables, *spec.mesh.shard(images), spec))
              for images, _, _ in pipeline.evaluation()]
    accuracy = {name: float(value) for name, value in evaluate(count_hits, pipeline.evaluation(), spec.mesh,
                                                               logits).items()}
    logging.info('Teacher %s: top-1 %.2f%%, top-5 %.2f%%.', config.teacher.model, accuracy['top1'],
                 accuracy['top5'])
    for run in runs:
        run.writer.write_scalars(step, {f'teacher_{name}': value for name, value in accuracy.items()})
    return accuracy, logits


@jax.jit
def count_hits(batch):
    """count_correct of precomputed logits: batch is (images, labels, mask, logits)."""
    _, labels, mask, logits = batch
    return count_correct(logits, labels, mask)


def compare_classifiers(experiment, state):
    """Each row's comparison_of_classifiers, {row: {name: array}}."""
    return {row.name: comparison_of_classifiers(row, state[row.name], experiment.teacher_variables,
                                                bool(experiment.spec.seeds))
            for row in experiment.spec.rows}


def comparison_of_classifiers(row, state, teacher_variables, over_seeds):
    """‖W_t − W_s‖_F and their cosine (arrays, [seeds] `over_seeds`), where the row's student
    predicts with a classifier of its own of the teacher classifier's shape; {} elsewhere."""
    distiller = row.distiller
    if distiller.teacher is None or row.objective.evaluation_classifier != 'student':
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


def train_epoch(experiment, pipeline, device_split, index, progress, steps_per_dispatch):
    """The steps of the epoch that `index` counts from 0 (it seeds the epoch's order), from the
    experiment's state's step on; returns the state."""
    state, teacher_variables, spec = experiment.state, experiment.teacher_variables, experiment.spec
    start = current_step(state) % pipeline.steps_per_epoch
    if device_split is None:
        for images, labels in pipeline.train_epoch(index, start):
            state, metrics = spec.mesh.settled(steps.train(state, teacher_variables,
                                                           tuple(spec.mesh.shard(images, labels)), spec))
            progress.record(metrics)
        return state
    batch = SplitBatch(*device_split, device_data.epoch_order(device_split, index, spec.mesh, experiment.seeds),
                       experiment.seeds)
    for count in dispatches(pipeline.steps_per_epoch - start, steps_per_dispatch):
        state, metrics = spec.mesh.settled(steps.dispatch(state, teacher_variables, batch, spec, count))
        progress.record(metrics, count)
    return state


class StopRequest:
    """Ctrl-C while training, taken at a safe point: the first one stops the loop at its next
    dispatch (the steps dispatched before run first, and a checkpoint being saved is finished),
    a second one at once."""

    def __enter__(self):
        self.requested, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.request)
        return self

    def request(self, signal_number, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logging.warning('Ctrl-C: stopping once the steps already sent to the devices have run; the run keeps '
                        'its last finished epoch (press Ctrl-C again to stop at once).')

    def check(self):
        """Stops here (KeyboardInterrupt) if Ctrl-C was pressed."""
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exception):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train_epochs(config, experiment, pipeline, device_split, runs, teacher_logits):
    """The epochs from the experiment's state's step on: train, evaluate, checkpoint, one line
    each; returns the state and each run's history."""
    state, steps_per_epoch, spec = experiment.state, pipeline.steps_per_epoch, experiment.spec
    step = current_step(state)
    histories = [History(run.workdir, step // steps_per_epoch) for run in runs]
    with StopRequest() as stop:
        progress = Progress(runs, config, steps_per_epoch, step, stop)
        for epoch in range(step // steps_per_epoch + 1, config.num_epochs + 1):
            start = time.time()
            state = train_epoch(experiment._replace(state=state), pipeline, device_split, epoch - 1, progress,
                                config.steps_per_dispatch)
            training, rate = progress.end_epoch()
            step = current_step(state)
            accuracy = evaluate(lambda batch: steps.evaluate(state, experiment.teacher_variables, batch, spec),
                                pipeline.evaluation(), spec.mesh, teacher_logits)
            for row, values in compare_classifiers(experiment, state).items():
                accuracy[row].update(values)
            run_accuracies = [of_run(accuracy, run) for run in runs]
            for run, history, run_accuracy in zip(runs, histories, run_accuracies):
                entry = {'epoch': epoch, 'step': step, **run_accuracy}
                history.append(entry)
                run.writer.write_scalars(step, {f'test_{name}': value for name, value in run_accuracy.items()})
                checkpoints.save(run.manager, select(state, run), entry)
            seconds = time.time() - start
            logging.info('Epoch %d/%d%s: test top-1 %s%%, train top-1 %s%%, loss %s; %.1f s at %.1f images/s, '
                         'ETA %s.', epoch, config.num_epochs, seed_order(runs),
                         listing([values['top1'] for values in run_accuracies], runs, 2),
                         listing([values['train_top1'] for values in training], runs, 2),
                         listing([values['loss'] for values in training], runs, 4), seconds, rate,
                         time.strftime('%H:%M:%S', time.gmtime((config.num_epochs - epoch) * seconds)))
            stop.check()
    return state, histories

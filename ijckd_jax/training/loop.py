"""train_and_evaluate: a run from its config to summary.json.

Check the config and the workdir, read the data, load the frozen teacher (nothing is written
until all three are good), build the jitted steps, then for each epoch train, evaluate
(accuracy and the paper's error-bound terms), log and checkpoint; a run restarted on the same
workdir resumes exactly from its latest checkpoint. With config.seeds, the seeds' runs train
together, their state stacked over seeds, each logged, checkpointed and summarised in its own
workdir/seed_{seed}. A comparison table (ijckd_jax/table.py) trains several methods on the
same batches in one step, each method × seed a run of its own in workdir/METHOD/seed_{seed}.
"""
import contextlib
import functools
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
from ijckd_jax.config import check_workdir_writable, validate_config
from ijckd_jax.data import device as device_data
from ijckd_jax.data.pipeline import Pipeline
from ijckd_jax.errors import ConfigError
from ijckd_jax.objectives import get_objective
from ijckd_jax.runtime import describe_arithmetic, describe_compilation_cache, matmul_precision
from ijckd_jax.table import (check_not_a_table, check_table_workdir, is_table, method_configs, record_table,
                             table_runs, validate_table)
from ijckd_jax.training import checkpoints
from ijckd_jax.training.experiment import create_experiment, create_table_experiment, load_teacher, vectorize_seeds
from ijckd_jax.training.mesh import Mesh
from ijckd_jax.training.metrics import DETAILS, create_writer, details_shown
from ijckd_jax.training.progress import Progress
from ijckd_jax.training.runs import Run, assemble, listing, of_run, seed_order, select
from ijckd_jax.training.state import learning_rate
from ijckd_jax.training.steps import count_correct, step_count
from ijckd_jax.training.workdir import (History, WorkdirLock, check_belongs, check_same_examples,
                                        checkpointed_steps, export_student, flatten, record_run, summarize,
                                        write_summary)

# Jitted once: the student's and the teacher's classifier keep their shapes for the whole run.
compare_classifier_weights = jax.jit(classifier_comparison)
compare_classifier_weights_over_seeds = jax.jit(jax.vmap(classifier_comparison, in_axes=(0, None)))


def train_and_evaluate(config, workdir):
    """Trains the student of `config`, evaluating every epoch; returns the summary (for
    config.seeds, one summary per seed, each run in workdir/seed_{seed}; for a table, one per
    method × seed, method by method)."""
    if config.distributed:
        initialize_distributed(config)
    if is_table(config):
        validate_table(config, jax.device_count())
        check_table_workdir(workdir, config)
        runs = [Run(*run) for run in table_runs(config, workdir)]
    else:
        validate_config(config, jax.device_count())
        check_not_a_table(workdir)
        runs = seed_runs(config, workdir)
    for run in runs:
        check_workdir_writable(run.workdir)
        check_belongs(run.workdir, run.config, jax.device_count())
    logging.info(describe_arithmetic(config.dtype, config.matmul_precision))
    logging.info(describe_compilation_cache())
    with matmul_precision(config.matmul_precision):
        summaries = train_validated(config, runs, workdir)
    return summaries if len(runs) > 1 or runs[0].index is not None else summaries[0]


def seed_runs(config, workdir):
    """The run of `config` in `workdir`; for config.seeds, each seed's in workdir/seed_{seed}."""
    if not config.seeds:
        return [Run(config, workdir, None)]
    runs = []
    for index, seed in enumerate(config.seeds):
        seed_config = config.copy_and_resolve_references()
        seed_config.seed = seed
        runs.append(Run(seed_config, os.path.join(workdir, f'seed_{seed}'), index))
    return runs


def train_validated(config, runs, workdir):
    """train_and_evaluate of a validated config, under its arithmetic precision."""
    uses_teacher = any(get_objective(run.config.loss.name).uses_teacher for run in runs)
    pipeline = Pipeline(config, jax.process_index(), jax.process_count(), jax.device_count())
    teacher_variables = load_teacher(config) if uses_teacher else {}
    mesh = Mesh()
    device_split = place_training_data(config, pipeline, mesh)
    examples = split_size(device_split)
    check_examples(runs, examples, 'method_settings.METHOD.loss' if is_table(config) else 'loss')
    if config.seeds and jax.default_backend() == 'cpu' and (not is_table(config) or vectorize_seeds(config)):
        logging.warning('Seeds vmapped on a CPU are slower than one after another (5 seeds took 15x one '
                        'seed\'s step: bench/RESULTS.md); consider separate runs with --config.seed.')
    if config.seeds and device_split is None:
        raise ConfigError(f'config.seeds={config.seeds!r} trains the seeds together from the training '
                          'split held on the devices, but it does not fit there; train each seed in its '
                          'own run with --config.seed.')
    new_directories = [directory for directory in [workdir] + [run.workdir for run in runs]
                       if not os.path.exists(directory)]
    try:
        with contextlib.ExitStack() as locks:
            if is_table(config) and jax.process_index() == 0:
                os.makedirs(workdir, exist_ok=True)
                record_table(workdir, config)
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


def check_examples(runs, examples, field='loss'):
    """Runs whose objective indexes the training split (CRD) have it on the devices, of the
    size their memory bank was made for; `field`, where a run's loss settings are set (a
    table's: 'method_settings.METHOD.loss')."""
    warned = set()
    for run in runs:
        if get_objective(run.config.loss.name).uses_examples:
            if examples is None:
                raise ConfigError(f"config.loss.name='{run.config.loss.name}' keeps a memory bank indexed by each "
                                  "example's position in the training split, but the split does not fit on the "
                                  'devices; train on a smaller split or devices with more memory.')
            check_same_examples(run.workdir, examples)
            negatives = run.config.loss.get('negatives', 0)
            if negatives > examples and run.config.loss.name not in warned:
                warned.add(run.config.loss.name)
                logging.warning('%s scores %d negatives per example each step (its CIFAR-100 setting), more than the '
                                '%d examples of this split: its step costs several times that of KD here; '
                                '--config.%s.negatives=N sets fewer.', run.config.loss.name.upper(), negatives,
                                examples, field.replace('METHOD', run.config.loss.name))


def split_size(device_split):
    """The number of examples of the training split held on the devices; None where the host
    feeds the batches."""
    return None if device_split is None else int(device_split.labels.shape[0])


def train_in_workdirs(config, runs, pipeline, device_split, mesh, teacher_variables):
    """The runs themselves, once their workdirs are locked; returns their summaries."""
    examples = split_size(device_split)
    if is_table(config):
        experiment = create_table_experiment(config, method_configs(config), mesh, pipeline.steps_per_epoch,
                                             teacher_variables, data_on_device=device_split is not None,
                                             examples=examples)
    else:
        experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, teacher_variables,
                                       data_on_device=device_split is not None, examples=examples)
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
    return [finish_run(run, history, select(state, run.index), teacher_accuracy)
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
    """The state's step (each seed's and method's, equal, for runs trained together)."""
    return int(np.ravel(jax.device_get(step_count(state)))[0])


def restore(runs, state, mesh):
    """The runs' latest checkpoint, restored into the structure and shardings of `state`; None
    when there is none. Runs trained together resume from their latest common step: a later one
    that a kill left in some of them only is removed (it is recomputed exactly)."""
    if runs[0].index is None:
        return checkpoints.restore(runs[0].manager, state, runs[0].manager.latest_step())
    common = set.intersection(*(set(run.manager.all_steps()) for run in runs))
    step = max(common, default=None)
    for run in runs:
        for later in [saved for saved in run.manager.all_steps() if step is None or saved > step]:
            logging.warning('Removing checkpoint %d of %s: the runs trained with it have not all saved it.', later,
                            run.workdir)
            run.manager.delete(later)
    if step is None:
        return None
    parts = [checkpoints.restore(run.manager, select(state, run.index), step) for run in runs]
    indices = [run.index for run in runs]
    return jax.jit(lambda parts: assemble(parts, indices), out_shardings=mesh.replicated)(parts)


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
        DETAILS.debug('Parameters:\n%s', parameter_overview.get_parameter_overview(
            select(state, runs[0].index).params))
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
    accuracy = of_run(evaluate(count_hits, pipeline.evaluation(), mesh, logits), None)
    logging.info('Teacher %s: top-1 %.2f%%, top-5 %.2f%%.', config.teacher.model, accuracy['top1'],
                 accuracy['top5'])
    for run in runs:
        run.writer.write_scalars(step, {f'teacher_{name}': value for name, value in accuracy.items()})
    return accuracy, logits


@jax.jit
def count_hits(images, labels, mask, logits):
    """count_correct of precomputed logits, in evaluate's argument order."""
    return count_correct(logits, labels, mask)


def compare_classifiers(experiment, state, over_seeds):
    """Each member's comparison_of_classifiers, named 'METHOD/NAME' in a table."""
    comparison = {}
    for member in experiment.members:
        values = comparison_of_classifiers(member.distiller, get_objective(member.objective_name),
                                           select(state, (member.method, None)), experiment.teacher_variables,
                                           over_seeds)
        comparison.update({name if member.method is None else f'{member.method}/{name}': value
                           for name, value in values.items()})
    return comparison


def comparison_of_classifiers(distiller, objective, state, teacher_variables, over_seeds):
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


def train_epoch(config, experiment, state, pipeline, device_split, mesh, index, progress, stop):
    """The steps of the epoch that `index` counts from 0 (it seeds the epoch's order), from the
    state's step on; returns the state."""
    start = current_step(state) % pipeline.steps_per_epoch
    if device_split is None:
        for images, labels in pipeline.train_epoch(index, start):
            state, metrics = experiment.train_step(state, experiment.teacher_variables,
                                                   *mesh.shard(images, labels))
            progress.record(metrics)
            stop.check()
        return state
    order = device_data.epoch_order(device_split, index, mesh, experiment.seeds)
    for count in dispatches(pipeline.steps_per_epoch - start, config.steps_per_dispatch):
        state, metrics = experiment.train_steps(count)(state, experiment.teacher_variables, *device_split,
                                                       order, experiment.seeds)
        progress.record(metrics, count)
        stop.check()
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


def train_epochs(config, experiment, state, pipeline, device_split, mesh, runs, stop, teacher_logits):
    """The epochs from the state's step on: train, evaluate, checkpoint, one line each; returns
    each run's history."""
    steps_per_epoch = pipeline.steps_per_epoch
    step = current_step(state)
    histories = [History(run.workdir, step // steps_per_epoch) for run in runs]
    progress = Progress(steps_per_epoch, config.num_epochs, step, config.global_batch_size, runs,
                        config.log_every_steps, functools.partial(learning_rate, config.optimizer, steps_per_epoch))
    for epoch in range(step // steps_per_epoch + 1, config.num_epochs + 1):
        start = time.time()
        state = train_epoch(config, experiment, state, pipeline, device_split, mesh, epoch - 1, progress, stop)
        training, rate = progress.end_epoch()
        step = current_step(state)
        accuracy = evaluate(functools.partial(experiment.eval_step, state, experiment.teacher_variables),
                            pipeline.evaluation(), mesh, teacher_logits)
        accuracy.update(compare_classifiers(experiment, state, bool(config.seeds)))
        run_accuracies = [of_run(accuracy, run.index) for run in runs]
        for run, history, run_accuracy in zip(runs, histories, run_accuracies):
            entry = {'epoch': epoch, 'step': step, **run_accuracy}
            history.append(entry)
            run.writer.write_scalars(step, {f'test_{name}': value for name, value in run_accuracy.items()})
            checkpoints.save(run.manager, select(state, run.index), entry)
        seconds = time.time() - start
        logging.info('Epoch %d/%d%s: test top-1 %s%%, train top-1 %s%%, loss %s; %.1f s at %.1f images/s, ETA %s.',
                     epoch, config.num_epochs, seed_order(runs),
                     listing([values['top1'] for values in run_accuracies], runs, 2),
                     listing([values['train_top1'] for values in training], runs, 2),
                     listing([values['loss'] for values in training], runs, 4), seconds, rate,
                     time.strftime('%H:%M:%S', time.gmtime((config.num_epochs - epoch) * seconds)))
        stop.check()
    return state, histories

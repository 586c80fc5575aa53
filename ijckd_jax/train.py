"""Training and evaluation: one jitted step over a mesh of every device, orbax checkpoints,
clu metric writers.

The batch is sharded over the mesh axis 'data' and the state replicated, so the same code
runs on one CPU, the GPUs of a host, or many hosts; under this global jit BatchNorm
statistics are those of the global batch. The teacher is loaded at every start and never
written into the student's checkpoints.
"""
import functools
import itertools
import json
import os
import time
from typing import Any, Callable, NamedTuple, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from clu import metric_writers, parameter_overview
from jax.sharding import NamedSharding, PartitionSpec

from ijckd_jax import data as input_data
from ijckd_jax import device_data
from ijckd_jax.bound import bound_sums, classifier_comparison
from ijckd_jax.config import validate_config
from ijckd_jax.distillation import build_distiller, evaluation_logits, forward, init_trainable
from ijckd_jax.frozen_model import FrozenModel, load_frozen_model, save_frozen_model
from ijckd_jax.objectives import get_objective, resolve_weights

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any       # {'student': ..., 'connector': ..., 'joint_classifier': ...}
    batch_stats: Any  # {'student': ..., 'connector': ...}
    opt_state: Any


def split_variables(variables):
    """{part: {'params', 'batch_stats'}} → (params by part, batch_stats by part)."""
    params = {part: value['params'] for part, value in variables.items()}
    batch_stats = {part: value['batch_stats'] for part, value in variables.items()
                   if 'batch_stats' in value}
    return params, batch_stats


def merge_variables(params, batch_stats):
    """The inverse of split_variables."""
    return {part: {'params': value, **({'batch_stats': batch_stats[part]} if part in batch_stats else {})}
            for part, value in params.items()}


def create_optimizer(optimizer_config, steps_per_epoch):
    """torch.optim.SGD(momentum, nesterov, weight_decay) under MultiStepLR.

    As torch does, weight decay is added to the gradient before the momentum, for every
    parameter, and the learning rate drops by decay_factor at each of decay_epochs.
    """
    boundaries = {}
    for epoch in optimizer_config.decay_epochs:
        step = int(epoch) * steps_per_epoch
        boundaries[step] = boundaries.get(step, 1.0) * optimizer_config.decay_factor
    schedule = optax.piecewise_constant_schedule(optimizer_config.learning_rate, boundaries)
    return optax.chain(
        optax.add_decayed_weights(optimizer_config.weight_decay),
        optax.sgd(schedule, momentum=optimizer_config.momentum, nesterov=optimizer_config.nesterov))


def normalize(images, mean, std):
    """uint8 images → (images / 255 - mean) / std in float32 (torchvision's ToTensor + Normalize)."""
    return (images.astype(jnp.float32) / 255.0 - jnp.asarray(mean)) / jnp.asarray(std)


def create_train_state(distiller, optimizer, key, image_size):
    """Fresh trainable variables and optimizer state at step 0."""
    images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    params, batch_stats = split_variables(init_trainable(distiller, key, images))
    return TrainState(jnp.zeros((), jnp.int32), params, batch_stats, optimizer.init(params))


def train_step(state, teacher_variables, images, labels, *, distiller, objective_name, weights,
               optimizer, mean, std):
    """One SGD step on the objective; returns the new state and this step's metrics."""
    images = normalize(images, mean, std)
    objective = get_objective(objective_name).function

    def loss_function(params):
        variables = merge_variables(params, state.batch_stats)
        outputs, updated = forward(distiller, variables, teacher_variables, images, train=True)
        loss, terms = objective(outputs, labels, weights)
        return loss, (terms, split_variables(updated)[1], outputs)

    (loss, (terms, batch_stats, outputs)), gradients = jax.value_and_grad(
        loss_function, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(gradients, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    predictions = jnp.argmax(evaluation_logits(outputs, objective_name), axis=-1)
    metrics = {'loss': loss, **{f'loss_{name}': value for name, value in terms.items()},
               'train_top1': jnp.mean(predictions == labels)}
    return TrainState(state.step + 1, params, batch_stats, opt_state), metrics


def train_step_on_device(state, teacher_variables, split_images, split_labels, order, *, mesh, seed,
                         steps_per_epoch, global_batch, **step_settings):
    """train_step on the batch of the state's step, drawn from the split held on the devices."""
    images, labels = device_data.draw_batch(
        device_data.DeviceSplit(split_images, split_labels), order, state.step, mesh, seed=seed,
        steps_per_epoch=steps_per_epoch, global_batch=global_batch)
    return train_step(state, teacher_variables, images, labels, **step_settings)


def count_correct(logits, labels, mask):
    """100 × the top-1 and top-5 hits (percentages once divided by the count) and the count."""
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    hits = top5 == labels[:, None]
    return {'top1': 100.0 * jnp.sum(hits[:, 0] * mask),
            'top5': 100.0 * jnp.sum(jnp.any(hits, -1) * mask), 'count': jnp.sum(mask)}


def eval_step(state, teacher_variables, images, labels, mask, *, distiller, objective_name, mean, std):
    """Sums over one batch: hits of the objective's evaluation classifier, and the terms of
    the paper's error bound where the teacher classifier can read the student's features."""
    variables = merge_variables(state.params, state.batch_stats)
    outputs, _ = forward(distiller, variables, teacher_variables, normalize(images, mean, std),
                         train=False)
    logits = evaluation_logits(outputs, objective_name)
    sums = count_correct(logits, labels, mask)
    if outputs.teacher_classifier_logits is not None:
        sums.update(bound_sums(logits, outputs.teacher_classifier_logits, outputs.teacher_logits,
                               labels, mask))
    return sums


def teacher_eval_step(teacher_variables, images, labels, mask, *, teacher, mean, std):
    """Hits of the frozen teacher on one batch."""
    logits = teacher.apply(teacher_variables, normalize(images, mean, std)).logits
    return count_correct(logits, labels, mask)


class Mesh:
    """The device mesh and how arrays are placed on it."""

    def __init__(self, devices=None):
        devices = np.asarray(devices if devices is not None else jax.devices())
        self.mesh = jax.sharding.Mesh(devices, ('data',))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.sharded = NamedSharding(self.mesh, PartitionSpec('data'))

    def replicate(self, tree):
        """Host arrays, equal on every process, as arrays replicated over the mesh."""
        return jax.tree.map(lambda value: jax.make_array_from_callback(
            np.shape(value), self.replicated, lambda index: np.asarray(value)[index]), tree)

    def shard(self, *local_arrays):
        """This process's part of a global batch → global arrays sharded over 'data'."""
        return [jax.make_array_from_process_local_data(self.sharded, array) for array in local_arrays]


def load_teacher(config):
    """The frozen teacher's variables, checked against the config's architecture and classes."""
    if not os.path.isdir(config.teacher.checkpoint):
        raise FileNotFoundError(f'Teacher checkpoint {config.teacher.checkpoint} does not exist. '
                                'Convert one with tools/convert_torch_weights.py or train one with '
                                'configs/cifar_teacher.py.')
    frozen = load_frozen_model(config.teacher.checkpoint)
    if (frozen.model_name, frozen.num_classes) != (config.teacher.model, config.data.num_classes):
        raise ValueError(f'Teacher checkpoint {config.teacher.checkpoint} holds {frozen.model_name} '
                         f'with {frozen.num_classes} classes, but the config asks for '
                         f'{config.teacher.model} with {config.data.num_classes} classes.')
    return frozen.variables


class History:
    """Per-epoch evaluation results, kept in workdir/history.json."""

    def __init__(self, workdir, start_epoch):
        self.path = os.path.join(workdir, 'history.json')
        entries = []
        if os.path.exists(self.path):
            with open(self.path) as file:
                entries = json.load(file)
        self.entries = [entry for entry in entries if entry['epoch'] < start_epoch]

    def append(self, entry):
        self.entries.append(entry)
        if jax.process_index() == 0:
            write_json(self.path, self.entries)


def write_json(path, content):
    """Writes JSON through a temporary file, so that a reader never sees half of it."""
    with open(path + '.tmp', 'w') as file:
        json.dump(content, file, indent=2)
    os.replace(path + '.tmp', path)


def checkpoint_manager(workdir, keep):
    """Keeps the last `keep` checkpoints and the best one by top-1."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(n=keep),
        ocp.checkpoint_managers.BestN(get_metric_fn=lambda metrics: metrics['top1'], n=1,
                                      keep_checkpoints_without_metrics=False)])
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'checkpoints')), options=options)


def evaluate(step_function, batches, mesh):
    """Every summed metric of step_function over batches of (images, labels, mask), per example."""
    totals = None
    for images, labels, mask in batches:
        sums = step_function(*mesh.shard(images, labels, mask))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    return {name: float(total) / float(totals['count']) for name, total in totals.items()
            if name != 'count'}


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
            jax.device_get(jax.jit(classifier_comparison)(student, teacher)).items()}


class Experiment(NamedTuple):
    """Everything one configuration trains with, placed on a mesh."""
    distiller: Any
    state: TrainState
    teacher_variables: Any
    # (state, teacher_variables, *training_inputs) -> (state, metrics): the inputs are a
    # sharded batch (images, labels), or the split held on the devices and the epoch's order.
    train_step: Callable
    eval_step: Callable   # (state, teacher_variables, images, labels, mask) -> hits
    teacher_eval_step: Optional[Callable]  # (teacher_variables, images, labels, mask) -> hits


def create_experiment(config, mesh, steps_per_epoch, teacher_variables, data_on_device=False) -> Experiment:
    """The modules, the initial state (replicated) and the jitted steps of `config`; with
    `data_on_device`, the train step draws its batch from the split held on the devices."""
    weights = resolve_weights(config.loss.name, {k: v for k, v in config.loss.items() if k != 'name'})
    distiller = build_distiller(config.loss.name, config.student.model, config.teacher.model or None,
                                config.data.num_classes, config.connector.kind,
                                config.connector.factor, config.data.image_size, DTYPES[config.dtype])
    optimizer = create_optimizer(config.optimizer, steps_per_epoch)
    state = jax.jit(functools.partial(create_train_state, distiller, optimizer,
                                      image_size=config.data.image_size),
                    out_shardings=mesh.replicated)(jax.random.key(config.seed))
    normalization = dict(mean=tuple(config.data.mean), std=tuple(config.data.std))
    step_settings = dict(distiller=distiller, objective_name=config.loss.name, weights=weights,
                         optimizer=optimizer, **normalization)
    if data_on_device:
        step = functools.partial(train_step_on_device, mesh=mesh, seed=config.seed,
                                 steps_per_epoch=steps_per_epoch,
                                 global_batch=config.global_batch_size, **step_settings)
    else:
        step = functools.partial(train_step, **step_settings)
    step = jax.jit(step, donate_argnums=0)
    evaluation = jax.jit(functools.partial(eval_step, distiller=distiller,
                                           objective_name=config.loss.name, **normalization))
    teacher_evaluation = None
    if distiller.teacher is not None:
        teacher_evaluation = jax.jit(functools.partial(teacher_eval_step, teacher=distiller.teacher,
                                                       **normalization))
    return Experiment(distiller, state, mesh.replicate(teacher_variables), step, evaluation,
                      teacher_evaluation)


def train_and_evaluate(config, workdir):
    """Trains the student of `config`, evaluating every epoch; returns the summary."""
    if config.distributed:
        initialize_distributed(config)
    validate_config(config, jax.device_count())
    objective = get_objective(config.loss.name)
    teacher_variables = load_teacher(config) if objective.uses_teacher else {}
    os.makedirs(workdir, exist_ok=True)
    mesh = Mesh()
    pipeline = input_data.Pipeline(config, jax.process_index(), jax.process_count())
    device_split = place_training_data(config, pipeline, mesh)
    experiment = create_experiment(config, mesh, pipeline.steps_per_epoch, teacher_variables,
                                   data_on_device=device_split is not None)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    manager = checkpoint_manager(workdir, config.checkpoints_to_keep)
    try:
        state = restore_or_start(manager, experiment.state, config, writer)
        teacher_accuracy = None
        if experiment.teacher_eval_step is not None:
            teacher_accuracy = evaluate(functools.partial(experiment.teacher_eval_step,
                                                          experiment.teacher_variables),
                                        pipeline.evaluation(), mesh)
            logging.info('Teacher %s: top-1 %.2f%%, top-5 %.2f%%.', config.teacher.model,
                         teacher_accuracy['top1'], teacher_accuracy['top5'])
            writer.write_scalars(int(state.step), {f'teacher_{k}': v for k, v in teacher_accuracy.items()})
        state, history = train_epochs(config, experiment, state, pipeline, device_split, mesh, writer,
                                      manager, workdir)
    finally:
        manager.wait_until_finished()
        writer.flush()
    summary = summarize(history.entries, teacher_accuracy, config)
    logging.info('Done: best top-1 %.2f%% (epoch %d), last top-1 %.2f%%; summary in %s.',
                 summary['best_top1'], summary['best_epoch'] + 1, summary['last_top1'],
                 os.path.join(workdir, 'summary.json'))
    if jax.process_index() == 0:
        write_json(os.path.join(workdir, 'summary.json'), summary)
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


def restore_or_start(manager, state, config, writer):
    """The latest checkpoint of the workdir if there is one, else the fresh state (logged)."""
    if manager.latest_step() is None:
        parameter_overview.log_parameter_overview(state.params)
        writer.write_hparams({key: str(value) for key, value in flatten(config.to_dict()).items()})
        return state
    state = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(state))
    logging.info('Resumed from %s at step %d.', manager.directory, int(state.step))
    return state


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


def training_inputs(pipeline, device_split, mesh, epoch, start_step):
    """The train step's inputs after (state, teacher_variables), one per step of `epoch`."""
    if device_split is None:
        return (mesh.shard(images, labels) for images, labels in pipeline.train_epoch(epoch, start_step))
    order = device_data.epoch_order(device_split, epoch, mesh, pipeline.seed)
    return itertools.repeat((*device_split, order), pipeline.steps_per_epoch - start_step)


def train_epochs(config, experiment, state, pipeline, device_split, mesh, writer, manager, workdir):
    """The epochs from the state's step on: train, evaluate, checkpoint; returns the history."""
    steps_per_epoch = pipeline.steps_per_epoch
    step = int(state.step)
    history = History(workdir, step // steps_per_epoch)
    progress = Progress(steps_per_epoch * config.num_epochs, step, config.global_batch_size, writer,
                        config.log_every_steps)
    for epoch in range(step // steps_per_epoch, config.num_epochs):
        for inputs in training_inputs(pipeline, device_split, mesh, epoch, step % steps_per_epoch):
            state, metrics = experiment.train_step(state, experiment.teacher_variables, *inputs)
            progress.record(metrics)
        progress.flush()
        step = int(state.step)
        accuracy = evaluate(functools.partial(experiment.eval_step, state, experiment.teacher_variables),
                            pipeline.evaluation(), mesh)
        accuracy.update(compare_classifiers(experiment.distiller, get_objective(config.loss.name),
                                            state, experiment.teacher_variables))
        history.append({'epoch': epoch, 'step': step, **accuracy})
        writer.write_scalars(step, {f'test_{k}': v for k, v in accuracy.items()})
        logging.info('Epoch %d/%d: test top-1 %.2f%%, top-5 %.2f%%.', epoch + 1, config.num_epochs,
                     accuracy['top1'], accuracy['top5'])
        manager.save(step, args=ocp.args.StandardSave(state), metrics=accuracy)
    return state, history


def summarize(entries, teacher_accuracy, config):
    """Best and last epoch, since best-epoch-only reporting is optimistic, and what was run."""
    best = max(entries, key=lambda entry: entry['top1'])
    objective = get_objective(config.loss.name)
    return {'dataset': config.data.dataset, 'objective': config.loss.name,
            'loss': config.loss.to_dict(),
            'connector': config.connector.kind if objective.uses_connector else None,
            'student': config.student.model, 'teacher': config.teacher.model or None,
            'seed': config.seed, 'best_top1': best['top1'], 'best_epoch': best['epoch'],
            'last_top1': entries[-1]['top1'], 'last_top5': entries[-1]['top5'],
            'epochs': len(entries), 'teacher_top1': teacher_accuracy and teacher_accuracy['top1']}


def export_student(state, config, workdir):
    """Writes the last epoch's model as workdir/export, loadable as a teacher."""
    variables = jax.device_get(merge_variables(state.params, state.batch_stats)['student'])
    export = os.path.join(workdir, 'export')
    if jax.process_index() == 0 and not os.path.exists(export):
        save_frozen_model(export, FrozenModel(config.student.model, config.data.num_classes, variables),
                          source=os.path.abspath(workdir))


def flatten(tree, prefix=''):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


class Progress:
    """Keeps step metrics on the device; every few steps, one host sync logs them with speed and ETA."""

    def __init__(self, total_steps, step, global_batch_size, writer, every):
        self.total_steps, self.step, self.batch, self.writer, self.every = (
            total_steps, step, global_batch_size, writer, every)
        self.pending = []
        self.window_start = time.time()

    def record(self, metrics):
        if not self.pending:  # a window starts at its first step, not during evaluation
            self.window_start = time.time()
        self.pending.append(metrics)
        self.step += 1
        if self.step % self.every == 0:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        values = jax.device_get(self.pending)
        first_step = self.step - len(values) + 1
        for offset, metrics in enumerate(values):
            if not np.isfinite(metrics['loss']):
                raise FloatingPointError(
                    f'The loss is {metrics["loss"]} at step {first_step + offset}: stopping. The last '
                    'good checkpoint is kept; lower the learning rate or check the data and teacher.')
        means = {name: float(np.mean([metrics[name] for metrics in values])) for name in values[0]}
        self.writer.write_scalars(self.step, means)
        now = time.time()
        rate = len(values) * self.batch / max(now - self.window_start, 1e-9)
        remaining = (self.total_steps - self.step) * self.batch / max(rate, 1e-9)
        logging.info('step %d/%d  loss %.4f  %.1f images/s  ETA %s', self.step, self.total_steps,
                     means['loss'], rate, time.strftime('%H:%M:%S', time.gmtime(remaining)))
        self.pending, self.window_start = [], now

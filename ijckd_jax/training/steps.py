"""The steps a run jits: one SGD step of every row, and the sums an evaluation batch contributes.

Every run is a table: rows (a method with its settings), each trained from the same batch and
the frozen teacher's forward pass on it, computed once; a run alone is a table of one row. The
state is {row: TrainState}, each stacked over seeds where several train together. What a step
computes is fixed by its `Spec`, one frozen, hashable value that is the jitted functions'
static argument: runs of equal specs share their compiled programs.
"""
import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ijckd_jax.bound import bound_sums
from ijckd_jax.data import device as device_data
from ijckd_jax.distillation import Distiller, evaluation_logits, forward
from ijckd_jax.models import ImageClassifier
from ijckd_jax.objectives import Examples, Objective
from ijckd_jax.training.state import TrainState, create_optimizer, merge_variables, split_variables


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the table: the modules it trains, its objective and the objective's settings."""
    name: str
    distiller: Distiller
    objective: Objective
    settings: Any  # flax.core.FrozenDict of the objective's settings


@dataclasses.dataclass(frozen=True)
class Spec:
    """What the steps of a run compute, besides their arrays."""
    rows: tuple  # Row
    teacher: Optional[ImageClassifier]  # None where no row distils
    optimizer: Any  # flax.core.FrozenDict of config.optimizer
    steps_per_epoch: int
    mean: tuple
    std: tuple
    mesh: Any  # training/mesh.Mesh: where a batch drawn on the devices is sharded
    global_batch: int
    seeds: int  # how many seeds each row's state is stacked over; 0 for one seed, unstacked
    vectorized: bool  # the seeds vmapped, or one after another (in_turn)


class SplitBatch(NamedTuple):
    """The training split held on the devices, the epoch's order and the seed (each [seeds]
    over seeds): the step draws its batch from them."""
    images: jax.Array
    labels: jax.Array
    order: jax.Array
    seed: jax.Array


def optimizer_of(spec):
    return create_optimizer(ml_collections.ConfigDict(dict(spec.optimizer)), spec.steps_per_epoch)


def normalize(images, mean, std):
    """uint8 images → (images / 255 - mean) / std in float32 (torchvision's ToTensor + Normalize)."""
    return (images.astype(jnp.float32) / 255.0 - jnp.asarray(mean)) / jnp.asarray(std)


def step_count(state):
    """The step of a run's states (every row's, equal)."""
    return next(iter(state.values())).step


def over_seeds(function, spec):
    """`function` of one seed's state (and seed-stacked arguments) over the seeds of `spec`:
    vmapped, or one seed after another (in_turn); unchanged for one seed."""
    if not spec.seeds:
        return function
    return jax.vmap(function) if spec.vectorized else in_turn(function)


def in_turn(function):
    """`function` over the leading axis of its arguments' leaves, one slice after another,
    unrolled in the program: vmap's results without batching the convolutions, which XLA's
    CPU backend runs slowly as grouped convolutions. (lax.map does the same in a loop, but
    XLA:CPU took minutes to compile a train step inside one: bench/RESULTS.md.)"""
    def mapped(*arguments):
        count = jax.tree.leaves(arguments)[0].shape[0]
        results = [function(*jax.tree.map(lambda leaf: leaf[index], arguments)) for index in range(count)]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *results)
    return mapped


def train_step(state, teacher_variables, batch, spec):
    """One SGD step of every row on the same batch: a host batch (images, labels), or a
    SplitBatch to draw it from; returns the new state and {row: this step's metrics}."""
    if not isinstance(batch, SplitBatch):
        return rows_step(state, teacher_variables, (*batch, None), spec)

    def one_seed(state, order, seed):
        step = step_count(state)
        images, labels, positions = device_data.draw_batch(
            device_data.DeviceSplit(batch.images, batch.labels), order, step, seed, spec.mesh,
            steps_per_epoch=spec.steps_per_epoch, global_batch=spec.global_batch)
        examples = Examples(positions, batch.labels, device_data.objective_key(seed, step))
        return rows_step(state, teacher_variables, (images, labels, examples), spec)
    return over_seeds(one_seed, spec)(state, batch.order, batch.seed)


def train_steps(state, teacher_variables, batch, spec, count):
    """`count` successive train_steps in one lax.scan: one dispatch instead of `count`, the
    same steps; the metrics come stacked, one row per step."""
    return jax.lax.scan(lambda state, _: train_step(state, teacher_variables, batch, spec), state, length=count)


def rows_step(state, teacher_variables, inputs, spec):
    """train_step of (images, labels, Examples or None): the frozen teacher's forward pass
    (features and logits) computed once, then each row's loss, gradient and update."""
    images, labels, examples = inputs
    images = normalize(images, spec.mean, spec.std)
    teacher_output = None
    if spec.teacher is not None:
        teacher_output = spec.teacher.apply(jax.lax.stop_gradient(teacher_variables), images, train=False)
    updated, metrics = {}, {}
    for row in spec.rows:
        updated[row.name], metrics[row.name] = update(
            state[row.name], teacher_variables, (images, labels, teacher_output, examples), row, spec)
    return updated, metrics


def update(state, teacher_variables, inputs, row, spec):
    """One row's SGD step on normalized images, given the frozen teacher's output on them."""
    images, labels, teacher_output, examples = inputs
    optimizer = optimizer_of(spec)
    # Counted from 1, as mdistiller's trainer passes it to DKD's warm-up.
    epoch = (state.step // spec.steps_per_epoch + 1).astype(jnp.float32)

    def loss_function(params):
        variables = merge_variables(params, state.batch_stats)
        outputs, updated = forward(row.distiller, variables, teacher_variables, images, train=True,
                                   teacher_output=teacher_output, epoch=epoch, examples=examples)
        loss, terms = row.objective.loss(outputs, labels, row.settings)
        return loss, (terms, split_variables(updated)[1], outputs)

    (loss, (terms, batch_stats, outputs)), gradients = jax.value_and_grad(
        loss_function, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(gradients, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    predictions = jnp.argmax(evaluation_logits(outputs, row.objective), axis=-1)
    metrics = {'loss': loss, **{f'loss_{name}': value for name, value in terms.items()},
               'train_top1': 100.0 * jnp.mean(predictions == labels)}
    return TrainState(state.step + 1, params, batch_stats, opt_state), metrics


def count_correct(logits, labels, mask):
    """100 × the top-1 and top-5 hits (percentages once divided by the count) and the count."""
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    hits = top5 == labels[:, None]
    return {'top1': 100.0 * jnp.sum(hits[:, 0] * mask),
            'top5': 100.0 * jnp.sum(jnp.any(hits, -1) * mask), 'count': jnp.sum(mask)}


def eval_step(state, teacher_variables, batch, spec):
    """{row: sums over one batch (images, labels, mask, teacher_logits)}, each [seeds] over
    seeds: hits and cross-entropy of the row's evaluation classifier, the count, and the terms
    of the paper's error bound where the teacher classifier can read the student's features.

    `teacher_logits`, the frozen teacher's on this batch, are computed once per run
    (teacher_logits_step); given them, XLA drops the teacher's backbone from this step.
    """
    images, labels, mask, teacher_logits = batch
    images = normalize(images, spec.mean, spec.std)

    def one_seed(state):
        return {row.name: row_sums(state[row.name], teacher_variables, (images, labels, mask, teacher_logits), row)
                for row in spec.rows}
    return over_seeds(one_seed, spec)(state)


def row_sums(state, teacher_variables, batch, row):
    """eval_step's sums of one row's state on normalized images."""
    images, labels, mask, teacher_logits = batch
    variables = merge_variables(state.params, state.batch_stats)
    outputs, _ = forward(row.distiller, variables, teacher_variables, images, train=False)
    if teacher_logits is not None:
        outputs = outputs._replace(teacher_logits=teacher_logits)
    logits = evaluation_logits(outputs, row.objective)
    sums = count_correct(logits, labels, mask)
    # The test loss is the cross-entropy of the logits the run is evaluated by, whatever the
    # objective trains with (as RepDistiller's validate()).
    sums['loss'] = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
                           * mask)
    if outputs.teacher_classifier_logits is not None:
        sums.update(bound_sums(logits, outputs.teacher_classifier_logits, outputs.teacher_logits,
                               labels, mask))
    return sums


def teacher_logits_step(teacher_variables, images, spec):
    """The frozen teacher's logits on one batch."""
    return spec.teacher.apply(teacher_variables, normalize(images, spec.mean, spec.std)).logits


# The jitted steps: the spec (and a scan's count) is static, so equal specs share programs.
train = jax.jit(train_step, static_argnums=3, donate_argnums=0)
train_scanned = jax.jit(train_steps, static_argnums=(3, 4), donate_argnums=0)
evaluate = jax.jit(eval_step, static_argnums=3)
teacher_logits = jax.jit(teacher_logits_step, static_argnums=2)


def dispatch(state, teacher_variables, batch, spec, count=1):
    """`count` train steps in one dispatch: the jitted step, or a scan of `count` of them."""
    if count == 1:
        return train(state, teacher_variables, batch, spec)
    return train_scanned(state, teacher_variables, batch, spec, count)

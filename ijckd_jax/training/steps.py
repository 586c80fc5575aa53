"""The steps a run jits: one SGD step, and the sums an evaluation batch contributes."""
import jax
import jax.numpy as jnp
import optax

from ijckd_jax.bound import bound_sums
from ijckd_jax.data import device as device_data
from ijckd_jax.distillation import evaluation_logits, forward
from ijckd_jax.objectives import Examples, get_objective
from ijckd_jax.training.state import TrainState, merge_variables, split_variables


def normalize(images, mean, std):
    """uint8 images → (images / 255 - mean) / std in float32 (torchvision's ToTensor + Normalize)."""
    return (images.astype(jnp.float32) / 255.0 - jnp.asarray(mean)) / jnp.asarray(std)


def train_step(state, teacher_variables, images, labels, examples=None, *, distiller, objective_name, settings,
               optimizer, mean, std, steps_per_epoch):
    """One SGD step on the objective; returns the new state and this step's metrics.
    `examples` (an Examples), where the batch comes from the split held on the devices."""
    return update(state, teacher_variables, normalize(images, mean, std), labels, None, examples,
                  distiller=distiller, objective_name=objective_name, settings=settings, optimizer=optimizer,
                  steps_per_epoch=steps_per_epoch)


def update(state, teacher_variables, images, labels, teacher_output, examples=None, *, distiller, objective_name,
           settings, optimizer, steps_per_epoch):
    """train_step on normalized images, given the frozen teacher's output on them (None: the
    forward pass computes it)."""
    objective = get_objective(objective_name)
    # Counted from 1, as mdistiller's trainer passes it to DKD's warm-up.
    epoch = (state.step // steps_per_epoch + 1).astype(jnp.float32)

    def loss_function(params):
        variables = merge_variables(params, state.batch_stats)
        outputs, updated = forward(distiller, variables, teacher_variables, images, train=True,
                                   teacher_output=teacher_output, epoch=epoch, examples=examples)
        loss, terms = objective.loss(outputs, labels, settings)
        return loss, (terms, split_variables(updated)[1], outputs)

    (loss, (terms, batch_stats, outputs)), gradients = jax.value_and_grad(
        loss_function, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(gradients, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    predictions = jnp.argmax(evaluation_logits(outputs, objective_name), axis=-1)
    metrics = {'loss': loss, **{f'loss_{name}': value for name, value in terms.items()},
               'train_top1': 100.0 * jnp.mean(predictions == labels)}
    return TrainState(state.step + 1, params, batch_stats, opt_state), metrics


def table_train_step(states, teacher_variables, images, labels, examples=None, *, members, teacher, optimizer,
                     mean, std, steps_per_epoch):
    """One SGD step of every method of a comparison table on the same batch: the frozen
    teacher's forward pass (features and logits) computed once, each method's loss, gradient
    and update on its own state. `states` and the metrics are keyed by method; `members`
    holds (method, distiller, objective name, settings as sorted items)."""
    images = normalize(images, mean, std)
    teacher_output = None
    if teacher is not None:
        teacher_output = teacher.apply(jax.lax.stop_gradient(teacher_variables), images, train=False)
    updated, metrics = {}, {}
    for method, distiller, objective_name, settings in members:
        updated[method], method_metrics = update(
            states[method], teacher_variables, images, labels, teacher_output, examples, distiller=distiller,
            objective_name=objective_name, settings=dict(settings), optimizer=optimizer,
            steps_per_epoch=steps_per_epoch)
        metrics.update({f'{method}/{name}': value for name, value in method_metrics.items()})
    return updated, metrics


def train_step_on_device(state, teacher_variables, split_images, split_labels, order, seed, *, step, mesh,
                         steps_per_epoch, global_batch):
    """`step` on the batch of the state's step, drawn from the split held on the devices in
    the epoch's `order` and augmented from `seed`."""
    images, labels, positions = device_data.draw_batch(
        device_data.DeviceSplit(split_images, split_labels), order, step_count(state), seed, mesh,
        steps_per_epoch=steps_per_epoch, global_batch=global_batch)
    examples = Examples(positions, split_labels, device_data.objective_key(seed, step_count(state)))
    return step(state, teacher_variables, images, labels, examples)


def step_count(state):
    """The step of a train state, or of a table's states (all at the same step)."""
    return state.step if isinstance(state, TrainState) else next(iter(state.values())).step


def over_seeds(step, vectorized=True):
    """A step on the split held on the devices, for a state, an order and a seed stacked over
    seeds (the teacher and the split shared): runs of several seeds in one dispatch, vmapped
    (`vectorized`) or one seed after another (in_turn)."""
    def stepped(state, teacher_variables, split_images, split_labels, order, seed):
        def one(state, order, seed):
            return step(state, teacher_variables, split_images, split_labels, order, seed)
        return (jax.vmap(one) if vectorized else in_turn(one))(state, order, seed)
    return stepped


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


def scan_steps(step, count):
    """`count` successive `step`s in one lax.scan: one dispatch instead of `count`, the same
    steps; the metrics come stacked, one row per step."""
    def stepped(state, *inputs):
        return jax.lax.scan(lambda state, _: step(state, *inputs), state, length=count)
    return stepped


def count_correct(logits, labels, mask):
    """100 × the top-1 and top-5 hits (percentages once divided by the count) and the count."""
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    hits = top5 == labels[:, None]
    return {'top1': 100.0 * jnp.sum(hits[:, 0] * mask),
            'top5': 100.0 * jnp.sum(jnp.any(hits, -1) * mask), 'count': jnp.sum(mask)}


def eval_step(state, teacher_variables, images, labels, mask, teacher_logits=None, *, distiller,
              objective_name, mean, std):
    """Sums over one batch: hits and cross-entropy of the objective's evaluation classifier, and
    the terms of the paper's error bound where the teacher classifier can read the student's
    features.

    `teacher_logits`, the frozen teacher's on this batch, are computed once per run
    (teacher_logits_step); given them, XLA drops the teacher's backbone from this step.
    """
    variables = merge_variables(state.params, state.batch_stats)
    outputs, _ = forward(distiller, variables, teacher_variables, normalize(images, mean, std),
                         train=False)
    if teacher_logits is not None:
        outputs = outputs._replace(teacher_logits=teacher_logits)
    logits = evaluation_logits(outputs, objective_name)
    sums = count_correct(logits, labels, mask)
    # The test loss is the cross-entropy of the logits the run is evaluated by, whatever the
    # objective trains with (as RepDistiller's validate()).
    sums['loss'] = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
                           * mask)
    if outputs.teacher_classifier_logits is not None:
        sums.update(bound_sums(logits, outputs.teacher_classifier_logits, outputs.teacher_logits,
                               labels, mask))
    return sums


def table_eval_step(states, teacher_variables, images, labels, mask, teacher_logits=None, *, members, mean,
                    std):
    """eval_step of every method of a table on one batch: {'METHOD/NAME': sum} and the count."""
    sums = {}
    for method, distiller, objective_name, _ in members:
        method_sums = eval_step(states[method], teacher_variables, images, labels, mask, teacher_logits,
                                distiller=distiller, objective_name=objective_name, mean=mean, std=std)
        sums['count'] = method_sums.pop('count')
        sums.update({f'{method}/{name}': value for name, value in method_sums.items()})
    return sums


def teacher_logits_step(teacher_variables, images, *, teacher, mean, std):
    """The frozen teacher's logits on one batch."""
    return teacher.apply(teacher_variables, normalize(images, mean, std)).logits

"""The train state and the optimizer."""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from ijckd_jax.distillation import init_trainable


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
    schedule = optax.piecewise_constant_schedule(optimizer_config.learning_rate,
                                                 decay_boundaries(optimizer_config, steps_per_epoch))
    return optax.chain(
        optax.add_decayed_weights(optimizer_config.weight_decay),
        optax.sgd(schedule, momentum=optimizer_config.momentum, nesterov=optimizer_config.nesterov))


def decay_boundaries(optimizer_config, steps_per_epoch):
    """{step: factor}: from each step on, the learning rate is multiplied by its factor."""
    boundaries = {}
    for epoch in optimizer_config.decay_epochs:
        step = int(epoch) * steps_per_epoch
        boundaries[step] = boundaries.get(step, 1.0) * optimizer_config.decay_factor
    return boundaries


def learning_rate(optimizer_config, steps_per_epoch, step):
    """The learning rate of the update at `step` (counted from 0), on the host: the optimizer's
    schedule without a device computation."""
    rate = optimizer_config.learning_rate
    for boundary, factor in decay_boundaries(optimizer_config, steps_per_epoch).items():
        rate *= factor if step >= boundary else 1.0
    return rate


def create_train_state(distiller, optimizer, key, image_size):
    """Fresh trainable variables and optimizer state at step 0."""
    images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    params, batch_stats = split_variables(init_trainable(distiller, key, images))
    return TrainState(jnp.zeros((), jnp.int32), params, batch_stats, optimizer.init(params))

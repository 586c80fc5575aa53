"""The progress line of a long run: step, loss, images/s and ETA, every few steps; and the
watch for divergence."""
import time

import jax
import numpy as np
from absl import logging

from ijckd_jax.errors import Diverged

# A loss this many times the run's first (or 1, if larger) is taken for divergence: an
# exploding run grows by orders of magnitude within a few steps; a healthy one falls or wobbles.
DIVERGENCE_FACTOR = 1000.0


class Progress:
    """Keeps step metrics on the device; every few steps, one host sync logs them with speed
    and ETA, and stops a diverged run before its epoch is evaluated or checkpointed. For seeds
    trained together the metrics carry a seed axis, and each seed has its writer."""

    def __init__(self, total_steps, step, global_batch_size, writers, every, seeds=(None,)):
        self.total_steps, self.step, self.batch, self.writers, self.every, self.seeds = (
            total_steps, step, global_batch_size, writers, every, seeds)
        self.pending = []
        self.window_start = time.time()
        self.first_losses = [None] * len(seeds)

    def record(self, metrics, count=1):
        """The metrics of one step, or of `count` steps stacked by one dispatch."""
        if not self.pending:  # a window starts at its first step, not during evaluation
            self.window_start = time.time()
        self.pending.append((metrics, count))
        self.step += count
        if self.step // self.every > (self.step - count) // self.every:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        # One row per step, each metric one value per seed.
        values = [{name: np.atleast_1d(value) for name, value in step_metrics.items()}
                  for metrics, count in jax.device_get(self.pending)
                  for step_metrics in (unstack(metrics, count) if count > 1 else [metrics])]
        first_step = self.step - len(values) + 1
        for offset, metrics in enumerate(values):
            for index, loss in enumerate(metrics['loss']):
                self.check_loss(float(loss), first_step + offset, index)
        means = {name: np.mean([metrics[name] for metrics in values], axis=0) for name in values[0]}
        for index, writer in enumerate(self.writers):
            writer.write_scalars(self.step, {name: float(value[index]) for name, value in means.items()})
        now = time.time()
        rate = len(values) * self.batch / max(now - self.window_start, 1e-9)
        remaining = (self.total_steps - self.step) * self.batch / max(rate, 1e-9)
        logging.info('step %d/%d  loss %s  %.1f images/s  ETA %s', self.step, self.total_steps,
                     ' '.join(f'{loss:.4f}' for loss in means['loss']), rate,
                     time.strftime('%H:%M:%S', time.gmtime(remaining)))
        self.pending, self.window_start = [], now

    def check_loss(self, loss, step, index):
        """Raises Diverged for a loss of seed `index` that is not finite or beyond
        DIVERGENCE_FACTOR × its first."""
        if self.first_losses[index] is None and np.isfinite(loss):
            self.first_losses[index] = loss
        bound = DIVERGENCE_FACTOR * max(abs(self.first_losses[index] or 0.0), 1.0)
        if not np.isfinite(loss) or loss > bound:
            why = 'not finite' if not np.isfinite(loss) else f'over {bound:.3g}, {DIVERGENCE_FACTOR:g}× the first'
            seed = '' if self.seeds[index] is None else f' of seed {self.seeds[index]}'
            raise Diverged(f'The loss{seed} is {loss:.4g} at step {step} ({why}): the run diverged and stops. '
                           'The checkpoint of the last finished epoch is kept; lower the learning rate '
                           'or check the data and the teacher.')


def unstack(metrics, count):
    """{name: [count] values} → one {name: value} per step."""
    return [{name: values[index] for name, values in metrics.items()} for index in range(count)]

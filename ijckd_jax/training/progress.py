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
    and ETA, and stops a diverged run before its epoch is evaluated or checkpointed."""

    def __init__(self, total_steps, step, global_batch_size, writer, every):
        self.total_steps, self.step, self.batch, self.writer, self.every = (
            total_steps, step, global_batch_size, writer, every)
        self.pending = []
        self.window_start = time.time()
        self.first_loss = None

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
        values = [step_metrics for metrics, count in jax.device_get(self.pending)
                  for step_metrics in (unstack(metrics, count) if count > 1 else [metrics])]
        first_step = self.step - len(values) + 1
        for offset, metrics in enumerate(values):
            self.check_loss(float(metrics['loss']), first_step + offset)
        means = {name: float(np.mean([metrics[name] for metrics in values])) for name in values[0]}
        self.writer.write_scalars(self.step, means)
        now = time.time()
        rate = len(values) * self.batch / max(now - self.window_start, 1e-9)
        remaining = (self.total_steps - self.step) * self.batch / max(rate, 1e-9)
        logging.info('step %d/%d  loss %.4f  %.1f images/s  ETA %s', self.step, self.total_steps,
                     means['loss'], rate, time.strftime('%H:%M:%S', time.gmtime(remaining)))
        self.pending, self.window_start = [], now

    def check_loss(self, loss, step):
        """Raises Diverged for a loss that is not finite or beyond DIVERGENCE_FACTOR × the first."""
        if self.first_loss is None and np.isfinite(loss):
            self.first_loss = loss
        bound = DIVERGENCE_FACTOR * max(abs(self.first_loss or 0.0), 1.0)
        if not np.isfinite(loss) or loss > bound:
            why = 'not finite' if not np.isfinite(loss) else f'over {bound:.3g}, {DIVERGENCE_FACTOR:g}× the first'
            raise Diverged(f'The loss is {loss:.4g} at step {step} ({why}): the run diverged and stops. '
                           'The checkpoint of the last finished epoch is kept; lower the learning rate '
                           'or check the data and the teacher.')


def unstack(metrics, count):
    """{name: [count] values} → one {name: value} per step."""
    return [{name: values[index] for name, values in metrics.items()} for index in range(count)]

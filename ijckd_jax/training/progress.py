"""The progress line of a long run: step, loss, images/s and ETA, every few steps."""
import time

import jax
import numpy as np
from absl import logging


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

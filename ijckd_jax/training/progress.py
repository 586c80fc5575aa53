"""The step metrics of a run: written every few steps, a progress line within long epochs
(step, loss, images/s and ETA), each epoch's means for its line; and the watch for divergence."""
import time

import jax
import numpy as np
from absl import logging

from ijckd_jax.errors import Diverged
from ijckd_jax.training.runs import label, listing, of_run, seed_order
from ijckd_jax.training.state import learning_rate

# A loss this many times the run's first (or 1, if larger) is taken for divergence: an
# exploding run grows by orders of magnitude within a few steps; a healthy one falls or wobbles.
DIVERGENCE_FACTOR = 1000.0


class Progress:
    """Keeps step metrics on the device; every config.log_every_steps steps, one host sync
    writes their means and the learning rate to the writers, logs a progress line within an
    epoch (the epoch's own line says the rest), and stops a diverged run before its epoch is
    evaluated or checkpointed, and at Ctrl-C (`stop`, a StopRequest). Each run trained together
    (seeds, a table's rows) has its writer and its part of the metrics (runs.select)."""

    def __init__(self, runs, config, steps_per_epoch, step, stop):
        self.steps_per_epoch, self.total_steps = steps_per_epoch, steps_per_epoch * config.num_epochs
        self.step, self.batch, self.runs, self.every = step, config.global_batch_size, runs, config.log_every_steps
        self.optimizer, self.stop = config.optimizer, stop
        self.pending = []
        self.window_start = time.time()
        self.first_losses = [None] * len(runs)
        self.start_epoch()
        # The first dispatch waits for XLA to compile the train step: a minute or more on a CPU
        # before anything else is printed, unless the compilation cache holds it.
        self.compiling = time.time()
        logging.info('Compiling the train step (or reading it from the compilation cache).')

    def start_epoch(self):
        self.epoch_sums, self.epoch_steps, self.epoch_seconds = [{} for _ in self.runs], 0, 0.0

    def record(self, metrics, count=1):
        """The metrics of one step, or of `count` steps stacked by one dispatch."""
        if self.compiling is not None:
            jax.block_until_ready(metrics)
            logging.info('Compiled and ran the first step in %.1f s.', time.time() - self.compiling)
            self.compiling = None
        if not self.pending:  # a window starts at its first step, not during evaluation
            self.window_start = time.time()
        self.pending.append((metrics, count))
        self.step += count
        if self.step // self.every > (self.step - count) // self.every:
            self.flush(line=self.step % self.steps_per_epoch != 0)
        self.stop.check()

    def flush(self, line=True):
        """Writes the pending steps' means; with `line`, logs them with speed and ETA."""
        if not self.pending:
            return
        steps = [step_metrics for metrics, count in jax.device_get(self.pending)
                 for step_metrics in (unstack(metrics, count) if count > 1 else [metrics])]
        # Per run, one row of floats per step.
        rows = [[of_run(step_metrics, run) for step_metrics in steps] for run in self.runs]
        first_step = self.step - len(steps) + 1
        for index, run_rows in enumerate(rows):
            for offset, metrics in enumerate(run_rows):
                self.check_loss(metrics['loss'], first_step + offset, index)
        for sums, run_rows in zip(self.epoch_sums, rows):
            for name in run_rows[0]:
                sums[name] = sums.get(name, 0.0) + sum(row[name] for row in run_rows)
        means = [{name: float(np.mean([row[name] for row in run_rows])) for name in run_rows[0]}
                 for run_rows in rows]
        for run, run_means in zip(self.runs, means):
            run.writer.write_scalars(self.step, {**run_means, 'learning_rate': learning_rate(
                self.optimizer, self.steps_per_epoch, self.step - 1)})
        now = time.time()
        self.epoch_steps += len(steps)
        self.epoch_seconds += now - self.window_start
        if line:
            rate = len(steps) * self.batch / max(now - self.window_start, 1e-9)
            remaining = (self.total_steps - self.step) * self.batch / max(rate, 1e-9)
            logging.info('step %d/%d%s  loss %s  %.1f images/s  ETA %s', self.step, self.total_steps,
                         seed_order(self.runs), listing([run_means['loss'] for run_means in means], self.runs, 4), rate,
                         time.strftime('%H:%M:%S', time.gmtime(remaining)))
        self.pending, self.window_start = [], now

    def end_epoch(self):
        """Writes the epoch's last steps; returns each run's means over the epoch's steps and the
        epoch's training images/s (evaluations not counted), and starts the next epoch."""
        self.flush(line=False)
        means = [{name: total / self.epoch_steps for name, total in sums.items()} for sums in self.epoch_sums]
        rate = self.epoch_steps * self.batch / max(self.epoch_seconds, 1e-9)
        self.start_epoch()
        return means, rate

    def check_loss(self, loss, step, index):
        """Raises Diverged for a loss of run `index` that is not finite or beyond
        DIVERGENCE_FACTOR × its first."""
        if self.first_losses[index] is None and np.isfinite(loss):
            self.first_losses[index] = loss
        bound = DIVERGENCE_FACTOR * max(abs(self.first_losses[index] or 0.0), 1.0)
        if not np.isfinite(loss) or loss > bound:
            why = 'not finite' if not np.isfinite(loss) else f'over {bound:.3g}, {DIVERGENCE_FACTOR:g}× the first'
            run = label(self.runs[index], self.runs)
            run = f' of {run}' if run else ''
            kept = ('The checkpoint of the last finished epoch is kept' if step > self.steps_per_epoch else
                    'No epoch finished, so nothing of the run is kept')
            raise Diverged(f'The loss{run} is {loss:.4g} at step {step} ({why}): the run diverged and stops. '
                           f'{kept}; lower the learning rate or check the data and the teacher.')


def unstack(metrics, count):
    """Metrics with every leaf stacked over `count` steps → one tree of metrics per step."""
    return [jax.tree.map(lambda values: values[index], metrics) for index in range(count)]

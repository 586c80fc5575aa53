"""Where metrics go: the log, and TensorBoard event files (scalars and hyperparameters).

Where TensorFlow is installed, clu's default writer writes them through tf.summary. Where it
is not (clu's metric_writers import it), `EventWriter` writes the very same summaries:
TensorFlow 2's tensor scalars and tensorboard's hparams protos, with tensorboard's own
event-file writer, which needs no TensorFlow. Tags and content are the same either way.
"""
import time

from absl import logging

from ijckd_jax.runtime import tensorflow_installed


def create_writer(workdir, just_logging=False):
    """clu's default writer where TensorFlow is installed, else an EventWriter; with
    just_logging (processes other than the first), the log alone."""
    if tensorflow_installed():
        from clu import metric_writers

        return metric_writers.create_default_writer(workdir, just_logging=just_logging)
    logging.info('TensorFlow is not installed: TensorBoard event files are written by '
                 "tensorboard's own event writer.")
    return EventWriter(None if just_logging else workdir)


class EventWriter:
    """clu's MetricWriter for scalars and hyperparameters, without TensorFlow: each write is
    logged as clu's LoggingWriter logs it and, given a directory, written to an event file."""

    def __init__(self, logdir=None):
        self.events = None
        if logdir is not None:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self.events = EventFileWriter(str(logdir))

    def write_scalars(self, step, scalars):
        values = [f'{key}={value:.6g}' if isinstance(value, float) else f'{key}={value}'
                  for key, value in sorted(scalars.items())]
        logging.info('[%d] %s', step, ', '.join(values))
        if self.events is not None:
            from tensorboard.compat.proto import summary_pb2
            from tensorboard.plugins.scalar.summary_v2 import scalar_pb

            values = [value for key, scalar in scalars.items()
                      for value in scalar_pb(key, float(scalar)).value]
            self.write(summary_pb2.Summary(value=values), step)

    def write_hparams(self, hparams):
        logging.info('[Hyperparameters] %s', hparams)
        if self.events is not None:
            from tensorboard.plugins.hparams.summary_v2 import hparams_pb

            self.write(hparams_pb(dict(hparams)), step=0)

    def write(self, summary, step):
        from tensorboard.compat.proto import event_pb2

        self.events.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self):
        if self.events is not None:
            self.events.flush()

    def close(self):
        if self.events is not None:
            self.events.close()

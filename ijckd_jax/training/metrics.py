"""Where metrics go: TensorBoard event files (scalars and hyperparameters) and, as details,
the log.

Where TensorFlow is installed, clu's writers write them through tf.summary. Where it is not
(clu's metric_writers import it), `EventWriter` writes the very same summaries: TensorFlow 2's
tensor scalars and tensorboard's hparams protos, with tensorboard's own event-file writer,
which needs no TensorFlow. Tags and content are the same either way.

The console shows one line per epoch. The details (each write of the metrics, the
hyperparameters, the parameter overview) are logged at DEBUG by the logger DETAILS, which
main.py's --verbose turns on; in Python, logging.getLogger('ijckd_jax.details').setLevel(logging.DEBUG).
"""
import logging as python_logging
import time

from absl import logging

from ijckd_jax.runtime import tensorflow_installed

DETAILS = python_logging.getLogger('ijckd_jax.details')


def show_details():
    """Logs the details from now on (--verbose)."""
    DETAILS.setLevel(python_logging.DEBUG)


def details_shown():
    return DETAILS.isEnabledFor(python_logging.DEBUG)


def create_writer(workdir, just_logging=False):
    """The run's writer: the event files in `workdir` (none with just_logging, for processes
    other than the first), and the log where the details are shown."""
    if tensorflow_installed():
        from clu import metric_writers

        writers = [metric_writers.LoggingWriter()] if details_shown() else []
        if not just_logging:
            writers.append(metric_writers.SummaryWriter(workdir))
        return metric_writers.AsyncMultiWriter(writers)
    logging.info('TensorFlow is not installed: TensorBoard event files are written by '
                 "tensorboard's own event writer.")
    return EventWriter(None if just_logging else workdir)


class EventWriter:
    """clu's MetricWriter for scalars and hyperparameters, without TensorFlow: each write is
    logged among the details as clu's LoggingWriter logs it and, given a directory, written to
    an event file."""

    def __init__(self, logdir=None):
        self.events = None
        if logdir is not None:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self.events = EventFileWriter(str(logdir))

    def write_scalars(self, step, scalars):
        values = [f'{key}={value:.6g}' if isinstance(value, float) else f'{key}={value}'
                  for key, value in sorted(scalars.items())]
        DETAILS.debug('[%d] %s', step, ', '.join(values))
        if self.events is not None:
            from tensorboard.compat.proto import summary_pb2
            from tensorboard.plugins.scalar.summary_v2 import scalar_pb

            values = [value for key, scalar in scalars.items()
                      for value in scalar_pb(key, float(scalar)).value]
            self.write(summary_pb2.Summary(value=values), step)

    def write_hparams(self, hparams):
        DETAILS.debug('[Hyperparameters] %s', hparams)
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

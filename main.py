"""Trains and evaluates one configuration: python main.py --config configs/cifar_ijckd.py --workdir runs/ijckd

The logic lives in ijckd_jax.train; this file only parses the flags.
"""
from absl import app, flags, logging
from ml_collections import config_flags

from ijckd_jax.train import train_and_evaluate

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'A config file, optionally with a variant: '
                                'configs/cifar_ijckd.py:resnet32x4-resnet8x4', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and the summary go; '
                    'a run restarted with the same workdir resumes.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    # Orbax reports every save step by step at INFO; keep the console to the run's progress.
    logging.get_absl_handler().addFilter(lambda record: 'orbax' not in record.pathname)
    train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
    app.run(main)

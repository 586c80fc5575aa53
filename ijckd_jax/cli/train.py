"""Runs what a config file describes: one training run, or the offline demo.

    python main.py --config configs/cifar_ijckd.py:resnet32x4-resnet8x4 --workdir runs/ijckd
    ijckd-train --config configs/demo.py --workdir runs/demo --verbose

This module parses the flags and dispatches on config.program; the logic lives in
ijckd_jax.training and ijckd_jax.demo.
"""
import sys

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from ijckd_jax.cli.config_file import describe_unknown_fields, load_config_file
from ijckd_jax.demo import run_demo
from ijckd_jax.errors import ConfigError, RunError
from ijckd_jax.runtime import enable_compilation_cache, quiet_platform_probes
from ijckd_jax.teachers import resolve_teacher
from ijckd_jax.training.layout import rows_of
from ijckd_jax.training.loop import train_and_evaluate
from ijckd_jax.training.metrics import show_details

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'A config file, optionally with a variant: '
                                'configs/cifar_ijckd.py:resnet32x4-resnet8x4', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and the summary go; '
                    'a run restarted with the same workdir resumes.')
# A flag, not a config field: how much the console shows changes nothing the run computes or
# records (the config is compared on resume and written to run.json and summary.json).
flags.DEFINE_bool('verbose', False, 'Also log every write of the metrics, the hyperparameters and the '
                  'parameter overview (by default: one line per epoch).')
flags.DEFINE_bool('show_config', False, 'Print the config as resolved (its variant, every --config.FIELD, and '
                  "for a table each row's loss and connector) and exit; no --workdir needed.")
flags.mark_flags_as_required(['config'])
PROGRAMS = {'train': train_and_evaluate, 'demo': run_demo}


def parse_flags(argv):
    """absl's flag parsing, each error one line before any work. The config file is loaded
    first on its own, so that a file that is missing or does not import, or a variant with an
    unknown model or setting, is named without ml_collections' traceback; then an unknown
    --config.FIELD is named with the valid fields, and a value of the wrong type with the field's."""
    argument = config_argument(argv)
    try:
        config = load_config_file(argument) if argument else None
    except ConfigError as error:
        sys.exit(f'error: {error}')
    try:
        return FLAGS(argv)
    except (AttributeError, KeyError) as error:
        overrides = [flag[len('--config.'):].split('=')[0] for flag in argv if flag.startswith('--config.')]
        message = (describe_unknown_fields(config, overrides) if config is not None else '') or str(error)
        sys.exit(f'error: {message}')
    except flags.Error as error:
        sys.exit(f'error: {error}')


def config_argument(argv):
    """What --config names (FILE[:VARIANT]); '' where it is not given."""
    for index, argument in enumerate(argv):
        if argument.startswith('--config='):
            return argument.partition('=')[2]
        if argument == '--config' and index + 1 < len(argv):
            return argv[index + 1]
    return ''


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    # Orbax reports every save step by step at INFO; keep the console to the run's progress.
    logging.get_absl_handler().addFilter(lambda record: 'orbax' not in record.pathname)
    quiet_platform_probes()
    if FLAGS.verbose:
        show_details()
    if FLAGS.show_config:
        return show_config(FLAGS.config)
    if not FLAGS.workdir:
        sys.exit('error: --workdir is required: the folder where checkpoints, metrics and the summary go '
                 '(the same one resumes a run).')
    try:
        program = FLAGS.config.get('program', 'train')
        if program not in PROGRAMS:
            raise ConfigError(f"config.program='{program}' is not a program; valid programs: "
                              f"{', '.join(PROGRAMS)}.")
        enable_compilation_cache(FLAGS.config.get('compilation_cache', ''))
        resolve_teacher(FLAGS.config)  # a published teacher's name → its converted directory
        PROGRAMS[program](FLAGS.config, FLAGS.workdir)
    except RunError as error:
        sys.exit(f'error: {error}')
    except KeyboardInterrupt:
        print('interrupted: the checkpoints of the finished epochs are kept; run the same command '
              'to resume.', file=sys.stderr)
        sys.exit(130)


def show_config(config):
    """Prints the resolved config, then each row's own loss and connector (a run alone has one row)."""
    print(config.to_json_best_effort(indent=2, sort_keys=True))
    try:
        rows = rows_of(config)
    except ConfigError as error:
        sys.exit(f'error: {error}')
    for row, row_config in rows.items():
        own = ml_collections.ConfigDict(dict(loss=row_config.loss, connector=row_config.connector))
        print(f'row {row}: {own.to_json_best_effort(sort_keys=True)}')


def run():
    """The console script's entry point. --help lists the key flags of the program that runs
    (absl keys them by sys.argv[0]): this module's flags are those of main.py and ijckd-train."""
    for name in ('config', 'workdir', 'verbose', 'show_config'):
        FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])
    app.run(main, flags_parser=parse_flags)

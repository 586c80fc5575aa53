"""Prints a Markdown table of finished runs, one row per setting, beside the paper's numbers.
(tools/report.py is the same program.)

    ijckd-report runs/ [runs_seed1/ ...] [--plot accuracy.png]

Each argument is a run directory (a workdir with summary.json and history.json) or a folder
with run directories anywhere below it. Runs that differ only in their seed share a row: the
mean ± sample std over seeds of the best and the last epoch's top-1, and the published CIFAR-100
top-1 of exactly that setting where there is one. A run not finished, and a seed that two run
directories of one setting hold, are left out, one line each. --plot also draws test top-1 per
epoch.

A comparison table's workdir (configs/cifar_table.py) alone is read as a table: per method, the
mean ± std over seeds, each seed's best top-1 and the paired difference from --baseline (kd
where the table has it): the mean ± std of the per-seed differences and on how many seeds the
method is ahead. --plot then draws each seed's best top-1 and the mean, one column per method.
"""
import argparse
import sys

from ijckd_jax.report import runs as report_runs, tables as report_tables


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('run_directories', nargs='+', metavar='RUN_DIR',
                        help='a run directory, or a folder with run directories below it')
    parser.add_argument('--plot', metavar='PATH',
                        help='also write a PNG of test top-1 per epoch of every run to PATH')
    parser.add_argument('--baseline', metavar='METHOD',
                        help="a table's method that the others are compared with seed by seed (default: kd "
                             'where the table has it)')
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        if len(arguments.run_directories) == 1 and report_runs.is_table_directory(arguments.run_directories[0]):
            return report_table(arguments)
        if arguments.baseline:
            raise report_runs.ReportError('--baseline compares the methods of a comparison table; pass one table\'s '
                                     'workdir (it holds table.json).')
        runs, left_out = report_runs.load_runs(arguments.run_directories)
        histories = [report_runs.read_history(run.directory) for run in runs] if arguments.plot else None
        for line in left_out:
            print(f'warning: {line}', file=sys.stderr)
        print(report_tables.format_table(report_tables.summarize_settings(runs)))
        if arguments.plot:
            report_tables.plot_accuracy(runs, histories, arguments.plot)
            print(f'wrote {arguments.plot}', file=sys.stderr)
    except report_runs.ReportError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


def report_table(arguments):
    """The table view of one comparison table's workdir."""
    methods, seeds, runs = report_runs.load_table(arguments.run_directories[0])
    baseline = arguments.baseline or ('kd' if 'kd' in methods else None)
    if baseline is not None and baseline not in methods:
        raise report_runs.ReportError(f"--baseline {baseline} is not a method of this table; its methods: "
                                 f"{', '.join(methods)}.")
    print(report_tables.format_table_rows(report_tables.summarize_table(methods, seeds, runs, baseline), baseline))
    if arguments.plot:
        report_tables.plot_table(methods, seeds, runs, arguments.plot)
        print(f'wrote {arguments.plot}', file=sys.stderr)
    return 0

"""Prints a Markdown table of finished runs, one row per setting, beside the paper's numbers.
(tools/report.py is the same program.)

    ijckd-report runs/ [runs_seed1/ ...] [--plot accuracy.png]

Each argument is a run directory (a workdir with summary.json and history.json) or a folder
with run directories anywhere below it. Runs that differ only in their seed share a row: the
mean ± sample std over seeds of the best and the last epoch's top-1, and the published CIFAR-100
top-1 of exactly that setting where there is one. --plot also draws test top-1 per epoch.
"""
import argparse
import sys

from ijckd_jax import report


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('run_directories', nargs='+', metavar='RUN_DIR',
                        help='a run directory, or a folder with run directories below it')
    parser.add_argument('--plot', metavar='PATH',
                        help='also write a PNG of test top-1 per epoch of every run to PATH')
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        runs = report.load_runs(arguments.run_directories)
        histories = [report.read_history(run.directory) for run in runs] if arguments.plot else None
        for warning in report.duplicate_seeds(runs):
            print(f'warning: {warning}', file=sys.stderr)
        print(report.format_table(report.summarize_settings(runs)))
        if arguments.plot:
            report.plot_accuracy(runs, histories, arguments.plot)
            print(f'wrote {arguments.plot}', file=sys.stderr)
    except report.ReportError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


"""Draws a run's accuracy, the error bound's terms and the classifier distance per epoch.
(tools/plot_run.py is the same program.)

    ijckd-plot RUN_DIR [--out RUN_DIR/theory.png]
"""
import argparse
import os
import sys

from ijckd_jax.report.runs import ReportError
from ijckd_jax.run_plot import plot_run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('run_directory', help="a training run's --workdir")
    parser.add_argument('--out', help='the PNG to write (default RUN_DIR/theory.png)')
    arguments = parser.parse_args(argv)
    out = arguments.out or os.path.join(arguments.run_directory, 'theory.png')
    try:
        panels = plot_run(arguments.run_directory, out)
    except ReportError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {out} ({", ".join(panels)})')
    return 0


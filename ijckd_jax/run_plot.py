"""One run's theory, drawn per epoch: accuracy, the error bound's terms, the classifier distance.

Reads a run's history.json (see ijckd_jax.bound for the terms).
"""
import os

from ijckd_jax.report.runs import ReportError, find_run_directories, is_table_directory, read_json_file
from ijckd_jax.training.workdir import counted_from_one

BOUND_TERMS = ('student_error', 'teacher_error', 'delta1', 'delta2')
RUNS_NAMED = 4  # run folders named in the line that refuses a folder of runs


def check_one_run(directory):
    """A folder of runs (a comparison table's workdir, or config.seeds') is refused, naming the
    run folders below it."""
    if not os.path.isdir(directory) or os.path.exists(os.path.join(directory, 'history.json')):
        return  # a run, or nothing: read_run_history says which file is missing
    try:
        runs = [run for run in find_run_directories(directory) if run != directory]
    except ReportError:
        return
    if runs:
        kind = 'is a comparison table' if is_table_directory(directory) else 'holds several runs'
        more = f', … ({len(runs)} in all)' if len(runs) > RUNS_NAMED else ''
        raise ReportError(f"{directory} {kind}; plot one of its runs: {', '.join(runs[:RUNS_NAMED])}{more}.")


def read_run_history(directory):
    """The run's per-epoch entries, epochs counted from 1; ReportError if there are none."""
    path = os.path.join(directory, 'history.json')
    history = read_json_file(path)
    if not isinstance(history, list) or not history or not all('top1' in entry for entry in history):
        raise ReportError(f'{path} is malformed: expected a list of epochs with top1.')
    return counted_from_one(history)


def plot_run(directory, path):
    """Writes a PNG: test top-1 per epoch; err_t + Δ1 + Δ2 stacked against err_s; and
    ‖W_t − W_s‖_F where the run measured them. Returns the panels drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    check_one_run(directory)
    history = read_run_history(directory)
    epochs = [entry['epoch'] for entry in history]
    has_bound = all(term in history[0] for term in BOUND_TERMS)
    has_distance = 'classifier_distance' in history[0]
    panels = ['accuracy'] + ['bound'] * has_bound + ['classifier'] * has_distance
    figure = Figure(figsize=(5 * len(panels), 4), layout='constrained')
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    column = lambda name: [entry[name] for entry in history]  # noqa: E731

    axes[0].plot(epochs, column('top1'), label='top-1')
    axes[0].plot(epochs, column('top5'), label='top-5')
    axes[0].set(title='Test accuracy', xlabel='epoch', ylabel='%')
    if has_bound:
        bound = axes[panels.index('bound')]
        bound.stackplot(epochs, column('teacher_error'), column('delta1'), column('delta2'),
                        labels=['err_t', 'Δ1: student vs teacher classifier', 'Δ2: student vs teacher features'],
                        alpha=0.6)
        bound.plot(epochs, column('student_error'), color='black', linewidth=2, label='err_s')
        bound.set(title='Theorem 1: err_s ≤ err_t + Δ1 + Δ2 (0-1, test)', xlabel='epoch', ylabel='%')
    if has_distance:
        classifier = axes[panels.index('classifier')]
        classifier.plot(epochs, column('classifier_distance'), color='C3')
        classifier.set(title='‖W_t − W_s‖_F', xlabel='epoch')
    for panel in axes:
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(alpha=0.3)
        if panel.get_legend_handles_labels()[0]:
            panel.legend(fontsize='small')
    # A seed's folder is named by its parent too: 'kd/seed_0' of a table, 'ijckd/seed_1' of seeds.
    run = os.path.abspath(directory)
    name = os.path.basename(run)
    figure.suptitle(os.path.join(os.path.basename(os.path.dirname(run)), name) if name.startswith('seed_') else name)
    try:
        figure.savefig(path, format='png', dpi=110)
    except OSError as error:
        raise ReportError(f'Cannot write {path}: {error.strerror or error}.') from error
    return panels

"""The report's tables and plots: runs of one setting over seeds, a comparison table's rows
paired against a baseline, each beside the published number of its setting."""
import math
import statistics
from typing import NamedTuple

from ijckd_jax.report.published import paper_top1
from ijckd_jax.report.runs import ReportError, Setting, describe_method, describe_pair, setting_order

DASH = '—'

# Config fields that the table's other columns already show.
LABELLED_FIELDS = ('loss.', 'connector.kind', 'student.model', 'teacher.model', 'data.dataset')


class Row(NamedTuple):
    """One row of the table: a setting and its statistics over seeds."""
    setting: Setting
    method: str  # describe_method, with the config fields that tell it from rows of the same method
    seeds: int
    best_top1: str
    last_top1: str
    paper: str


def mean_and_deviation(values):
    """'mean ± sample std' (ddof=1) with two decimals; the mean alone for a single value."""
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def distinguishing_fields(settings):
    """{setting: 'name=value, ...'} naming the config fields in which settings that the table
    would otherwise label alike differ; '' for a setting with no such twin, and 'config not
    recorded' for a twin from a summary written before runs recorded their config."""
    twins = {}
    for setting in settings:
        twins.setdefault((setting.dataset, describe_method(setting), describe_pair(setting), setting.epochs),
                         []).append(setting)
    fields = {}
    for group in twins.values():
        configs = [dict(setting.config) for setting in group if setting.config]
        names = sorted({name for config in configs for name in config
                        if not name.startswith(LABELLED_FIELDS)
                        and len({config.get(name) for config in configs}) > 1})
        for setting in group:
            config = dict(setting.config)
            unrecorded = len(group) > 1 and not config
            fields[setting] = ('config not recorded' if unrecorded else
                               ', '.join(f'{name}={config.get(name, DASH)}' for name in names))
    return fields


def method_labels(settings):
    """{setting: its method column}: describe_method, with the config fields that tell it from
    settings of the same method, pair and epochs."""
    extras = distinguishing_fields(settings)
    return {setting: describe_method(setting) + (f' [{extras[setting]}]' if extras[setting] else '')
            for setting in settings}


def summarize_settings(runs):
    """One Row per setting, in table order."""
    groups = {}
    for run in runs:
        groups.setdefault(run.setting, []).append(run)
    methods = method_labels(groups)
    rows = []
    for setting in sorted(groups, key=setting_order):
        members = groups[setting]
        paper = paper_top1(setting)
        rows.append(Row(setting, methods[setting], len(members),
                        mean_and_deviation([run.best_top1 for run in members]),
                        mean_and_deviation([run.last_top1 for run in members]),
                        DASH if paper is None else f'{paper:.2f}'))
    return rows


def format_table(rows):
    """The rows as a Markdown table, its columns padded to line up."""
    header = ('dataset', 'method', 'teacher → student', 'epochs', 'seeds', 'best top-1', 'last top-1', 'paper')
    right_aligned = (False, False, False, True, True, True, True, True)
    return markdown(header, right_aligned, [(row.setting.dataset, row.method, describe_pair(row.setting),
                                             str(row.setting.epochs), str(row.seeds), row.best_top1, row.last_top1,
                                             row.paper)
                                            for row in rows])


def markdown(header, right_aligned, lines):
    """A Markdown table of `lines` (tuples of strings) under `header`, its columns padded to line up."""
    cells = [header] + list(lines)
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]

    def format_line(line):
        return '| ' + ' | '.join(cell.rjust(width) if right else cell.ljust(width)
                                 for cell, width, right in zip(line, widths, right_aligned)) + ' |'
    rule = '|' + '|'.join('-' * (width + 1) + ':' if right else '-' * (width + 2)
                          for width, right in zip(widths, right_aligned)) + '|'
    return '\n'.join([format_line(header), rule] + [format_line(line) for line in cells[1:]])


def plot_accuracy(runs, histories, path):
    """Writes a PNG of test top-1 per epoch, one line per run, labelled as its table row and seed
    (runs of load_runs: one per setting and seed); a setting's seeds share a colour. Returns the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 6), layout='constrained')
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours, seeds_drawn, styles = {}, {}, ('-', '--', ':', '-.')
    several_datasets = len({run.setting.dataset for run in runs}) > 1
    methods = method_labels({run.setting for run in runs})
    for run, history in zip(runs, histories):
        colour = colours.setdefault(run.setting, f'C{len(colours) % 10}')
        seed_index = seeds_drawn[run.setting] = seeds_drawn.get(run.setting, -1) + 1
        label = f'{methods[run.setting]}, {describe_pair(run.setting)}, {run.setting.epochs} epochs, seed {run.seed}'
        if several_datasets:
            label = f'{run.setting.dataset}: {label}'
        axes.plot([epoch for epoch, _ in history], [top1 for _, top1 in history], color=colour,
                  linestyle=styles[seed_index % len(styles)], linewidth=1.2, label=label)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel('epoch')
    axes.set_ylabel('test top-1 (%)')
    axes.set_title('Test top-1 per epoch')
    axes.grid(alpha=0.3)
    figure.legend(loc='outside right upper', fontsize='small')
    save_figure(figure, path)
    return figure


def save_figure(figure, path):
    """Writes `figure` as a PNG to `path`; a ReportError naming it if it cannot be written."""
    try:
        figure.savefig(path, format='png', dpi=120)
    except OSError as error:
        raise ReportError(f'Cannot write {path}: {error.strerror or error}.') from error


class TableRow(NamedTuple):
    """One method of a comparison table (ijckd_jax/table.py) over its seeds."""
    method: str
    seeds: str         # 'finished of trained'
    best_top1: str
    last_top1: str
    per_seed: str      # each seed's best top-1
    difference: str    # the paired difference of best top-1 from the baseline's, mean ± std
    ahead: str         # 'k of n': seeds on which the method's best top-1 beats the baseline's
    paper: str


def signed(values):
    """mean_and_deviation with the mean's sign: '+0.32 ± 0.10'."""
    text = mean_and_deviation(values)
    return text if text.startswith('-') else f'+{text}'


def summarize_table(methods, seeds, runs, baseline):
    """One TableRow per method; the paired differences against `baseline` (None: none)."""
    rows = []
    for method in methods:
        finished = [runs[method][seed] for seed in seeds if seed in runs[method]]
        if not finished:
            rows.append(TableRow(method, f'0 of {len(seeds)}', DASH, DASH, DASH, DASH, DASH, DASH))
            continue
        paired = [runs[method][seed].best_top1 - runs[baseline][seed].best_top1
                  for seed in seeds if baseline is not None and seed in runs[method] and seed in runs[baseline]]
        compared = paired and method != baseline
        paper = paper_top1(finished[0].setting)
        rows.append(TableRow(
            method, f'{len(finished)} of {len(seeds)}',
            mean_and_deviation([run.best_top1 for run in finished]),
            mean_and_deviation([run.last_top1 for run in finished]),
            ' '.join(f'{run.best_top1:.2f}' for run in finished),
            signed(paired) if compared else DASH,
            f'{sum(difference > 0 for difference in paired)} of {len(paired)}' if compared else DASH,
            DASH if paper is None else f'{paper:.2f}'))
    return rows


def format_table_rows(rows, baseline):
    """A table's rows as a Markdown table."""
    versus = f' vs {baseline}' if baseline else ''
    header = ('method', 'seeds', 'best top-1', 'last top-1', 'best top-1 per seed',
              f'paired Δ best{versus}', f'ahead of {baseline or DASH}', 'paper')
    return markdown(header, (False, True, True, True, True, True, True, True), [tuple(row) for row in rows])


def plot_table(methods, seeds, runs, path):
    """Writes a PNG with one column per method: each seed's best top-1 as a point, joined across
    methods by a thin line (the pairing that the paired differences are about; a method that has
    not finished the seed breaks it), and the mean as a bar. Returns the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.6 * len(methods) + 2, 5), layout='constrained')
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    markers, labelled = 'osD^v<>Xp*', set()
    offsets = {seed: 0.08 * (position - (len(seeds) - 1) / 2) for position, seed in enumerate(seeds)}
    for seed in seeds:
        axes.plot([column + offsets[seed] for column in range(len(methods))],
                  [runs[method][seed].best_top1 if seed in runs[method] else math.nan for method in methods],
                  color='C0', linewidth=0.7, alpha=0.5, zorder=2, gid=f'seed {seed}')
    for column, method in enumerate(methods):
        finished = [(seed, runs[method][seed].best_top1) for seed in seeds if seed in runs[method]]
        for seed, top1 in finished:
            axes.scatter(column + offsets[seed], top1, color='C0', zorder=3,
                         marker=markers[seeds.index(seed) % len(markers)],
                         label=None if seed in labelled else f'seed {seed}')
            labelled.add(seed)
        if finished:
            axes.hlines(statistics.mean(top1 for _, top1 in finished), column - 0.3, column + 0.3, color='C3',
                        linewidth=2, label=None if 'mean' in labelled else 'mean')
            labelled.add('mean')
    axes.set_xticks(range(len(methods)), methods)
    axes.set_ylabel('best test top-1 (%)')
    axes.set_title('Comparison table: each seed and the mean')
    axes.grid(alpha=0.3, axis='y')
    figure.legend(loc='outside right upper', fontsize='small')  # clear of the points
    save_figure(figure, path)
    return figure

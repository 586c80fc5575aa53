"""The results report: finds finished runs, groups them by setting, and sets them beside the paper.

A run directory is a training run's workdir with its run.json (written when it starts),
history.json (one entry per evaluated epoch) and summary.json (written when training ends).
Runs of one setting (dataset, objective, loss settings, connector, teacher, student, epochs and
every other config field that changes the result) but different seeds make one row of the
table, with the mean ± sample standard deviation over seeds of the best and the last epoch's
top-1. A run not finished, and a seed that two run directories of one setting hold, are left
out of the means, each with a line saying so.
"""
import json
import math
import os
import statistics
from typing import NamedTuple, Optional

from ijckd_jax.objectives import OBJECTIVES, dkd
from ijckd_jax.training.runs import directory_name
from ijckd_jax.training.workdir import counted_from_one

DEFAULT_CONNECTOR = '1x1'  # configs/common.py: base_config's connector.kind
SUMMARY_FIELDS = ('dataset', 'objective', 'loss', 'connector', 'student', 'teacher', 'seed',
                  'best_top1', 'last_top1', 'epochs')
RUN_FILES = ('summary.json', 'history.json', 'run.json')  # a run's workdir holds one of them at least
DASH = '—'
# Config fields that the table's other columns already show.
LABELLED_FIELDS = ('loss.', 'connector.kind', 'student.model', 'teacher.model', 'data.dataset')


class ReportError(Exception):
    """Bad input: a missing run directory or a malformed summary.json or history.json."""


class NotFinished(Exception):
    """A run directory whose training has not ended; the message says how it shows."""


class Setting(NamedTuple):
    """What a run ran; runs that differ only in their seed share it."""
    dataset: str
    objective: str
    changes: tuple  # the loss settings that differ from the objective's defaults, ((name, value), ...)
    connector: Optional[str]  # None for objectives without one
    teacher: Optional[str]    # None for a model trained alone
    student: str
    epochs: int  # config.num_epochs
    # Every other config field that changes the math but the seed, ((name, JSON value), ...);
    # () for summaries written before runs recorded their config.
    config: tuple = ()


class Run(NamedTuple):
    """One finished run: its directory, setting, seed and accuracies (%)."""
    directory: str
    setting: Setting
    seed: int
    best_top1: float
    last_top1: float


class Row(NamedTuple):
    """One row of the table: a setting and its statistics over seeds."""
    setting: Setting
    method: str  # describe_method, with the config fields that tell it from rows of the same method
    seeds: int
    best_top1: str
    last_top1: str
    paper: str


def paper_key(objective, teacher, student, connector=None, **changes):
    """The key of PAPER_CIFAR100_TOP1 for an objective's run with `changes` to its defaults."""
    return objective, tuple(sorted(changes.items())), connector, teacher, student


R32X4, R8X4, WRN402, WRN401 = 'resnet32x4', 'resnet8x4', 'wrn_40_2', 'wrn_40_1'

# CRD's Tables 1 and 2 (github.com/HobbitLong/RepDistiller, README), the columns in this order.
REPDISTILLER_PAIRS = ('wrn_40_2-wrn_16_2', 'wrn_40_2-wrn_40_1', 'resnet56-resnet20', 'resnet110-resnet20',
                      'resnet110-resnet32', 'resnet32x4-resnet8x4', 'vgg13-vgg8', 'vgg13-MobileNetV2',
                      'ResNet50-MobileNetV2', 'ResNet50-vgg8', 'resnet32x4-ShuffleV1', 'resnet32x4-ShuffleV2',
                      'wrn_40_2-ShuffleV1')
REPDISTILLER_TOP1 = {
    'kd': (74.92, 73.54, 70.66, 70.67, 73.08, 73.33, 72.98, 67.37, 67.35, 73.81, 74.07, 74.45, 74.83),
    'fitnet': (73.58, 72.24, 69.21, 68.99, 71.06, 73.50, 71.02, 64.14, 63.16, 70.69, 73.59, 73.54, 73.73),
    'at': (74.08, 72.77, 70.55, 70.22, 72.31, 73.44, 71.43, 59.40, 58.58, 71.84, 71.73, 72.73, 73.32),
    'vid': (74.11, 73.30, 70.38, 70.16, 72.61, 73.09, 71.23, 65.56, 67.57, 70.30, 73.38, 73.40, 73.61),
    'rkd': (73.35, 72.22, 69.61, 69.25, 71.82, 71.90, 71.48, 64.52, 64.43, 71.50, 72.28, 73.21, 72.21),
    'pkt': (74.54, 73.45, 70.34, 70.25, 72.61, 73.64, 72.88, 67.13, 66.52, 73.01, 74.10, 74.69, 73.89),
    'crd': (75.48, 74.14, 71.16, 71.46, 73.48, 75.51, 73.94, 69.73, 69.11, 74.30, 75.11, 75.65, 76.05),
}
# github.com/megvii-research/mdistiller, README (CIFAR-100, DKD).
MDISTILLER_DKD_TOP1 = {
    'resnet56-resnet20': 71.97, 'resnet110-resnet32': 74.11, 'resnet32x4-resnet8x4': 76.32,
    'wrn_40_2-wrn_16_2': 76.23, 'wrn_40_2-wrn_40_1': 74.81, 'vgg13-vgg8': 74.68, 'resnet32x4-ShuffleV1': 76.45,
    'wrn_40_2-ShuffleV1': 76.70, 'vgg13-MobileNetV2': 69.71, 'ResNet50-MobileNetV2': 70.35,
}

# Published CIFAR-100 top-1 (%), each setting listed once: Li et al., "IJCKD", Neural Networks
# 2024, §4.1's text and Tables 2, 3, 4, 6 and 7; and, for the teachers, the
# vanilla students that Table 6 lacks and KD, Tian et al., "Contrastive Representation
# Distillation", ICLR 2020, Table 1 (RepDistiller's README), on the same protocol.
PAPER_CIFAR100_TOP1 = {
    # IJCKD with its defaults (alpha_ce=1, alpha_lm=1, beta_fm=0, MSE, 1x1 connector): §4.1 and
    # Table 2's 1x1 row; the same numbers are Table 3's alpha_ce=1.0, Table 4's MSE and
    # Table 7's teacher-classifier rows.
    paper_key('ijckd', R32X4, R8X4, '1x1'): 76.52,
    paper_key('ijckd', WRN402, WRN401, '1x1'): 75.14,
    # Table 2: connectors, IJCKD and SimKD.
    paper_key('ijckd', R32X4, R8X4, '1x1-1x1'): 77.10,
    paper_key('ijckd', R32X4, R8X4, '1x1-3x3-1x1'): 77.76,
    paper_key('ijckd', WRN402, WRN401, '1x1-1x1'): 75.33,
    paper_key('ijckd', WRN402, WRN401, '1x1-3x3-1x1'): 75.57,
    paper_key('simkd', R32X4, R8X4, '1x1'): 75.91,
    paper_key('simkd', R32X4, R8X4, '1x1-1x1'): 76.21,
    paper_key('simkd', R32X4, R8X4, '1x1-3x3-1x1'): 77.46,
    paper_key('simkd', WRN402, WRN401, '1x1'): 71.76,
    paper_key('simkd', WRN402, WRN401, '1x1-1x1'): 72.23,
    paper_key('simkd', WRN402, WRN401, '1x1-3x3-1x1'): 75.48,
    # Table 3: IJCKD's loss terms, resnet32x4 → resnet8x4.
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.0): 75.91,  # SR only
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.1): 76.36,
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.2): 76.61,
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_ce=0.5): 76.09,
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_lm=0.0): 74.46,  # CE only
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_lm=0.0, beta_fm=1.0): 76.47,  # CE + FM
    paper_key('ijckd', R32X4, R8X4, '1x1', beta_fm=1.0): 76.86,  # CE + SR + FM
    # Table 4: the logit-matching loss (cosine with alpha_lm=10).
    paper_key('ijckd', R32X4, R8X4, '1x1', alpha_lm=10.0, logit_loss='cosine'): 76.86,
    paper_key('ijckd', R32X4, R8X4, '1x1', logit_loss='ce'): 75.24,
    paper_key('ijckd', WRN402, WRN401, '1x1', alpha_lm=10.0, logit_loss='cosine'): 75.51,
    paper_key('ijckd', WRN402, WRN401, '1x1', logit_loss='ce'): 74.27,
    # Table 6: the student under the frozen teacher classifier, hard labels only.
    paper_key('ce_teacher_classifier', WRN402, WRN401, '1x1'): 72.32,
    paper_key('ce_teacher_classifier', 'resnet56', 'resnet20', '1x1'): 68.91,
    paper_key('ce_teacher_classifier', 'resnet110', 'resnet32', '1x1'): 70.98,
    paper_key('ce_teacher_classifier', R32X4, R8X4, '1x1'): 74.46,
    # Table 6's other column: the same students with their own classifier, hard labels only.
    **{paper_key('ce', None, model): top1 for model, top1 in (
        (WRN401, 71.98), ('resnet20', 69.06), ('resnet32', 71.14), (R8X4, 72.50))},
    # CRD's Table 1: the teachers, and vanilla students that Table 6 lacks.
    **{paper_key('ce', None, model): top1 for model, top1 in (
        ('resnet56', 72.34), ('resnet110', 74.31), (R32X4, 79.42), (WRN402, 75.61),
        ('vgg13', 74.64), ('wrn_16_2', 73.26), ('vgg8', 70.36))},
    # Table 7: the joint classifier (Algorithm 4) and the classifier distance (Algorithm 5).
    paper_key('ijckd_joint', R32X4, R8X4, '1x1'): 76.65,
    paper_key('ijckd_joint', WRN402, WRN401, '1x1'): 75.02,
    paper_key('ijckd_distance', R32X4, R8X4): 76.55,
    # KD (RepDistiller's defaults: ce_weight 0.1, kd_weight 0.9, temperature 4) and the feature
    # methods with their published weights: CRD's Tables 1 and 2 (RepDistiller's README).
    **{paper_key(method, *pair.split('-')): top1 for method, row in REPDISTILLER_TOP1.items()
       for pair, top1 in zip(REPDISTILLER_PAIRS, row) if top1 is not None},
    # DKD with mdistiller's per-pair beta (ijckd_jax/objectives/dkd.py): mdistiller's README.
    **{paper_key('dkd', *pair.split('-'), **dkd.PAIR_SETTINGS.get(pair, {})): top1
       for pair, top1 in MDISTILLER_DKD_TOP1.items()},
}


def find_run_directories(path):
    """Every directory at or below `path` that holds a run (one of RUN_FILES), sorted."""
    if not os.path.exists(path):
        raise ReportError(f'{path} does not exist.')
    if not os.path.isdir(path):
        raise ReportError(f'{path} is not a directory; pass a run directory or a folder of them.')
    found = []
    for directory, subdirectories, files in os.walk(path):
        if any(name in files for name in RUN_FILES):
            found.append(directory)
            subdirectories.clear()  # a run's own folders (checkpoints, export) hold no runs
        else:
            subdirectories.sort()
    if not found:
        raise ReportError(f'{path} holds no run, neither in it nor below it (no summary.json, history.json '
                          'or run.json).')
    return found


def read_json(path):
    """The parsed content of a JSON file; a ReportError naming the file if it cannot be read."""
    try:
        with open(path) as file:
            return json.load(file)
    except OSError as error:
        raise ReportError(f'Cannot read {path}: {error.strerror or error}.') from error
    except ValueError as error:
        raise ReportError(f'{path} is not valid JSON: {error}.') from error


def is_number(value):
    """Whether `value` is a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_summary(summary, path):
    """Raises a ReportError naming `path` unless the summary has every field the report reads."""
    def malformed(problem):
        return ReportError(f'{path} is malformed: {problem}.')
    if not isinstance(summary, dict):
        raise malformed(f'expected a JSON object, got {type(summary).__name__}')
    missing = [field for field in SUMMARY_FIELDS if field not in summary]
    if missing:
        raise malformed(f"it lacks {', '.join(missing)}")
    for field in ('dataset', 'objective', 'student'):
        if not isinstance(summary[field], str) or not summary[field]:
            raise malformed(f'{field} must be a non-empty string, got {summary[field]!r}')
    for field in ('teacher', 'connector'):
        if summary[field] is not None and not isinstance(summary[field], str):
            raise malformed(f'{field} must be a string or null, got {summary[field]!r}')
    loss = summary['loss']
    if not isinstance(loss, dict):
        raise malformed(f'loss must be an object of settings, got {loss!r}')
    if loss.get('name', summary['objective']) != summary['objective']:
        raise malformed(f"loss.name {loss['name']!r} differs from objective {summary['objective']!r}")
    for key, value in loss.items():
        if not (isinstance(value, str) or is_number(value)):
            raise malformed(f'loss.{key} must be a number or a string, got {value!r}')
    if not isinstance(summary.get('config', {}), dict):
        raise malformed(f"config must be an object of fields, got {summary['config']!r}")
    for field in ('seed', 'epochs', 'num_epochs'):
        if field in summary and (not isinstance(summary[field], int) or isinstance(summary[field], bool)):
            raise malformed(f'{field} must be an integer, got {summary[field]!r}')
    for field in ('best_top1', 'last_top1'):
        if not is_number(summary[field]):
            raise malformed(f'{field} must be a finite number, got {summary[field]!r}')


def setting_changes(objective, loss):
    """The loss settings that differ from the objective's defaults, sorted by name."""
    defaults = OBJECTIVES[objective].defaults if objective in OBJECTIVES else {}
    return tuple(sorted((key, value) for key, value in loss.items()
                        if key != 'name' and (key not in defaults or value != defaults[key])))


def read_run(directory):
    """The Run of `directory`, from its summary.json; NotFinished while its training has not ended."""
    path = os.path.join(directory, 'summary.json')
    if not os.path.isfile(path):
        raise NotFinished('no summary.json yet (it is written when training ends)')
    summary = read_json(path)
    check_summary(summary, path)
    # history.json grows every epoch, summary.json is rewritten when training ends: a longer
    # history is a run resumed for more epochs that has not ended yet.
    if os.path.isfile(os.path.join(directory, 'history.json')):
        evaluated = len(read_history(directory))
        if evaluated > summary['epochs']:
            raise NotFinished(f"resumed, its history.json has {evaluated} epochs and its summary.json "
                              f"{summary['epochs']}")
    config = tuple(sorted((key, json.dumps(value)) for key, value in summary.get('config', {}).items()
                          if key != 'seed'))
    # Summaries written before they recorded num_epochs: a finished run evaluated each of its epochs.
    epochs = summary.get('num_epochs', summary['epochs'])
    setting = Setting(summary['dataset'], summary['objective'],
                      setting_changes(summary['objective'], summary['loss']),
                      summary['connector'] or None, summary['teacher'] or None, summary['student'], epochs, config)
    return Run(directory, setting, summary['seed'], float(summary['best_top1']),
               float(summary['last_top1']))


def load_runs(paths):
    """(runs, left out): the finished runs at or below each of `paths`, each directory once, in
    table order then by seed, less those left out; and one line for each run not finished and
    each seed that more than one run directory of a setting holds (none of them is counted)."""
    directories, seen = [], set()
    for path in paths:
        for directory in find_run_directories(path):
            if os.path.realpath(directory) not in seen:
                seen.add(os.path.realpath(directory))
                directories.append(directory)
    runs, left_out = [], []
    for directory in directories:
        try:
            runs.append(read_run(directory))
        except NotFinished as unfinished:
            left_out.append(f'{directory} is not finished, left out: {unfinished}')
    runs, refused = refuse_duplicate_seeds(runs)
    left_out += refused
    if not runs:
        raise ReportError(f"No finished run to report: {'; '.join(left_out)}.")
    return sorted(runs, key=lambda run: (setting_order(run.setting), run.seed, run.directory)), left_out


def refuse_duplicate_seeds(runs):
    """(runs, refused): the runs less those of a seed that more than one run directory of a
    setting holds (which one counts is not the report's to guess), and a line for each such seed."""
    directories = {}
    for run in runs:
        directories.setdefault((run.setting, run.seed), []).append(run.directory)
    twice = {key: found for key, found in directories.items() if len(found) > 1}
    refused = [f'seed {seed} of {describe_method(setting)}, {describe_pair(setting)}, {setting.epochs} epochs, is in '
               f"{len(found)} run directories, {' and '.join(found)}; refused from the mean (move all but one away)"
               for (setting, seed), found in twice.items()]
    return [run for run in runs if (run.setting, run.seed) not in twice], refused


def format_value(value):
    """A setting's value as written in a method label: 0.2, 10, cosine."""
    return f'{value:g}' if is_number(value) else str(value)


def describe_method(setting):
    """The objective with its non-default settings, e.g. 'ijckd (alpha_ce=0.2, connector 1x1-1x1)'."""
    changes = [f'{key}={format_value(value)}' for key, value in setting.changes]
    if setting.connector not in (None, DEFAULT_CONNECTOR):
        changes.append(f'connector {setting.connector}')
    return f"{setting.objective} ({', '.join(changes)})" if changes else setting.objective


def describe_pair(setting):
    """'teacher → student', or the model alone for a run without a teacher."""
    return f'{setting.teacher} → {setting.student}' if setting.teacher else setting.student


def setting_order(setting):
    """The table's sort key: dataset, teacher, student, method, epochs, the other config fields."""
    return (setting.dataset, setting.teacher or '', setting.student, describe_method(setting), setting.epochs,
            setting.config)


def paper_top1(setting):
    """The published CIFAR-100 top-1 of exactly this setting, or None."""
    if setting.dataset != 'cifar100':
        return None
    return PAPER_CIFAR100_TOP1.get(
        (setting.objective, setting.changes, setting.connector, setting.teacher, setting.student))


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


def read_history(directory):
    """The (epoch, top-1) pairs of a run's history.json, epochs counted from 1."""
    path = os.path.join(directory, 'history.json')
    history = read_json(path)
    if not isinstance(history, list) or not history:
        raise ReportError(f'{path} is malformed: expected a non-empty list of epochs.')
    for entry in history:
        if not (isinstance(entry, dict) and is_number(entry.get('epoch')) and is_number(entry.get('top1'))):
            raise ReportError(f'{path} is malformed: every entry needs a numeric epoch and top1, '
                              f'got {entry!r}.')
    return [(entry['epoch'], entry['top1']) for entry in counted_from_one(history)]


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


def is_table_directory(path):
    """Whether `path` is a comparison table's workdir (it holds table.json)."""
    return os.path.isfile(os.path.join(path, 'table.json'))


def load_table(directory):
    """(methods, seeds, {method: {seed: Run}}) of a table's finished runs (read_run)."""
    record = read_json(os.path.join(directory, 'table.json'))
    if not (isinstance(record, dict) and isinstance(record.get('methods'), list)
            and isinstance(record.get('seeds'), list)):
        raise ReportError(f"{os.path.join(directory, 'table.json')} is malformed: it needs lists of methods "
                          'and seeds.')
    methods, seeds = record['methods'], record['seeds']
    runs = {method: {} for method in methods}
    for method in methods:
        for seed in seeds:
            try:
                runs[method][seed] = read_run(os.path.join(directory, directory_name(method), f'seed_{seed}'))
            except NotFinished:
                continue  # the seeds column counts the finished ones
    if not any(runs.values()):
        raise ReportError(f'{directory} is a comparison table with no finished run yet (summary.json is '
                          'written when training ends).')
    return methods, seeds, runs


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

"""Reading finished runs: a run directory's summary.json and history.json (a training run's
workdir), a comparison table's table.json, and what each run ran (its Setting)."""
import json
import os
from typing import NamedTuple, Optional

from ijckd_jax.config import is_number
from ijckd_jax.objectives import OBJECTIVES
from ijckd_jax.training.runs import directory_name
from ijckd_jax.training.workdir import counted_from_one, read_json

SUMMARY_FIELDS = ('dataset', 'objective', 'loss', 'connector', 'student', 'teacher', 'seed',
                  'best_top1', 'last_top1', 'epochs')

RUN_FILES = ('summary.json', 'history.json', 'run.json')  # a run's workdir holds one of them at least

DEFAULT_CONNECTOR = '1x1'  # configs/common.py: base_config's connector.kind


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


class FinishedRun(NamedTuple):
    """One finished run: its directory, setting, seed and accuracies (%)."""
    directory: str
    setting: Setting
    seed: int
    best_top1: float
    last_top1: float


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


def read_json_file(path):
    """The parsed content of a JSON file; a ReportError naming the file if it cannot be read."""
    try:
        return read_json(path)
    except OSError as error:
        raise ReportError(f'Cannot read {path}: {error.strerror or error}.') from error
    except ValueError as error:
        raise ReportError(f'{path} is not valid JSON: {error}.') from error


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
    """The FinishedRun of `directory`, from its summary.json; NotFinished while its training has not ended."""
    path = os.path.join(directory, 'summary.json')
    if not os.path.isfile(path):
        raise NotFinished('no summary.json yet (it is written when training ends)')
    summary = read_json_file(path)
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
    return FinishedRun(directory, setting, summary['seed'], float(summary['best_top1']),
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


def read_history(directory):
    """The (epoch, top-1) pairs of a run's history.json, epochs counted from 1."""
    path = os.path.join(directory, 'history.json')
    history = read_json_file(path)
    if not isinstance(history, list) or not history:
        raise ReportError(f'{path} is malformed: expected a non-empty list of epochs.')
    for entry in history:
        if not (isinstance(entry, dict) and is_number(entry.get('epoch')) and is_number(entry.get('top1'))):
            raise ReportError(f'{path} is malformed: every entry needs a numeric epoch and top1, '
                              f'got {entry!r}.')
    return [(entry['epoch'], entry['top1']) for entry in counted_from_one(history)]


def is_table_directory(path):
    """Whether `path` is a comparison table's workdir (it holds table.json)."""
    return os.path.isfile(os.path.join(path, 'table.json'))


def load_table(directory):
    """(methods, seeds, {method: {seed: FinishedRun}}) of a table's finished runs (read_run)."""
    record = read_json_file(os.path.join(directory, 'table.json'))
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

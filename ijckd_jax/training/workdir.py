"""A workdir belongs to one run. Besides its checkpoints it holds run.json (the config fields
that change what the run computes, the device count and the steps per epoch, so that a resume
with other ones is refused), .lock (the process training in it), history.json (every
evaluated epoch), summary.json (the best and the last epoch, and the best one's checkpoint)
and, for a model trained alone, export/ (the last epoch's model, loadable as a teacher)."""
import json
import os

import jax
from absl import logging

from ijckd_jax import files
from ijckd_jax.errors import WorkdirError
from ijckd_jax.frozen_model import TRAINING_DATA, FrozenModel, save_frozen_model
from ijckd_jax.objectives import get_objective
from ijckd_jax.training.state import merge_variables

RUN = 'run.json'
LOCK = '.lock'
# Fields that do not change what a run computes: how long, how it logs and keeps checkpoints,
# how it evaluates (the padding is masked), which other seeds train beside it and in which order
# (a table's seeds vmapped or in turn round differently, nothing more), where it finds things
# and how processes meet.
NOT_THE_MATH = ('program', 'seeds', 'seeds_vectorized', 'num_epochs', 'log_every_steps', 'checkpoints_to_keep',
                'eval_batch_size', 'steps_per_dispatch', 'compilation_cache', 'distributed', 'coordinator_address',
                'num_processes', 'process_id', 'data.data_dir', 'data.download')


def flatten(tree, prefix=''):
    """{'a': {'b': 1}} → {'a.b': 1}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def math_fields(config):
    """The config's fields that change what the run computes, as JSON stores them; the teacher
    by its absolute path."""
    fields = {key: value for key, value in flatten(config.to_dict()).items() if key not in NOT_THE_MATH}
    if fields.get('teacher.checkpoint'):
        fields['teacher.checkpoint'] = os.path.abspath(fields['teacher.checkpoint'])
    return json.loads(json.dumps(fields))


def checkpointed_steps(workdir):
    """The steps of the workdir's checkpoints, from their folder names."""
    directory = os.path.join(workdir, 'checkpoints')
    if not os.path.isdir(directory):
        return []
    return sorted(int(entry) for entry in os.listdir(directory) if entry.isdigit())


def read_json(path):
    with open(path) as file:
        return json.load(file)


def check_belongs(workdir, config, device_count):
    """Before any work: a workdir with checkpoints resumes only the run it holds, no further
    back than its last epoch, and no live process trains in it."""
    check_unlocked(workdir)
    steps = checkpointed_steps(workdir)
    run_path = os.path.join(workdir, RUN)
    if not steps or not os.path.exists(run_path):
        return
    run = read_json(run_path)
    current = {'config': math_fields(config), 'devices': device_count}
    stored = {'config': run['config'], 'devices': run['devices']}
    differences = field_differences(stored['config'], current['config'])
    if stored['devices'] != device_count:
        differences.append(f'devices {stored["devices"]} there, {device_count} now (the batches differ)')
    if differences:
        raise WorkdirError(f'{workdir} holds a run of another config: {"; ".join(differences)}. Pass '
                           'the same values to resume it, or a new --workdir to start afresh.')
    epochs = steps[-1] // run['steps_per_epoch']
    if epochs > config.num_epochs:
        raise WorkdirError(f'{workdir} has trained {epochs} epochs but config.num_epochs is '
                           f'{config.num_epochs}; pass --config.num_epochs={epochs} or more to resume '
                           'or report it, or a new --workdir.')


def field_differences(stored, current):
    """'FIELD A there, B now' for each field whose value differs between two {field: value}."""
    return [f'{key} {stored.get(key)!r} there, {current.get(key)!r} now'
            for key in sorted(set(stored) | set(current)) if stored.get(key) != current.get(key)]


def record_run(workdir, config, device_count, steps_per_epoch, examples=None):
    """Writes run.json for a run that starts afresh (the workdir has no checkpoint); `examples`,
    the size of the training split held on the devices (None: streamed from the host)."""
    if jax.process_index() == 0 and not checkpointed_steps(workdir):
        files.write_json(os.path.join(workdir, RUN), {
            'config': math_fields(config), 'devices': device_count, 'steps_per_epoch': steps_per_epoch,
            'examples': examples})


def check_same_examples(workdir, examples):
    """A run whose state has a row per training example (CRD's memory bank) resumes only on a
    training split of the size it started with."""
    path = os.path.join(workdir, RUN)
    if not checkpointed_steps(workdir) or not os.path.exists(path):
        return
    stored = read_json(path).get('examples')
    if stored != examples:
        raise WorkdirError(f'{workdir} holds a run whose memory bank has a row for each of its {stored} training '
                           f'examples, but the training split now has {examples}; resume it on the same data, '
                           'or pass a new --workdir to start afresh.')


def lock_holder(workdir):
    """(host, pid) written in the workdir's lock, or None without one."""
    try:
        host, pid = open(os.path.join(workdir, LOCK)).read().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def held_by_another(holder):
    """Whether `holder` (host, pid) is a process other than this one that may still run."""
    host, pid = holder
    if host != files.HOST:
        return True  # another host's process cannot be checked from here
    return pid != os.getpid() and files.process_alive(pid)


def check_unlocked(workdir):
    holder = lock_holder(workdir)
    if holder is not None and held_by_another(holder):
        raise WorkdirError(f'Another process (pid {holder[1]} on {holder[0]}) is training in {workdir}. '
                           f'Wait for it or stop it; if it is gone, remove {os.path.join(workdir, LOCK)}.')


class WorkdirLock:
    """workdir/.lock, held by the first process of a run while it trains; a lock whose process
    is gone (killed) is taken over."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, LOCK)
        self.workdir = workdir

    def __enter__(self):
        if jax.process_index() > 0:
            return self
        check_unlocked(self.workdir)
        if lock_holder(self.workdir) is not None:
            logging.warning('Taking over the lock of a process that is gone: %s.', self.path)
            os.remove(self.path)
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise WorkdirError(f'Another process has just started training in {self.workdir}.') from None
        with os.fdopen(descriptor, 'w') as file:
            file.write(f'{files.HOST} {os.getpid()}\n')
        return self

    def __exit__(self, *exception):
        if jax.process_index() == 0 and lock_holder(self.workdir) == (files.HOST, os.getpid()):
            os.remove(self.path)


def counted_from_one(entries):
    """History entries with their epochs counted from 1, as everything else counts them:
    history.json written before counted from 0 (its first entry is epoch 0)."""
    if entries and entries[0]['epoch'] == 0:
        return [{**entry, 'epoch': entry['epoch'] + 1} for entry in entries]
    return entries


def ranking(entry):
    """The order that picks a run's best epoch, from a history entry or a checkpoint's metrics:
    the highest test top-1, and of equals the earliest (as RepDistiller keeps a new best only
    when it is higher). Checkpoints saved before recorded no epoch: they are the earlier ones."""
    return entry['top1'], -entry.get('epoch', 0)


class History:
    """Per-epoch evaluation results, kept in workdir/history.json, epochs counted from 1."""

    def __init__(self, workdir, finished_epochs):
        self.path = os.path.join(workdir, 'history.json')
        entries = counted_from_one(read_json(self.path)) if os.path.exists(self.path) else []
        self.entries = [entry for entry in entries if entry['epoch'] <= finished_epochs]

    def append(self, entry):
        self.entries.append(entry)
        if jax.process_index() == 0:
            files.write_json(self.path, self.entries)


def summarize(entries, teacher_accuracy, config):
    """Best and last epoch, since best-epoch-only reporting is optimistic, and what was run:
    the config's math fields whole and num_epochs (which a resume may raise, so run.json leaves
    it out), so that tools/report.py never pools different runs. Epochs count from 1 and
    accuracies are percentages; the best epoch is the one `ranking` puts first, and its
    checkpoint is kept (checkpoints.py) at best_checkpoint."""
    best = max(entries, key=ranking)
    objective = get_objective(config.loss.name)
    return {'dataset': config.data.dataset, 'objective': config.loss.name,
            'loss': config.loss.to_dict(),
            'connector': config.connector.kind if objective.uses_connector else None,
            'student': config.student.model, 'teacher': config.teacher.model or None,
            'seed': config.seed, 'dtype': config.dtype, 'matmul_precision': config.matmul_precision,
            'best_top1': best['top1'], 'best_top5': best['top5'], 'best_epoch': best['epoch'],
            'best_step': best['step'], 'best_checkpoint': os.path.join('checkpoints', str(best['step'])),
            'last_top1': entries[-1]['top1'], 'last_top5': entries[-1]['top5'],
            'epochs': len(entries), 'num_epochs': config.num_epochs,
            'teacher_top1': teacher_accuracy and teacher_accuracy['top1'], 'config': math_fields(config)}


def write_summary(workdir, summary):
    if jax.process_index() == 0:
        files.write_json(os.path.join(workdir, 'summary.json'), summary)


def export_student(state, config, workdir):
    """Writes the last epoch's model as workdir/export, loadable as a teacher; it replaces the
    export of a shorter run that this one continued."""
    variables = jax.device_get(merge_variables(state.params, state.batch_stats)['student'])
    if jax.process_index() == 0:
        save_frozen_model(os.path.join(workdir, 'export'),
                          FrozenModel(config.student.model, config.data.num_classes, variables),
                          source=os.path.abspath(workdir), replace=True,
                          record={'data': {name: config.data[name] for name in TRAINING_DATA}})

"""What a run leaves in its workdir besides checkpoints: history.json (every evaluated epoch),
summary.json (the best and the last epoch) and, for a model trained alone, export/ (the last
epoch's model, loadable as a teacher)."""
import json
import os

import jax

from ijckd_jax.frozen_model import FrozenModel, save_frozen_model
from ijckd_jax.objectives import get_objective
from ijckd_jax.training.state import merge_variables


def write_json(path, content):
    """Writes JSON through a temporary file, so that a reader never sees half of it."""
    with open(path + '.tmp', 'w') as file:
        json.dump(content, file, indent=2)
    os.replace(path + '.tmp', path)


class History:
    """Per-epoch evaluation results, kept in workdir/history.json."""

    def __init__(self, workdir, start_epoch):
        self.path = os.path.join(workdir, 'history.json')
        entries = []
        if os.path.exists(self.path):
            with open(self.path) as file:
                entries = json.load(file)
        self.entries = [entry for entry in entries if entry['epoch'] < start_epoch]

    def append(self, entry):
        self.entries.append(entry)
        if jax.process_index() == 0:
            write_json(self.path, self.entries)


def summarize(entries, teacher_accuracy, config):
    """Best and last epoch, since best-epoch-only reporting is optimistic, and what was run."""
    best = max(entries, key=lambda entry: entry['top1'])
    objective = get_objective(config.loss.name)
    return {'dataset': config.data.dataset, 'objective': config.loss.name,
            'loss': config.loss.to_dict(),
            'connector': config.connector.kind if objective.uses_connector else None,
            'student': config.student.model, 'teacher': config.teacher.model or None,
            'seed': config.seed, 'dtype': config.dtype, 'matmul_precision': config.matmul_precision,
            'best_top1': best['top1'], 'best_epoch': best['epoch'],
            'last_top1': entries[-1]['top1'], 'last_top5': entries[-1]['top5'],
            'epochs': len(entries), 'teacher_top1': teacher_accuracy and teacher_accuracy['top1']}


def write_summary(workdir, summary):
    if jax.process_index() == 0:
        write_json(os.path.join(workdir, 'summary.json'), summary)


def export_student(state, config, workdir):
    """Writes the last epoch's model as workdir/export, loadable as a teacher."""
    variables = jax.device_get(merge_variables(state.params, state.batch_stats)['student'])
    export = os.path.join(workdir, 'export')
    if jax.process_index() == 0 and not os.path.exists(export):
        save_frozen_model(export, FrozenModel(config.student.model, config.data.num_classes, variables),
                          source=os.path.abspath(workdir))

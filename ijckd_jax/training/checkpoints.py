"""Orbax checkpoints of a workdir: the train state after each epoch, the last few and the best
(workdir.ranking: the summary's best epoch) kept."""
import os

import orbax.checkpoint as ocp
from absl import logging

from ijckd_jax.errors import WorkdirError
from ijckd_jax.restoring import restoring
from ijckd_jax.training.workdir import ranking


def checkpoint_manager(workdir, keep):
    """Keeps the last `keep` checkpoints and the best one, that of summary.json's best epoch."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(n=keep),
        ocp.checkpoint_managers.BestN(get_metric_fn=ranking, n=1,
                                      keep_checkpoints_without_metrics=False)])
    # cleanup_tmp_directories: a save that a kill interrupted leaves a temporary folder behind.
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'checkpoints')), options=options)


def restore(manager, state, step):
    """The workdir's checkpoint of `step`, restored into the structure and shardings of
    `state`; None for step None (the workdir has no checkpoint)."""
    if step is None:
        return None
    try:
        with restoring():
            restored = manager.restore(step, args=ocp.args.StandardRestore(state))
    except (OSError, ValueError, KeyError, TypeError) as error:
        directory = os.path.join(manager.directory, str(step))
        raise WorkdirError(f'The checkpoint {directory} cannot be read ({type(error).__name__}: '
                           f'{str(error)[:200]}); remove it to resume from the one before, or train '
                           'in a new --workdir.') from None
    logging.info('Resumed from %s at step %d.', manager.directory, int(restored.step))
    return restored


def save(manager, state, entry):
    """Saves the state after an epoch, with its history entry, by which `ranking` picks the
    best checkpoint."""
    manager.save(int(state.step), args=ocp.args.StandardSave(state), metrics=entry)

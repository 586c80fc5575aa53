"""Orbax checkpoints of a workdir: the train state after each epoch, the last few and the best
by test top-1 kept."""
import os

import orbax.checkpoint as ocp
from absl import logging


def checkpoint_manager(workdir, keep):
    """Keeps the last `keep` checkpoints and the best one by top-1."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(n=keep),
        ocp.checkpoint_managers.BestN(get_metric_fn=lambda metrics: metrics['top1'], n=1,
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
    restored = manager.restore(step, args=ocp.args.StandardRestore(state))
    logging.info('Resumed from %s at step %d.', manager.directory, int(restored.step))
    return restored


def save(manager, state, accuracy):
    """Saves the state after an epoch, with the accuracy that picks the best checkpoint."""
    manager.save(int(state.step), args=ocp.args.StandardSave(state), metrics=accuracy)

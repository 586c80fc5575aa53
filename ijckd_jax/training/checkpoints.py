"""Orbax checkpoints of a workdir: the train state after each epoch, the last few and the best
(workdir.ranking: the summary's best epoch) kept."""
import functools
import os

import jax
import orbax.checkpoint as ocp
from absl import logging

from ijckd_jax.errors import WorkdirError
from ijckd_jax.restoring import restoring
from ijckd_jax.training.workdir import ranking


@functools.cache
def write_each_array_once():
    """One device writes each replicated array, as orbax does by default on GPUs only. Its
    replica-parallel saving, the default elsewhere (a CPU host, or a GPU host without
    JAX_PLATFORMS=cuda), cuts every array into a slice per device with an eager program each,
    which for a state of a few MB costs more than the parallel writes save (on four CPU
    devices, 0.18 s of a checkpoint's 0.3 s: docs/testing.md). The files hold the same arrays."""
    silence = lambda record: False  # noqa: E731 (orbax warns that the handler is replaced: it is meant to be)
    logging.get_absl_logger().addFilter(silence)
    try:
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)
    finally:
        logging.get_absl_logger().removeFilter(silence)


def checkpoint_manager(workdir, keep):
    """Keeps the last `keep` checkpoints and the best one, that of summary.json's best epoch."""
    write_each_array_once()
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

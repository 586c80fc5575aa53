"""One process of the two-process test in test_train.py, and the steps both sides run.

Run as: python multiprocess_worker.py PROCESS_ID PORT TEACHER_DIR BATCHES.npz OUTPUT.npz
"""
import os
import sys

PROCESSES, DEVICES_PER_PROCESS, STEPS = 2, 2, 3


def distributed_config(teacher_directory):
    """A small IJCKD run: resnet8 teacher, wrn_16_1 student, 8 images per step."""
    from configs import cifar_ijckd

    config = cifar_ijckd.get_config('resnet8-wrn_16_1')
    config.teacher.checkpoint = teacher_directory
    config.global_batch_size, config.eval_batch_size = 8, 8
    return config


def run_steps(config, mesh, runs, teacher_variables):
    """For each (batches, draw) of `runs`, from the experiment's initial parameters or, with a
    draw, from parameters one ulp away (rounding.one_ulp_away): {'params': the parameters after
    one train step per (images, labels) batch, 'loss': each step's loss}. One experiment (and
    one compiled step) serves them all."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from ijckd_jax.training import steps
    from ijckd_jax.training.experiment import create_experiment
    from rounding import one_ulp_away

    experiment = create_experiment(config, mesh, 100, teacher_variables)
    [row] = experiment.state  # a run alone: one row
    # Replicated arrays: this process's first copy is the whole value.
    local = lambda array: np.asarray(array.addressable_data(0))  # noqa: E731
    results = []
    for batches, draw in runs:
        state, losses = jax.tree.map(jnp.copy, experiment.state), []  # each step donates the state
        if draw is not None:
            state = {row: state[row].replace(params=one_ulp_away(state[row].params, draw))}
        for images, labels in batches:
            state, metrics = mesh.settled(steps.train(state, experiment.teacher_variables,
                                                      tuple(mesh.shard(images, labels)), experiment.spec))
            losses.append(metrics[row]['loss'])
        results.append({'params': jax.tree.map(local, state[row].params),
                        'loss': np.array([float(local(loss)) for loss in losses])})
    return results


def main(process_id, port, teacher_directory, batches, output):
    """Runs this process's part of STEPS steps, its batches read from the npz `batches`
    (images_K, labels_K for step K), and process 0 writes the result to `output`."""
    os.environ['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={DEVICES_PER_PROCESS}'
    os.environ['JAX_PLATFORMS'] = 'cpu'  # CPU devices on GPU machines too, as the test compares
    import jax
    import numpy as np
    from flax import traverse_util

    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(f'127.0.0.1:{port}', PROCESSES, int(process_id))
    from ijckd_jax.training.experiment import load_teacher
    from ijckd_jax.training.mesh import Mesh

    config = distributed_config(teacher_directory)
    part = np.load(batches)
    [result] = run_steps(config, Mesh(), [([(part[f'images_{step}'], part[f'labels_{step}'])
                                            for step in range(STEPS)], None)], load_teacher(config))
    if jax.process_index() == 0:
        np.savez(output, **traverse_util.flatten_dict(result, sep='/'))
    jax.distributed.shutdown()


if __name__ == '__main__':
    main(*sys.argv[1:])

"""Kills a comparison table's training at random moments (SIGKILL) and restarts it until it
finishes, then checks that every method × seed ends bit for bit as an uninterrupted table's.

    python bench/kill_table.py --kills 5

A small table (kd, srrl and ijckd × seeds 0, 1 of resnet8 → wrn_16_1, 6 epochs of 2 steps)
on generated CIFAR-100-shaped data (tfds.testing.mock_data), after a resnet8 teacher trained
the same way; everything in a temporary folder. Each kill comes at a random moment of a
restart's life (start-up, compiling, a step, a checkpoint being written). Not a test: it takes
minutes; tests/test_table.py checks one such kill.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIR = 'resnet8-wrn_16_1'
METHODS, SEEDS = ('kd', 'srrl', 'ijckd'), (0, 1)
SMALL = ['--config.num_epochs=6', '--config.steps_per_epoch=2', '--config.global_batch_size=8',
         '--config.eval_batch_size=8', '--config.log_every_steps=1']


def program(config, workdir, cache, *settings):
    """python main.py on mocked data, as a child process."""
    arguments = ['--config', os.path.join(REPOSITORY, 'configs', config), '--workdir', workdir, *SMALL,
                 f'--config.compilation_cache={cache}', *settings]
    script = ('import runpy, sys, tensorflow_datasets as tfds\n'
              f'sys.argv = ["main.py"] + {arguments!r}\n'
              'with tfds.testing.mock_data(num_examples=32):\n'
              f'    runpy.run_path({os.path.join(REPOSITORY, "main.py")!r}, run_name="__main__")\n')
    return [sys.executable, '-c', script]


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f'failed: {result.stderr[-2000:]}')


def killed_runs(command, kills, rng, seconds):
    """Starts `command`, kills it after a random time `kills` times, then lets it finish;
    returns the moments of the kills."""
    moments = []
    while len(moments) < kills:
        moment = rng.uniform(*seconds)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=moment)
            print(f'  finished before the kill planned at {moment:.1f} s')
            return moments
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            moments.append(moment)
            print(f'  kill {len(moments)} at {moment:.1f} s')
    run(command)
    return moments


def final_state(run_directory):
    """The state in a run's latest checkpoint, as numpy arrays."""
    import orbax.checkpoint as ocp
    manager = ocp.CheckpointManager(os.path.join(run_directory, 'checkpoints'))
    return manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kills', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0, help='of the random kill moments')
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    with tempfile.TemporaryDirectory() as root:
        cache = os.path.join(root, 'xla')
        teacher = os.path.join(root, 'teacher')
        run(program('cifar_teacher.py:resnet8', teacher, cache))
        table = ['--config.teacher.checkpoint=' + os.path.join(teacher, 'export'),
                 '--config.methods=' + ','.join(METHODS), '--config.seeds=' + ','.join(map(str, SEEDS))]
        whole, parts = os.path.join(root, 'whole'), os.path.join(root, 'parts')
        start = time.time()
        run(program(f'cifar_table.py:{PAIR}', whole, cache, *table))
        uninterrupted = time.time() - start
        print(f'uninterrupted table: {uninterrupted:.1f} s; now killing a second one at random moments')
        # The restarts compile nothing (the cache is warm), so they are shorter than the first run.
        moments = killed_runs(program(f'cifar_table.py:{PAIR}', parts, cache, *table), arguments.kills, rng,
                              (1.0, uninterrupted / 2))
        import jax
        differing = []
        for method in METHODS:
            for seed in SEEDS:
                run_directory = os.path.join(method, f'seed_{seed}')
                same_history = (json.load(open(os.path.join(whole, run_directory, 'history.json')))
                                == json.load(open(os.path.join(parts, run_directory, 'history.json'))))
                leaves = jax.tree.leaves(jax.tree.map(
                    lambda first, second: np.array_equal(np.asarray(first), np.asarray(second)),
                    final_state(os.path.join(whole, run_directory)),
                    final_state(os.path.join(parts, run_directory))))
                if not (same_history and all(leaves)):
                    differing.append(run_directory)
        print(f'{len(moments)} kills at {", ".join(f"{moment:.1f}" for moment in moments)} s; '
              f'{len(METHODS) * len(SEEDS)} runs compared (final state and history): '
              + ('every one bit-identical to the uninterrupted table.' if not differing
                 else f'DIFFERENT: {", ".join(differing)}'))
        return 1 if differing else 0


if __name__ == '__main__':
    sys.exit(main())

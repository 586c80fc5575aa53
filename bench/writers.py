"""Times the TensorBoard writers that need no TensorFlow: ours (tensorboard's EventFileWriter,
ijckd_jax.training.metrics.EventWriter) against tensorboardX's SummaryWriter.

    pip install tensorboardX==2.6.5   # only for the comparison
    python bench/writers.py

Each writer runs in a fresh process where TensorFlow is hidden, as on a machine without it:
the writer's import, then 3,000 writes of the 3 scalars a training step logs, flushed to disk.
"""
import subprocess
import sys

WRITES = 3000
MEASURE = """
import importlib.machinery, logging, sys, tempfile, time
find_installed = importlib.machinery.PathFinder.find_spec
importlib.machinery.PathFinder.find_spec = lambda name, path=None, target=None: (
    None if name.split('.')[0] == 'tensorflow' else find_installed(name, path, target))
start = time.perf_counter()
if sys.argv[1] == 'tensorboard':
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.scalar import summary_v2
    from tensorboard.summary.writer import event_file_writer
    imported = time.perf_counter() - start
    from ijckd_jax.training.metrics import EventWriter  # imports JAX: not the writer's cost
    writer = EventWriter(tempfile.mkdtemp())
    write = writer.write_scalars
else:
    from tensorboardX import SummaryWriter
    imported = time.perf_counter() - start
    writer = SummaryWriter(tempfile.mkdtemp())
    write = lambda step, scalars: [writer.add_scalar(key, value, step) for key, value in scalars.items()]
logging.disable(logging.CRITICAL)
start = time.perf_counter()
for step in range(int(sys.argv[2])):
    write(step, {'loss': 1.0, 'train_top1': 0.5, 'loss_ce': 0.3})
writer.flush()
print(imported, time.perf_counter() - start)
"""


def measure(writer):
    """(import seconds, seconds per write) of `writer` in a fresh process; None if absent."""
    result = subprocess.run([sys.executable, '-c', MEASURE, writer, str(WRITES)], capture_output=True,
                            text=True)
    if result.returncode:
        return None
    imported, written = map(float, result.stdout.split()[-2:])
    return imported, written / WRITES


def main():
    for writer in ('tensorboard', 'tensorboardX'):
        timing = measure(writer)
        if timing is None:
            print(f'{writer}: not installed')
        else:
            print(f'{writer}: import {timing[0]:.2f} s, {timing[1] * 1e3:.2f} ms per write of 3 scalars')


if __name__ == '__main__':
    main()

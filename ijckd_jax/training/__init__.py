"""Training: one jitted step over a mesh of every device, orbax checkpoints, metric writers.

    state.py        the train state, the optimizer (torch.optim.SGD under MultiStepLR)
    steps.py        the train and evaluation steps: pure functions, jitted by experiment.py
    mesh.py         the device mesh, and how host arrays become global arrays on it
    experiment.py   a config's modules, initial state and jitted steps; the frozen teacher
    checkpoints.py  orbax checkpoints of the workdir: the last few and the best
    workdir.py      history.json, summary.json and the exported model of a run
    progress.py     the progress line: loss, images/s, ETA
    loop.py         train_and_evaluate: the epochs, evaluation, checkpoints, summary
"""

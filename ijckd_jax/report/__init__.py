"""The results report: finds finished runs, groups them by setting, and sets them beside the paper.

    runs.py       reading run directories and comparison tables (what each run ran: its Setting)
    tables.py     the tables over seeds and against a baseline, and the plots
    published.py  the published numbers, keyed by the setting they were measured with


A run directory is a training run's workdir with its run.json (written when it starts),
history.json (one entry per evaluated epoch) and summary.json (written when training ends).
Runs of one setting (dataset, objective, loss settings, connector, teacher, student, epochs and
every other config field that changes the result) but different seeds make one row of the
table, with the mean ± sample standard deviation over seeds of the best and the last epoch's
top-1. A run not finished, and a seed that two run directories of one setting hold, are left
out of the means, each with a line saying so.
"""

"""The command-line programs, installed as console scripts (pyproject.toml):

    ijckd-train    train.py    main.py: one run, or the offline demo, from a config file
    ijckd-convert  convert.py  tools/convert_torch_weights.py: a PyTorch teacher → a saved Flax model
    ijckd-report   report.py   tools/report.py: finished runs → a Markdown table beside the paper
    ijckd-plot     plot.py     tools/plot_run.py: one run's accuracy and error-bound terms per epoch
"""

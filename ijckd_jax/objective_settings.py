"""Each objective's settings and their defaults, free of JAX so that tools reading finished
runs (tools/report.py) work wherever the results are copied to.

SRRL's α and β, which the paper leaves open, default to 1; KD uses RepDistiller's weights.
"""
DEFAULT_SETTINGS = {
    'ce': {},
    'ce_teacher_classifier': {},
    'kd': {'ce_weight': 0.1, 'kd_weight': 0.9, 'temperature': 4.0},
    'srrl': {'alpha': 1.0, 'beta': 1.0},
    'simkd': {},
    'ijckd': {'alpha_ce': 1.0, 'alpha_lm': 1.0, 'beta_fm': 0.0, 'logit_loss': 'mse'},  # Alg. 3
    'ijckd_joint': {'alpha': 0.2, 'beta': 1.0},     # Alg. 4
    'ijckd_distance': {'alpha': 1.0, 'beta': 1.0},  # Alg. 5
}

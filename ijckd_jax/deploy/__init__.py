"""Shipping a trained student: the model its objective predicts with (deploy.inference),
BatchNorm folded (deploy.fold), exported and checked against training (deploy.artifact),
and what it costs (deploy.cost). The names of an export directory's files are
frozen_model.py's (ARTIFACT, ONNX, DESCRIPTION), beside a saved model's."""

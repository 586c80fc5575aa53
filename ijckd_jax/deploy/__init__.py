"""Shipping a trained student: the model its objective predicts with (deploy.inference),
BatchNorm folded (deploy.fold), exported and checked against training (deploy.artifact),
and what it costs (deploy.cost)."""

# The files of an export directory; here, so that tools/predict.py reads them without
# importing the training code.
ARTIFACT = 'model.jax'
ONNX = 'model.onnx'
DESCRIPTION = 'model.json'

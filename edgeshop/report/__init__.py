"""Evaluation and reports.

evaluate, metrics and markdown are runtime-side (numpy + the Classifier, no TensorFlow);
compare exports variants from a training run and so needs the [train] extra.
"""

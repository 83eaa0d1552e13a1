"""Evaluation and reports: runtime-side (numpy + the Classifier), no TensorFlow."""

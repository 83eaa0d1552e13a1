"""Measurement only: metrics, evaluation, Markdown/HTML reports and the model-card document.

Above runtime/ and data/; nothing here trains, exports or imports TensorFlow.
"""

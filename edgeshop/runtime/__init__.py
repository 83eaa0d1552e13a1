"""The light half of edgeshop: stdlib, numpy, OpenCV and a TFLite interpreter only.

Nothing under this package may import TensorFlow; ``tests/test_runtime_without_tensorflow.py`` checks.
"""

"""What a Pi installs: the interpreter backend, the Classifier, preprocessing, benchmarks and
camera streams. Stdlib, numpy, OpenCV and a TFLite interpreter only.

Nothing under this package may import TensorFlow; ``tests/test_runtime_without_tensorflow.py`` checks.
"""

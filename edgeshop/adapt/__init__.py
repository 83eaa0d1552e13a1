"""TF-free changes to a finished model: calibrate (temperature and unknown threshold), enroll
(new products imprinted into the head), and the probe both use to read a model's features.

Above runtime/, data/ and report/; below train/. No TensorFlow.
"""

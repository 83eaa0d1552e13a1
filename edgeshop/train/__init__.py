"""The heavy half of edgeshop: the only package allowed to import TensorFlow.

Import ``edgeshop.train._keras`` first (every module here does): it pins Keras 2.
"""

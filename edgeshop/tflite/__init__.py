"""The model-file format, TF-free: the .tflite flatbuffer read and checked, the card and labels
archive inside it, the classifier layer's weights rewritten in place.

Stdlib, numpy and the flatbuffers schema only: no interpreter (that is runtime/backend.py) and
no TensorFlow. Every change edgeshop makes to a finished model file goes through here.
"""

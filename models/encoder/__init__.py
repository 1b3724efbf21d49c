"""Streaming phoneme encoder: corpus building, training and export (torch, ``train`` extra).

The shipped ``encoder.onnx`` beside this file is loaded by path by ``lipstream.realtime.encoder``,
which checks the contract in its metadata (``encoder.json`` is the same contract, for people); no
module here is imported at run time.
"""

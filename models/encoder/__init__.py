"""Streaming phoneme encoder: corpus building, training and export (torch, ``train`` extra).

The shipped ``encoder.onnx`` and ``encoder.json`` beside this file are loaded by path from
``lipstream.realtime.encoder``; nothing here is imported at run time.
"""

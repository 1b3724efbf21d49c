"""Lip motion learned from real faces: phone posteriors -> GRID-measured mouth parameters.

Training and export code only (torch); the runtime loads ``motion.onnx`` through
``lipstream.realtime.motion``.
"""

"""Lip motion learned from real faces: GRID landmarks -> mouth parameters, phone posteriors -> motion.

Training and export code only (torch); the runtime loads ``motion.onnx`` through
``lipstream.realtime.motion``.
"""

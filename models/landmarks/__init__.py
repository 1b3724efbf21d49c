"""MediaPipe's face detectors and attention face mesh in ONNX (see CARD.md).

The runtime loads the ``.onnx`` files through ``lipstream.avatar.detect``; ``convert.py`` is the
one-off conversion from the mediapipe wheel's ``.tflite`` files.
"""

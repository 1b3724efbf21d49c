"""Analytic talking-head generator: torch definition and ONNX export (not imported at run time)."""

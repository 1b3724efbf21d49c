"""Analytic talking-head generator: torch definition and ONNX export (never imported at run time)."""

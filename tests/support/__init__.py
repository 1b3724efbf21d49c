"""Helpers shared by the tests (fakes, generated inputs); never imported by bench/ or the server."""

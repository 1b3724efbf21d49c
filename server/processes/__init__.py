"""``lipstream serve --workers N``: a front process and its workers.

The ``front`` process on the public port relays signaling to ``worker`` processes, which
``workers`` starts, watches, restarts and stops.
"""

"""The terminal UI (`ssbsync tui`, issue 7): browse feeds and threads, write, watch sync.

Talks to a node only through `ssbsync.tui.backend` (the import contract in pyproject.toml).
"""

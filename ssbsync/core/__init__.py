"""Sans-IO protocol code: values and bytes in, values and bytes out.

Nothing in this package reads a clock, a file, a socket or randomness: those come in as
arguments, so every test of it is deterministic (see ARCHITECTURE.md, "One rule of direction").
"""

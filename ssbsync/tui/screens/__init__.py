"""The TUI's screens: each shows what a worker brought back from the Backend, no I/O."""

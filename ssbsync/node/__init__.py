"""The node: the store, the one ingest path, and the API every front end uses."""

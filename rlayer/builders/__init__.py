"""Where local builds run: the build root, R's local sources, the local build backend."""

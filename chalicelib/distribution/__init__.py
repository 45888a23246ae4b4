"""Distribution: where layers go (regions), who may use them (sharing), how long superseded
versions stay (retention), and how users find them (the latest resolver)."""

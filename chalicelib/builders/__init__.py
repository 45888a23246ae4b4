"""Build backends: where the buildspec phases run (CodeBuild in AWS, local processes)."""

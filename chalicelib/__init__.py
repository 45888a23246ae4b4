"""rlayer: a self-service build pipeline for R runtime layers on AWS Lambda."""

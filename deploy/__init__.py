"""Deploying rlayer to AWS: the merge template for ``chalice package`` and its checks.

Not part of the Lambda deployment package (Chalice ships only ``app.py`` and
``chalicelib/``); ``make package`` and ``make deploy`` run it from the repository.
"""

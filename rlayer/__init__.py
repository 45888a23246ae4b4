"""rlayer's developer tools: the `rlayer` command, its API client, the one-machine stack
(moto, the Runtime API emulator, the sandbox) and the local build backend.

It imports ``chalicelib`` (what runs in AWS) and is never imported by it; none of it is in
the Lambda deployment package.
"""

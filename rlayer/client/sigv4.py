"""SigV4 signing for the deployed API (IAM authorization, service ``execute-api``).

botocore does the signing and finds credentials the usual way (environment, profile,
SSO, instance role), so the CLI needs no configuration of its own.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import Session

from chalicelib.errors import ConfigurationError
from rlayer.client.transport import HttpRequest, HttpResponse, Transport

SERVICE = "execute-api"
# <api-id>.execute-api.<region>.amazonaws.com[.cn]
_REGION_IN_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def region_for(url: str, session: Session | None = None) -> str:
    host = urlsplit(url).hostname or ""
    match = _REGION_IN_HOST.search(host)
    if match:
        return match.group(1)
    # A custom domain does not name its region: take the caller's configured one.
    configured = (session or Session()).get_config_variable("region")
    return str(configured or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def signing_transport(inner: Transport, url: str, *, session: Session | None = None) -> Transport:
    """Wrap ``inner`` so every request is signed with the caller's AWS credentials."""
    session = session or Session()
    region = region_for(url, session)

    def send(request: HttpRequest) -> HttpResponse:
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                f"{url} is an AWS API (IAM authorization) and no AWS credentials were found; "
                "configure them as for the AWS CLI (AWS_PROFILE, aws configure, ...)"
            )
        aws_request = AWSRequest(
            method=request.method, url=request.url, data=request.body, headers=request.headers
        )
        SigV4Auth(credentials.get_frozen_credentials(), SERVICE, region).add_auth(aws_request)
        signed = HttpRequest(
            request.method, request.url, dict(aws_request.headers.items()), request.body
        )
        return inner(signed)

    return send

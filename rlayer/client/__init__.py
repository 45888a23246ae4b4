"""The `rlayer` CLI's side of the HTTP API: a typed client, SigV4 signing, rendering.

Errors: every failure surfaces as a class of :mod:`chalicelib.errors`. An error answer from
the API names its class (``{"error": "NotFoundError", ...}``) and is raised as that class;
an answer without one is mapped by status (400 RequestInvalidError, 403 ForbiddenError,
404 NotFoundError, 409 ConflictError, anything else UpstreamError); an API that cannot be
reached or answers garbage raises UpstreamError; missing AWS credentials for a signed
request raise ConfigurationError.
"""

from rlayer.client.api import ApiClient
from rlayer.client.transport import HttpRequest, HttpResponse, Transport

__all__ = ["ApiClient", "HttpRequest", "HttpResponse", "Transport"]

"""Routes: the catalog of proven layers (JSON or CSV), the "latest" resolver, and the
catalog page.

In AWS these need IAM like every route, unless the stage makes them public
(``PUBLIC_CATALOG``): browsers cannot sign requests, and the page reads ``GET /layers``.
Public routes are read-only and throttled by API Gateway's stage settings.
"""

from __future__ import annotations

from chalice.app import Blueprint, IAMAuthorizer, Response

from chalicelib.api import context
from chalicelib.api.catalog_csv import catalog_csv, latest_csv
from chalicelib.api.catalog_page import page
from chalicelib.api.catalog_queries import CatalogQuery, LatestQuery
from chalicelib.api.responses import http_errors, json_response
from chalicelib.catalog import Catalog, catalog
from chalicelib.distribution.latest_index import lookup
from chalicelib.settings import get_settings

catalog_routes = Blueprint(__name__)
# Decided when the app loads, from the stage's settings (Chalice fixes authorizers then).
PUBLIC = get_settings().public_catalog
auth = None if PUBLIC else IAMAuthorizer()
CSV: dict[str, str | list[str]] = {"Content-Type": "text/csv; charset=utf-8"}


@catalog_routes.route("/layers", methods=["GET"], authorizer=auth)
@http_errors
def list_layers() -> Response:
    query = CatalogQuery.model_validate(catalog_routes.current_request.query_params or {})
    settings = context.settings()
    entries = catalog(
        context.store(),
        settings.aws_region,
        r_version=query.r_version,
        architecture=query.architecture,
    )
    if query.format == "csv":
        return Response(body=catalog_csv(entries), status_code=200, headers=CSV)
    return json_response(Catalog(layers=entries))


@catalog_routes.route("/layers/latest", methods=["GET"], authorizer=auth)
@http_errors
def latest_layers() -> Response:
    query = LatestQuery.model_validate(catalog_routes.current_request.query_params or {})
    settings = context.settings()
    region = query.region or settings.aws_region
    found = lookup(
        context.store(),
        r_version=query.r_version,
        architecture=query.architecture,
        region=region,
        packages=query.package_list(),
    )
    if query.format == "csv":
        return Response(body=latest_csv(found), status_code=200, headers=CSV)
    return json_response(found)


@catalog_routes.route("/catalog", methods=["GET"], authorizer=auth)
@http_errors
def catalog_page() -> Response:
    return Response(
        body=page(),
        status_code=200,
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"},
    )

"""The environment the local stack runs the app in: moto's endpoint, test credentials (and
no real ones), the stage's names and the local build settings."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from rlayer.builders import buildroot
from rlayer.builders.sources import local_sources
from rlayer.builders.toolchain import refusals
from rlayer.local.moto_resources import STAGE

HOST = "127.0.0.1"
REGION = "us-east-1"
# Where the local stack publishes layers: moto serves every region (one backend each).
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
TABLE = "rlayer-local-builds"
BUCKET = "rlayer-local-artifacts"
# build-source.zip of this tree, as the ec2 backend's instances fetch it.
BUILD_SOURCE_KEY = "build-source/build-source.zip"
# What the local stack puts in the environment; everything else it finds there stays.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Never let a local stack reach a real account through a profile or a session token.
DROPPED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


def stack_environment(
    data: Path, moto_port: int, extra: Mapping[str, str]
) -> dict[str, str | None]:
    """What the stack puts into this process's environment (None: removed): moto's
    endpoint and test credentials, the stage's settings, the local sources."""
    env: dict[str, str | None] = {name: None for name in DROPPED}
    env.update(CREDENTIALS)
    env.update(
        {
            "AWS_ENDPOINT_URL": f"http://{HOST}:{moto_port}",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # moto's Step Functions engine calls Lambda and DynamoDB on this port.
            "MOTO_PORT": str(moto_port),
            "STAGE": STAGE,
            "TABLE_NAME": TABLE,
            "ARTIFACT_BUCKET": BUCKET,
            "REGIONS": ",".join(REGIONS),
            "BUILD_BACKEND": "local",
            # The ec2 backend too: moto's EC2, each instance's user data run by the EC2
            # bridge in the build root, the compiled-R cache on this machine's disk.
            "BUILD_BACKENDS": "ec2",
            "EC2_BUILD_SOURCE": f"s3://{BUCKET}/{BUILD_SOURCE_KEY}",
            "EC2_CACHE_URI": "none",
            "LOCAL_WORK_DIR": str(data / "builds"),
            # No X-Ray daemon and no CloudWatch here: no traces, no metric blobs on stdout.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    sources = local_sources()
    if sources is not None:
        # Where CRAN cannot be reached: R's source and a file:// repository, unless the
        # caller chose their own.
        if not (extra.get("R_SOURCE") or os.environ.get("R_SOURCE")):
            env["R_SOURCE"] = sources.r_source_template
            # What it can build offline: another R is refused at the request (400), and so
            # is one whose needs the build root cannot meet (with the reason).
            refused = refusals(sources.r_versions, buildroot.TOOLCHAIN, buildroot.ROOT_NAME)
            env["R_VERSIONS"] = ",".join(v for v in sources.r_versions if v not in refused)
            env["R_VERSIONS_REFUSED"] = json.dumps(refused)
        if not (extra.get("R_RELEASES_URL") or os.environ.get("R_RELEASES_URL")):
            # The release check offline: new releases are the versions prepared here.
            env["R_RELEASES_URL"] = sources.releases_url
        if not (extra.get("CRAN_REPO") or os.environ.get("CRAN_REPO")):
            env["CRAN_REPO"] = sources.cran_repo_template
    env.update(extra)
    return env

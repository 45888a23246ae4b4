"""One validated settings object, read from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from chalicelib.errors import ConfigurationError


class Settings(BaseSettings):
    """Every knob rlayer reads. Names are the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    stage: str = "dev"
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")
    table_name: str = "rlayer-builds"
    artifact_bucket: str = "rlayer-artifacts"
    state_machine_arn: str = ""
    # Attempts per AWS call (botocore's standard retry mode) before an error reaches us.
    aws_max_attempts: int = Field(default=5, ge=1, le=10)
    # Where users reach the API (for status links when the request does not tell).
    api_base_url: str = ""

    # Build backend: CodeBuild in AWS, local processes on one machine.
    # Any registered backend's name (chalicelib.builders.register_backend).
    build_backend: str = Field(default="codebuild", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    # Other backends a request may ask for (its `backend` field; comma-separated).
    build_backends: str = Field(default="", pattern=r"^[a-z0-9_,-]*$")
    codebuild_project_x86_64: str = "rlayer-build-x86_64"
    codebuild_project_arm64: str = "rlayer-build-arm64"
    # Where the R source comes from (CRAN URL template by default) and the package repo.
    r_source: str = ""
    # The R versions this stack can build (comma-separated); empty: any (CRAN has them all).
    # The local stack lists the ones `make local-sources` prepared.
    r_versions: str = Field(default="", pattern=r"^[0-9.,]*$")
    # R versions this stack knows but cannot build, each with the reason (JSON object in the
    # environment): the local stack's R whose needs its build root cannot meet.
    r_versions_refused: dict[str, str] = Field(default_factory=dict)
    cran_repo: str = "https://cloud.r-project.org"
    local_work_dir: str = ""

    # Canary function.
    canary_role_arn: str = ""
    canary_function_prefix: str = "rlayer-canary"
    canary_memory_mb: int = Field(default=1024, ge=128, le=10240)
    canary_timeout_s: int = Field(default=60, ge=1, le=900)
    # Directory holding canary.R; empty: runtime/canary/ of the source tree (or of the
    # deployment package, where the packaging step copies it).
    canary_code_dir: str = ""

    # Slack.
    slack_signing_secret: str = ""
    slack_bot_token: str = ""
    slack_secret_parameter: str = ""
    slack_allowed_teams: str = ""
    slack_allowed_channels: str = ""
    # Slack's Web API (chat.postMessage); a setting so tests and GovSlack can point elsewhere.
    slack_api_url: str = "https://slack.com/api/"

    # Builds one caller (an IAM principal, a Slack user) may have in flight; 0: no limit.
    # A request over it is a 429; one answered by a running build of its spec is not.
    max_builds_per_caller: int = Field(default=5, ge=0, le=1000)

    # R release feed and scheduler.
    r_releases_url: str = "https://api.r-hub.io/rversions/r-versions"
    releases_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # How often the release check runs; EventBridge fixes the rate when the app is deployed.
    releases_schedule_hours: int = Field(default=6, ge=1, le=168)
    # The first check on an empty table: "current" marks every release in the feed as seen
    # (nothing rebuilt), "none" rebuilds every R >= 4.0.0, "X.Y.Z" marks releases up to it.
    releases_baseline: str = Field(default="current", pattern=r"^(current|none|\d+\.\d+\.\d+)$")
    # The function POST /releases/check invokes asynchronously (the scheduled check's);
    # empty: the name Chalice gives it in this stage (rlayer-<stage>-check_releases).
    release_check_function: str = Field(default="", max_length=140)
    # A check requested through the API still RUNNING after this long counts as FAILED (its
    # function died), and the next request may start another.
    release_check_deadline_s: int = Field(default=900, ge=1, le=86400)

    # Distribution. The regions layers are published to (comma-separated); empty: the
    # stack's own. A build always publishes in the stack's region too: its canary runs there.
    regions: str = Field(default="", pattern=r"^[a-z0-9,-]*$")
    # Who every build's layers are shared with besides those a request names: account ids,
    # organization ids (o-...) or "public" (comma-separated), if public is allowed.
    share: str = Field(default="", max_length=2048)
    allow_public_share: bool = False
    # Days a superseded layer version stays before the expiry task deletes it.
    retention_days: int = Field(default=90, ge=1, le=3650)
    # The catalog page and its read-only routes without IAM (API Gateway throttles them).
    public_catalog: bool = False

    def publish_regions(self) -> tuple[str, ...]:
        """The stage's regions, the stack's own first."""
        listed = [r for r in self.regions.split(",") if r]
        return (self.aws_region, *(r for r in dict.fromkeys(listed) if r != self.aws_region))

    def staging_bucket(self, region: str) -> str:
        """Where Lambda reads a zip from in ``region`` (it reads S3 in its own region only)."""
        if region == self.aws_region:
            return self.artifact_bucket
        return f"{self.artifact_bucket}-{region}"

    # The ec2 backend (chalicelib/builders/ec2.py): a throwaway Amazon Linux 2023 instance.
    # The AMI is AWS's public SSM parameter per architecture.
    ec2_ami_parameter_x86_64: str = (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )
    ec2_ami_parameter_arm64: str = (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    )
    ec2_instance_type_x86_64: str = "c7i.2xlarge"
    ec2_instance_type_arm64: str = "c7g.2xlarge"
    ec2_spot: bool = False
    # The deployment's launch template (instance profile, security group, IMDSv2, no key
    # pair); RunInstances is allowed only with it. Empty: those are passed one by one.
    ec2_launch_template_id: str = ""
    ec2_instance_profile: str = ""
    ec2_security_group_id: str = ""
    ec2_subnet_id: str = ""
    ec2_volume_gb: int = Field(default=40, ge=8, le=16384)
    # The watchdog powers the instance off after this; the reaper terminates it after it.
    ec2_build_timeout_s: int = Field(default=7200, ge=10, le=12 * 3600)
    # The compiled-R cache of EC2 builds (the instance role may read and write it): empty
    # for the artifact bucket's cache/, "none" for none but the instance's own disk.
    ec2_cache_uri: str = ""
    # build-source.zip (buildspec/ and runtime/, as CodeBuild gets it): s3://bucket/key.
    ec2_build_source: str = ""

    def release_check_function_name(self) -> str:
        return self.release_check_function or f"rlayer-{self.stage}-check_releases"

    def allowed_backends(self) -> tuple[str, ...]:
        extra = (b for b in self.build_backends.split(",") if b and b != self.build_backend)
        return (self.build_backend, *extra)

    def buildable_r_versions(self) -> tuple[str, ...]:
        return tuple(v for v in self.r_versions.split(",") if v)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc


def reset_settings() -> None:
    """Forget the cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()

"""The whole pipeline on one machine: moto, the resources, the Lambda bridge, the API.

:class:`LocalStack` starts, in this process:

1. moto's server (``ThreadedMotoServer``) on 127.0.0.1, with Step Functions execution on;
2. the resources the deployment template creates in AWS: the table, the artifact bucket,
   an IAM role, the task functions and the state machine from ``state_machine.asl.json``
   (its placeholders filled for this stack);
3. the Lambda bridge, so moto's Lambda runs the task functions in-process (and the release
   check ``POST /releases/check`` invokes asynchronously, in a thread) and the canary
   (``provided.al2023``) through its layers' ``bootstrap`` in a sandbox;
4. the Chalice app on 127.0.0.1 (``chalice.local``), and its schedules on their rate.

The app reaches moto exactly as it reaches AWS: boto3 honours ``AWS_ENDPOINT_URL``, and the
settings come from the environment this class sets (and restores on :meth:`stop`). Builds
use the local build backend, with R's source and a CRAN-like repository from
``make local-sources`` when they have been prepared.

:meth:`stop` undoes everything: no server, thread, sandbox or build process is left.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from chalice.app import Chalice
from moto.server import ThreadedMotoServer

from chalicelib.aws.session import client, reset_clients
from chalicelib.aws.store import Store
from chalicelib.errors import ConfigurationError, RLayerError
from chalicelib.models import BuildStatus
from chalicelib.observability import logger
from chalicelib.pipeline import TASK_FUNCTIONS
from chalicelib.settings import Settings, get_settings, reset_settings
from rlayer.builders import local as _local_backend  # noqa: F401  registers "local"
from rlayer.builders.sources import REPO_ROOT, default_data_dir
from rlayer.local import moto_resources
from rlayer.local.ec2_bridge import Ec2Bridge
from rlayer.local.http_server import ApiServer
from rlayer.local.lambda_bridge import LambdaBridge
from rlayer.local.moto_resources import function_name
from rlayer.local.schedules import Scheduler
from rlayer.local.stack_env import HOST, REGION, stack_environment

# Loggers of the servers that would print a line per request.
QUIET_LOGGERS = ("werkzeug",)
# moto's Step Functions engine logs every Fail state and caught task error as an error.
# (A logger's filter sees only records logged on it, not those of its children: the exact
# name of the module that logs them.)
SFN_LOGGER = "moto.stepfunctions.parser.asl.component.eval_component"


class _ExpectedFailures(logging.Filter):
    """Drops moto's lines for failures the ASL handles (``FailureEventException``: a Fail
    state, a caught task error); an engine error (``States.Runtime``...) still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "FailureEventException" not in record.getMessage()


def load_app() -> Chalice:
    """The Chalice app (``app.py`` at the project's root, beside ``chalicelib``)."""
    # `rlayer` runs from the venv's bin/, where the project root is not on sys.path.
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.append(root)
    module = importlib.import_module("app")
    app: Chalice = module.app
    return app


@dataclass
class StackOptions:
    api_port: int = 8000  # 0: a free port
    moto_port: int = 0  # 0: a free port
    data_dir: Path = field(default_factory=default_data_dir)
    run_schedules: bool = True
    # Where the app's own log lines go (None: where they go already, stdout).
    log_stream: IO[str] | None = None
    # How often the state machine asks the build backend (AWS: 30 s; a local check is cheap).
    poll_interval_s: int = 2
    # Extra environment for the app.
    env: dict[str, str] = field(default_factory=dict)


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self._moto: ThreadedMotoServer | None = None
        self._api: ApiServer | None = None
        self._scheduler: Scheduler | None = None
        self._bridge: LambdaBridge | None = None
        self._ec2_bridge: Ec2Bridge | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_levels: dict[str, int] = {}
        self._saved_stream: IO[str] | None = None
        self._sfn_filter = _ExpectedFailures()
        self._lock: IO[str] | None = None
        self._data_dir = self.options.data_dir
        self._moto_config: dict[str, Any] | None = None
        self.state_machine_arn = ""
        self.role_arn = ""

    # -- public ------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        if self._api is None:
            raise ConfigurationError("the local stack is not running")
        return self._api.url

    @property
    def moto_url(self) -> str:
        if self._moto is None:
            raise ConfigurationError("the local stack is not running")
        host, port = self._moto.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def settings(self) -> Settings:
        return get_settings()

    def store(self) -> Store:
        return Store(get_settings().table_name)

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call more than once."""
        steps = (
            self._stop_scheduler,
            self._stop_api,
            self._stop_work,
            self._uninstall_bridge,
            self._stop_moto,
            self._restore_process,
        )
        for step in steps:
            try:
                step()
            except Exception:
                logger.exception("stopping the local stack", extra={"step": step.__name__})

    # -- start -------------------------------------------------------------------------
    def _start(self) -> None:
        data = self.options.data_dir.expanduser().resolve()
        self._claim(data)
        self._quiet_servers()
        self._moto = ThreadedMotoServer(ip_address=HOST, port=self.options.moto_port, verbose=False)
        self._moto.start()
        _, moto_port = self._moto.get_host_and_port()
        self._set_env(self._environment(data, moto_port))
        self._configure_moto()
        self._create_resources()
        app = load_app()
        # After load_app: it puts the project's root (deploy/ too) on sys.path.
        moto_resources.put_build_source(get_settings(), data / "build-source.zip")
        self._install_bridge(app)

        try:
            self._api = ApiServer(app, host=HOST, port=self.options.api_port)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve the API on {HOST}:{self.options.api_port}: {exc.strerror}"
                " (another `rlayer serve`? choose another --port)"
            ) from exc
        self._api.start()
        if self.options.run_schedules:
            self._scheduler = Scheduler(app, region=REGION)
            self._scheduler.start()
        logger.info(
            "local stack running",
            extra={"api": self.api_url, "moto": self.moto_url, "data_dir": str(data)},
        )

    def _claim(self, data: Path) -> None:
        """Hold DIR for this stack; start with no builds in it.

        moto keeps its state in memory, so the builds a previous stack left in DIR belong to
        records that are gone: their trees (R images, zips) would only fill the disk.
        """
        data.mkdir(parents=True, exist_ok=True)
        lock = (data / ".lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise ConfigurationError(
                f"another local stack is using {data}; stop it or choose another data directory"
            ) from exc
        self._lock = lock
        self._data_dir = data
        for part in ("builds", "lambda", "instances"):
            shutil.rmtree(data / part, ignore_errors=True)
            (data / part).mkdir()

    def _environment(self, data: Path, moto_port: int) -> dict[str, str | None]:
        return stack_environment(data, moto_port, self.options.env)

    def _set_env(self, env: dict[str, str | None]) -> None:
        for name, value in env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_settings()
        reset_clients()

    def _quiet_servers(self) -> None:
        for name in QUIET_LOGGERS:
            log = logging.getLogger(name)
            self._saved_levels[name] = log.level
            log.setLevel(logging.WARNING)
        logging.getLogger(SFN_LOGGER).addFilter(self._sfn_filter)
        if self.options.log_stream is not None:
            handler = logger.registered_handler
            if isinstance(handler, logging.StreamHandler):
                self._saved_stream = handler.setStream(self.options.log_stream)

    def _install_bridge(self, app: Chalice) -> None:
        # The task functions run as Lambda runs them: Chalice's handler (with its
        # middleware), called with (event, context).
        names = (*TASK_FUNCTIONS.values(), *moto_resources.INVOKED_FUNCTIONS)
        handlers = {function_name(n): app.handler_map[n] for n in names}
        # Layers and code unzipped for the canary's sandboxes live under the data directory.
        self._bridge = LambdaBridge(handlers, work_dir=self._data_dir / "lambda").install()
        # The ec2 backend's instances boot here, their disks under the data directory.
        self._ec2_bridge = Ec2Bridge(work_dir=self._data_dir / "instances").install()

    def _configure_moto(self) -> None:
        self._moto_config = moto_resources.configure(self.moto_url)

    def _create_resources(self) -> None:
        self.role_arn = moto_resources.create_role()
        self._set_env({"CANARY_ROLE_ARN": self.role_arn})
        self.state_machine_arn = moto_resources.create_pipeline(
            get_settings(), self.role_arn, poll_interval_s=self.options.poll_interval_s
        )
        self._set_env({"STATE_MACHINE_ARN": self.state_machine_arn})

    # -- stop --------------------------------------------------------------------------
    def _stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None

    def _stop_api(self) -> None:
        if self._api is not None:
            self._api.stop()
            self._api = None

    def _stop_work(self) -> None:
        """Stop executions still running and the build processes behind them."""
        if self._moto is None or not self.state_machine_arn:
            return
        sfn = client("stepfunctions")
        running = sfn.list_executions(
            stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
        )["executions"]
        for execution in running:
            sfn.stop_execution(executionArn=execution["executionArn"], cause="local stack stopped")
        from chalicelib.builders import get_backend

        settings = get_settings()
        for record in self.store().iter_builds(BuildStatus.BUILDING):
            if record.build_ref:
                name = record.backend or settings.build_backend
                try:
                    get_backend(settings.model_copy(update={"build_backend": name})).stop_build(
                        record.build_ref
                    )
                except RLayerError:
                    logger.exception("could not stop a build", extra={"build_id": record.build_id})

    def _uninstall_bridge(self) -> None:
        # Ends the EC2 instances' machines still running, terminating their instances.
        if self._ec2_bridge is not None:
            self._ec2_bridge.uninstall()
            self._ec2_bridge = None
        # Closes the canary's runtime sessions (their sandboxed processes) too.
        if self._bridge is not None:
            self._bridge.uninstall()
            self._bridge = None
            shutil.rmtree(self._data_dir / "lambda", ignore_errors=True)

    def _stop_moto(self) -> None:
        if self._moto is None:
            return
        try:
            # Forget this stack's resources and put moto's switches back: moto's state is
            # per process, and whoever runs next in it (a test) expects a fresh one.
            moto_resources.reset(self.moto_url, self._moto_config)
        finally:
            self._moto.stop()
            self._moto = None

    def _restore_process(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_levels.clear()
        logging.getLogger(SFN_LOGGER).removeFilter(self._sfn_filter)
        if self._saved_stream is not None:
            handler = logger.registered_handler
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(self._saved_stream)
            self._saved_stream = None
        reset_settings()
        reset_clients()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

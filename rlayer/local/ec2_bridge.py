"""Make moto's EC2 instances run their user data: the ONE module that touches moto's EC2.

moto records a RunInstances call and answers it, but no machine boots. The bridge patches
``InstanceBackend.run_instances``: for every instance moto made it reads back the user data
moto stored for that very instance (not the request's) and boots it as an
:class:`rlayer.builders.ec2_instance.InstanceRun` on this machine, supervised by a thread:

- the machine powers off (the script's ``poweroff``): moto's instance ends as EC2 ends it,
  terminated with ``Client.InstanceInitiatedShutdown`` (stopped if its shutdown behaviour
  is ``stop``);
- moto's instance is terminated from outside (StopBuild, the reaper, a test): the machine
  is ended at once, as EC2 would;
- ``GetConsoleOutput`` for a bridged instance answers the machine's console (its script's
  output) instead of moto's canned text.

It works with moto in-process (``mock_aws``) and with ``ThreadedMotoServer``.
:meth:`Ec2Bridge.uninstall` ends every machine still running and terminates its instance.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from moto.core.responses import ActionResult
from moto.core.types import Base64EncodedString
from moto.core.utils import utcnow
from moto.ec2.models.instances import Instance, InstanceBackend, StateReason
from moto.ec2.responses.general import General

from chalicelib.errors import ConfigurationError
from chalicelib.observability import logger
from rlayer.builders.ec2_instance import InstanceRun

SHUTDOWN = StateReason(
    "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
    "Client.InstanceInitiatedShutdown",
)


class Ec2Bridge:
    _active: Ec2Bridge | None = None
    _guard = threading.Lock()

    def __init__(self, work_dir: Path | None = None) -> None:
        self._own_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="rlayer-ec2-"))
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[Instance, InstanceRun, threading.Thread]] = {}
        self._saved: dict[str, Any] = {}

    # -- installation -------------------------------------------------------------------
    def install(self) -> Ec2Bridge:
        with Ec2Bridge._guard:
            if Ec2Bridge._active is not None:
                raise ConfigurationError("an EC2 bridge is already installed")
            bridge = self
            original_run = InstanceBackend.__dict__["run_instances"]
            original_console = General.__dict__["get_console_output"]

            def run_instances(backend: InstanceBackend, *args: Any, **kwargs: Any) -> Any:
                reservation = original_run(backend, *args, **kwargs)
                for instance in reservation.instances:
                    bridge.boot(instance)
                return reservation

            def get_console_output(response: General) -> ActionResult:
                instance_id = response._get_param("InstanceId")
                text = bridge.console(instance_id)
                if text is None:
                    return original_console(response)  # type: ignore[no-any-return]
                return ActionResult(
                    {
                        "InstanceId": instance_id,
                        "Timestamp": utcnow(),
                        "Output": Base64EncodedString.from_raw_string(text),
                    }
                )

            self._saved = {"run_instances": original_run, "get_console_output": original_console}
            InstanceBackend.run_instances = run_instances  # type: ignore[method-assign,assignment]
            General.get_console_output = get_console_output  # type: ignore[method-assign,assignment]
            Ec2Bridge._active = self
        return self

    def uninstall(self) -> None:
        with Ec2Bridge._guard:
            if Ec2Bridge._active is not self:
                return
            InstanceBackend.run_instances = self._saved["run_instances"]  # type: ignore[method-assign]
            General.get_console_output = self._saved["get_console_output"]  # type: ignore[method-assign]
            self._saved.clear()
            Ec2Bridge._active = None
        with self._lock:
            runs = list(self._runs.values())
        for instance, run, thread in runs:
            if instance._state.name not in ("terminated", "stopped"):
                instance.terminate()  # the supervisor sees it and ends the machine
            run.kill()
            thread.join(timeout=30)
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Ec2Bridge:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- the machines ------------------------------------------------------------------
    def boot(self, instance: Instance) -> None:
        raw = instance.user_data
        user_data = raw.decode() if isinstance(raw, Base64EncodedString) else ""
        run = InstanceRun(instance.id, user_data, self.work_dir / instance.id)
        thread = threading.Thread(
            target=self._supervise, args=(instance, run), name=f"ec2-{instance.id}", daemon=True
        )
        with self._lock:
            self._runs[instance.id] = (instance, run, thread)
        thread.start()

    def console(self, instance_id: str) -> str | None:
        with self._lock:
            found = self._runs.get(instance_id)
        return found[1].console() if found else None

    def running(self) -> list[str]:
        """Ids of the instances whose machine still runs."""
        with self._lock:
            return [i for i, (_, _, t) in self._runs.items() if t.is_alive()]

    def _supervise(self, instance: Instance, run: InstanceRun) -> None:
        # Popen and the wait stay in this thread: bwrap's --die-with-parent follows the
        # thread that started it.
        if not run.user_data:
            logger.info("instance without user data: nothing boots", extra={"id": instance.id})
            return
        try:
            run.start()
        except Exception:
            logger.exception("the instance could not boot", extra={"id": instance.id})
            instance.terminate()
            return
        instance._state.name, instance._state.code = "running", 16
        run.supervise(gone=lambda: instance._state.name in ("terminated", "shutting-down"))
        if run.powered_off and instance._state.name != "terminated":
            if getattr(instance, "instance_initiated_shutdown_behavior", "stop") == "terminate":
                instance.terminate()
            else:
                instance.stop()
            instance.state_reason = SHUTDOWN
        logger.info(
            "instance ended",
            extra={
                "id": instance.id,
                "state": instance._state.name,
                "powered_off": run.powered_off,
            },
        )

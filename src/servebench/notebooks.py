"""Executing the project's notebooks with papermill: each with its profile's parameters, on a
kernel whose own output goes to a log beside the executed notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import papermill as pm
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from traitlets import CaselessStrEnum

from servebench.config import notebook_parameters
from servebench.paths import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"


class IPCKernelManager(AsyncKernelManager):
    """Notebook kernels on Unix sockets instead of loopback TCP: nothing for another local user
    to connect to, and no "running over TCP without encryption" warning in every run's output."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    # What ipykernel itself writes (its warnings, and a zmq traceback when it is shut down mid-cell
    # by an interrupted run) goes to this log beside the executed notebooks rather than into the
    # run's output; a cell's own error reaches its executed notebook anyway. Set by run_notebook.
    stderr_log: ClassVar[Path | None] = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.stderr_log is None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        self.stderr_log.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_log.open("ab") as stream:
            kw["stderr"] = stream
            await super()._async_launch_kernel(kernel_cmd, **kw)


class StepFailed(Exception):
    """A step that could not complete; the message says what failed and how to look into it."""


def declared(name: str) -> set[str]:
    """The parameters a notebook's parameters cell declares."""
    return set(pm.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb")))


def profile_parameters(profile: dict[str, Any], name: str, out: Path) -> dict[str, Any]:
    """What the profile gives the notebook, with the outputs folder when it takes one."""
    wanted = declared(name)
    params = notebook_parameters(profile, name, wanted)
    if "out_dir" in wanted:
        params["out_dir"] = str(out)
    return params


def run_notebook(name: str, out: Path, parameters: dict[str, Any], suffix: str = "") -> Path:
    source = NOTEBOOKS / f"{name}.ipynb"
    target = out / "notebooks" / f"{name}{suffix}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    unknown = set(parameters) - declared(name)
    if unknown:
        raise StepFailed(f"{name}: parameters {sorted(unknown)} are not declared in its parameters cell")
    IPCKernelManager.stderr_log = out / "notebooks" / "kernels.log"
    try:
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            kernel_name="python3",
            kernel_manager_class=IPCKernelManager,
        )
    except pm.PapermillExecutionError as exc:
        raise StepFailed(
            f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n  see the executed notebook {target}"
        ) from None
    except DeadKernelError as exc:
        raise StepFailed(
            f"{name}: its kernel died ({exc}); what it wrote last is in {IPCKernelManager.stderr_log}"
        ) from None
    return target

"""Running one job: papermill on its notebook in a fresh kernel whose threads (and GPU) are pinned through the
kernel's environment, with the job folder held (:mod:`.locks`), everything the kernel prints in ``log.txt`` and the
outcome in ``job.json``. A failure of any kind is returned as a record, never raised."""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from ..storage.results import atomic_write_text
from .jobs import Job
from .locks import FolderBusy, hold, release

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def kernel_environment(threads: int | None = None, gpu: int | str | None = None) -> dict:
    """What the kernel's environment gets: torch's (and BLAS's) thread count, the one GPU it may see."""
    env = {var: str(threads) for var in THREAD_VARIABLES} if threads else {}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def _kernel_manager(env: dict, log):
    """jupyter-client's kernel manager, starting kernels with ``env`` added to this process's environment and their
    own stdout/stderr (C-level messages, a crash's last words) written to ``log``."""
    from jupyter_client.manager import AsyncKernelManager

    class PinnedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw["env"] = {**(kw.get("env") or os.environ), **env}
            kw["stdout"] = kw["stderr"] = log
            return await super().start_kernel(**kw)

    return PinnedKernelManager


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def read_record(job: Job) -> dict | None:
    """The job's ``job.json``, or None."""
    try:
        return json.loads(job.record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_record(job: Job, record: dict) -> None:
    atomic_write_text(job.record, json.dumps(_jsonable(record), indent=2, sort_keys=True))


def finished(job: Job, parameters: dict) -> bool:
    """The job ran to its end before with these parameters (its executed notebook is there)."""
    record = read_record(job)
    return bool(record and record.get("state") == "done" and record.get("parameters") == _jsonable(parameters)
                and job.output.exists())


def finished_before(job: Job) -> bool:
    """The job ran to its end at some time, whatever its parameters were (its record says done, its notebook is
    there): a summary of a folder counts it."""
    record = read_record(job)
    return bool(record and record.get("state") == "done" and job.output.exists())


def describe(error: BaseException) -> str:
    """One line: the notebook's own exception (papermill's ename/evalue), a dead kernel, or the error itself."""
    if type(error).__name__ == "DeadKernelError":
        return "kernel died (killed, out of memory or crashed): " + str(error).strip().splitlines()[0]
    ename = getattr(error, "ename", type(error).__name__)
    evalue = str(getattr(error, "evalue", error)).strip()
    return f"{ename}: {evalue.splitlines()[0] if evalue else ''}"


def execute(job: Job, parameters: dict, kernel: str = "python3", cwd=None, threads: int | None = None,
            gpu: int | str | None = None, notify=None, run: str = "") -> dict:
    """Run ``job`` and return its record (``state`` "done" or "failed", ``error``, times, host, log).

    ``notify(key, state, detail)`` is told when the kernel starts; ``run`` (the batch's id) goes into the record.
    A job whose folder another process holds is reported failed without touching its files."""
    import papermill

    try:
        hold(job.folder, note=f"(job {job.key})", again=False)
    except FolderBusy as busy:
        return {"key": job.key, "state": "failed", "error": f"not started: {busy}", "log": None}
    started = time.time()
    record = {"key": job.key, "notebook": job.notebook, "name": job.name, "seed": job.seed, "point": job.point,
              "parameters": parameters, "state": "running", "started": _now(), "host": socket.gethostname(),
              "pid": os.getpid(), "threads": threads, "gpu": gpu, "log": str(job.log), "output": str(job.output),
              "run": run}
    try:
        write_record(job, record)
        if notify is not None:
            notify(job.key, "running", record["host"])
        job.log.unlink(missing_ok=True)
        with open(job.log, "a", encoding="utf-8") as log:  # appended to by the kernel's own stdout/stderr too
            try:
                papermill.execute_notebook(
                    str(job.source), str(job.output), parameters=parameters, cwd=str(cwd) if cwd else None,
                    kernel_name=kernel, progress_bar=False, stdout_file=log, stderr_file=log,
                    kernel_manager_class=_kernel_manager(kernel_environment(threads, gpu), log))
                record["state"] = "done"
            except Exception as error:  # the notebook raised, its kernel died, papermill failed
                record.update(state="failed", error=describe(error))
                log.write(f"\n--- job failed: {record['error']}\n{traceback.format_exc()}")
        record.update(finished=_now(), seconds=round(time.time() - started, 1))
        write_record(job, record)
        return _jsonable(record)
    finally:
        release(job.folder)


def record_failure(job: Job, parameters: dict, error: str) -> dict:
    """Record a job that failed outside its own code (its Dask worker died): ``job.json`` says so unless another
    process holds the folder now."""
    record = {**(read_record(job) or {}), "key": job.key, "notebook": job.notebook, "name": job.name,
              "seed": job.seed, "point": job.point, "parameters": parameters, "state": "failed", "error": error,
              "finished": _now(), "log": str(job.log)}
    try:
        hold(job.folder, note=f"(recording job {job.key})", again=False)
    except FolderBusy:
        return _jsonable(record)
    try:
        write_record(job, record)
        if job.log.exists():
            with open(job.log, "a", encoding="utf-8") as log:
                log.write(f"\n--- job failed: {error}\n")
    finally:
        release(job.folder)
    return _jsonable(record)


def job_paths(record: dict) -> str:
    """Where to look: the log and the executed notebook of a record."""
    paths = [p for p in (record.get("log"), record.get("output")) if p and Path(p).exists()]
    return ", ".join(paths)

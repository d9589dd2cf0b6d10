"""Where jobs run: one after another in this process (``--jobs 1``), or as Dask futures (``distributed``) on a
LocalCluster sized to the machine, on a running scheduler (``--scheduler tcp://host:port``) or on SLURM workers
started by dask-jobqueue (``--slurm``). Dask does the queueing, placement, retries and dashboard; here a job is
only sized, pinned and, if Dask blamed it for a worker that died while it merely waited there, submitted again."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from .execution import THREAD_VARIABLES, execute, read_record, record_failure

TOPIC = "l2l-jobs"  # Dask structured events: a worker's job reports that its kernel started
REQUEUES = 3        # a job queued on a worker that died (never started there) is submitted again this often


@dataclass
class Engine:
    """How to run the jobs. ``kind``: "sequential", "local", "scheduler" or "slurm"."""

    kind: str = "local"
    workers: int | None = None         # local: jobs at once (default: the machine's cores, or one per GPU)
    threads: int | None = None         # threads per job (default: local cores // workers; SLURM: its cores)
    scheduler: str | None = None       # address of a running Dask scheduler
    slurm: dict = field(default_factory=dict)  # keyword arguments of slurm_cluster()
    slurm_jobs: int | None = None      # SLURM jobs (workers) to start (default: one per job, at most 10)
    retries: int = 1                   # re-runs of a job whose worker died (clusters started here)


@dataclass(frozen=True)
class LocalPlan:
    workers: int   # worker processes, one job each at a time
    threads: int   # torch/BLAS threads of each job's kernel
    gpus: int      # GPUs the jobs are spread over (worker i uses GPU i mod gpus); 0 without GPUs


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a SLURM or container limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def gpu_count() -> int:
    """CUDA devices visible here (0 without CUDA)."""
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover - a broken CUDA set-up counts as none
        return 0


def local_plan(n_jobs: int, cores: int, gpus: int = 0, workers: int | None = None,
               threads: int | None = None) -> LocalPlan:
    """Size a LocalCluster so the jobs do not oversubscribe the machine: one job per GPU when there are GPUs, else
    one per core; never more workers than jobs; each job gets ``cores // workers`` threads."""
    default = gpus if gpus else cores
    workers = max(1, min(workers or default, n_jobs))
    return LocalPlan(workers, threads or max(1, cores // workers), gpus)


def slurm_cluster(cores: int = 4, memory: str = "16GB", walltime: str = "04:00:00", queue: str | None = None,
                  account: str | None = None, gpus: int = 0, prologue=(), directives=(), **kwargs):
    """A dask-jobqueue SLURMCluster whose every SLURM job is one single-threaded worker (one notebook at a time)
    holding ``cores`` CPUs for that notebook's kernel (``job_cpu``; the kernel's threads pinned to them), ``memory``
    and ``gpus`` GPUs (``--gres=gpu:N``); ``prologue``: shell lines before the worker starts (``module load ...``,
    activating the environment); ``directives``: extra ``#SBATCH`` options."""
    from dask_jobqueue import SLURMCluster

    gres = [f"--gres=gpu:{gpus}"] if gpus else []
    return SLURMCluster(
        cores=1, processes=1, job_cpu=cores, memory=memory, walltime=walltime, queue=queue, account=account,
        job_extra_directives=gres + list(directives),
        job_script_prologue=list(prologue) + [f"export {var}={cores}" for var in THREAD_VARIABLES], **kwargs)


def pick_gpu(index: int, gpus: int) -> str:
    """The GPU of local worker ``index``: one of those this process sees (``CUDA_VISIBLE_DEVICES`` when set, as a
    kernel's own setting replaces it), else of ``range(gpus)``."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[index % len(visible)] if visible else str(index % gpus)


def run_sequentially(tasks, board, kernel: str, cwd, threads: int | None = None) -> list[dict]:
    """Today's behaviour: one job after another in this process, no Dask (threads not pinned unless asked)."""
    records = []
    for job, parameters in tasks:
        records.append(execute(job, parameters, kernel, cwd, threads, None, notify=board.update))
        board.update(job.key, records[-1]["state"], records[-1].get("error", ""))
    return records


def _on_worker(job, parameters, kernel, cwd, threads, gpus, token):
    """The Dask task: pick this worker's thread count and GPU, run the job, report its start as an event."""
    from distributed import get_worker

    worker = get_worker()
    if isinstance(threads, dict):
        threads = threads.get(worker.address) or max(1, usable_cores() // max(worker.state.nthreads, 1))
    gpu = None
    if gpus:
        try:
            gpu = pick_gpu(int(str(worker.name).rsplit("-", 1)[-1]), gpus)
        except ValueError:
            gpu = None

    def notify(key, state, detail):
        worker.log_event(TOPIC, {"token": token, "key": key, "state": state, "detail": f"{detail} {worker.address}"})

    return execute(job, parameters, kernel, cwd, threads, gpu, notify=notify, run=token)


def _dead_worker(error: BaseException) -> str:
    if type(error).__name__ == "KilledWorker":
        return ("its Dask worker died while running it (killed, out of memory, node lost), as often as --retries "
                f"allows: {str(error).splitlines()[0]}")
    return f"{type(error).__name__}: {error}"


def run_on_dask(client, tasks, board, kernel: str, cwd, threads, gpus: int = 0) -> list[dict]:
    """Submit every job to ``client``'s cluster and collect the records as they finish. A job whose worker died
    while running it (after Dask's retries) is recorded failed and the others go on; a job that was only queued on
    that worker (Dask blames every task a dead worker held) is submitted again."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    started = set()

    def on_event(event):
        msg = event[1] if isinstance(event, tuple) else event
        if isinstance(msg, dict) and msg.get("token") == token and msg.get("key") in board.states:
            started.add(msg["key"])
            if board.states[msg["key"]][0] in ("queued", "running"):
                board.update(msg["key"], msg["state"], msg.get("detail", ""))

    def submit(job, parameters, attempt):
        future = client.submit(_on_worker, job, parameters, kernel, str(cwd), threads, gpus, token,
                               key=f"{job.key}-{token}-{attempt}", pure=False)
        pending[future] = (job, parameters, attempt)
        return future

    client.subscribe_topic(TOPIC, on_event)
    pending, records = {}, {}
    try:
        completed = as_completed([submit(job, parameters, 0) for job, parameters in tasks])
        for future in completed:
            job, parameters, attempt = pending.pop(future)
            try:
                record = future.result()
            except Exception as error:  # KilledWorker, a lost scheduler, ...
                ran_here = (read_record(job) or {}).get("run") == token
                if type(error).__name__ == "KilledWorker" and not ran_here and job.key not in started \
                        and attempt < REQUEUES:
                    completed.add(submit(job, parameters, attempt + 1))
                    continue
                record = record_failure(job, parameters, _dead_worker(error))
            finally:
                future.release()  # a result no one holds is not recomputed when its worker dies later
            records[job.key] = record
            board.update(job.key, record["state"], record.get("error", ""))
    finally:
        client.unsubscribe_topic(TOPIC)
        for future in pending:
            future.cancel()
    return [records[job.key] for job, _ in tasks]


def threads_by_worker(client) -> dict:
    """Each worker's share of its host's cores: cores // threads of all workers on that host."""
    cores = client.run(usable_cores)
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before 2025: every worker is listed anyway
        workers = client.scheduler_info()["workers"]
    per_host = defaultdict(int)
    for info in workers.values():
        per_host[info["host"]] += info["nthreads"]
    return {address: max(1, cores.get(address, 1) // max(per_host[info["host"]], 1))
            for address, info in workers.items()}


@contextlib.contextmanager
def dask_client(engine: Engine, n_jobs: int, board):
    """Yield ``(client, threads, gpus)`` for ``engine``, closing what was started here. Every worker started here
    has one thread: it runs one notebook at a time, whose kernel gets the threads."""
    import dask
    import logging

    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": engine.retries}):
        if engine.kind == "scheduler":
            with Client(engine.scheduler) as client:
                yield client, engine.threads or threads_by_worker(client), 0
        elif engine.kind == "slurm":
            with slurm_cluster(**engine.slurm) as cluster, Client(cluster) as client:
                cluster.scale(jobs=engine.slurm_jobs or min(n_jobs, 10))
                board.note(f"SLURM: {engine.slurm_jobs or min(n_jobs, 10)} job(s) of one worker each, "
                           f"{engine.slurm.get('cores', 4)} CPUs per notebook")
                yield client, engine.threads or engine.slurm.get("cores", 4), 0
        else:
            plan = local_plan(n_jobs, usable_cores(), gpu_count(), engine.workers, engine.threads)
            board.note(f"LocalCluster: {plan.workers} worker(s), one job each, {plan.threads} thread(s) per job"
                       + (f", one GPU each of {plan.gpus}" if plan.gpus else ""))
            with LocalCluster(n_workers=plan.workers, threads_per_worker=1, processes=True, memory_limit=0,
                              silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
                yield client, plan.threads, plan.gpus

"""The executors that run a planned grid: on this machine with N workers, or on Slurm through
submitit, looked up by name in :data:`EXECUTORS`.

Every executor only ever calls :func:`stilts_core.runs.execution.execute_phase`, whose lock and
done marker make any number of workers, reruns and crashes safe: a rerun skips done runs and
resumes partial ones.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import submitit

from stilts_core import logs
from stilts_core.grid.config import GridConfig, GridError
from stilts_core.grid.plan import PlannedRun, plan
from stilts_core.paths import atomic_write_text, runs_dir
from stilts_core.phases.params import WEIGHTS_READ_DOWNSTREAM
from stilts_core.runs.execution import (
    RunBusy,
    RunError,
    execute_phase,
    is_done,
    is_running,
    prune_weights,
    run_path,
)
from stilts_core.runs.processes import worker_start

logger = logging.getLogger(__name__)


@dataclass
class GridReport:
    """What one execution of a grid did; ``failed`` maps run ids to their error (which names
    the executed notebook and the failing cell), ``blocked`` to the failed run upstream."""

    executed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    submitted: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)

    def merge(self, other: GridReport) -> GridReport:
        """Two workers' reports as one, each run counted once (both workers see a done run)."""
        failed = {**self.failed, **other.failed}
        executed = list(dict.fromkeys(self.executed + other.executed))
        return GridReport(executed, [r for r in dict.fromkeys(self.reused + other.reused)
                                     if r not in executed],
                          {**self.submitted, **other.submitted},
                          {r: e for r, e in failed.items() if r not in executed},
                          {r: e for r, e in {**self.blocked, **other.blocked}.items()
                           if r not in executed and r not in failed})

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def summary(self) -> str:
        lines = [f"{len(self.executed)} executed, {len(self.reused)} already done, "
                 f"{len(self.submitted)} submitted, {len(self.failed)} failed, "
                 f"{len(self.blocked)} not run because a run they need failed"]
        lines += [f"FAILED {run}: {error}" for run, error in self.failed.items()]
        lines += [f"NOT RUN {run}: needs {upstream}" for run, upstream in self.blocked.items()]
        return "\n".join(lines)


def run_local(config: GridConfig, workers: int = 1, poll_seconds: float = 2.0) -> GridReport:
    """Run the grid on this machine with ``workers`` processes (1: in this process).

    Each worker takes any run whose upstream runs are done and that no one else holds, so
    workers started separately on the same grid (here, or on several machines sharing the runs
    folder) split it without running anything twice. Each worker gets its share of the visible
    GPUs or, without GPUs, of the CPU cores (so that their thread pools do not oversubscribe).
    The workers leave Ctrl-C to this process, which ends them, and end if it is killed.
    """
    if workers < 1:
        raise GridError(f"workers must be at least 1, not {workers}")
    if workers == 1:
        return work_on(config, poll_seconds=poll_seconds)
    report = GridReport()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=worker_start,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(work_on, config, f"worker {index + 1}", environment,
                               poll_seconds)
                   for index, environment in enumerate(_worker_environments(workers))]
        for future in futures:
            report = report.merge(future.result())
    return report


def work_on(config: GridConfig, name: str = "", environment: dict | None = None,
            poll_seconds: float = 2.0) -> GridReport:
    """One worker: run every run it can take until none is left to do, waiting while the runs
    it needs are held by other workers; a failed run is not retried in the same call, and the
    runs downstream of it are reported as blocked. ``environment`` is set for its kernels; a
    named worker (a process of its own) starts its every line with its name."""
    os.environ.update(environment or {})
    if name:
        logs.configure(origin=name)
    planned = plan(config)
    report, settled = GridReport(), set()
    while len(settled) < len(planned):
        progressed = False
        for index, run in enumerate(planned, start=1):
            identifier = run.run_id
            if identifier in settled:
                continue
            if is_done(run_path(identifier)):
                report.reused.append(identifier)
                settled.add(identifier)
                continue
            failed_upstream = next((d for d in run.depends_on
                                    if d in report.failed or d in report.blocked), None)
            if failed_upstream:
                report.blocked[identifier] = failed_upstream
                settled.add(identifier)
                continue
            if not all(is_done(run_path(d)) for d in run.depends_on) or \
                    is_running(run_path(identifier)):
                continue  # not ready yet, or another worker has it
            logger.info(f"[stilts] grid {config.name}: run {index}/{len(planned)} ({run.phase})")
            try:
                execute_phase(run.phase, run.params, wait=False)
            except RunBusy:
                continue
            except RunError as error:
                report.failed[identifier] = str(error)
                logger.error(f"[stilts] {identifier}: FAILED: {error}")
            else:
                report.executed.append(identifier)
                if config.keep_weights == "downstream":
                    freed = prune_weights(run_path(identifier),
                                          WEIGHTS_READ_DOWNSTREAM[run.phase])
                    if freed:
                        logger.info(f"[stilts] {identifier}: deleted {freed / 1e9:.1f} GB "
                                    "of weights no later phase reads (keep_weights: downstream)")
            settled.add(identifier)
            progressed = True
        if not progressed and len(settled) < len(planned):
            time.sleep(poll_seconds)  # what is left is held by other workers or waits on it
    return report


def cpu_share_environment(processes: int) -> dict:
    """The environment that gives each of ``processes`` processes sharing this machine its share
    of the CPU cores: ``OMP_NUM_THREADS``, which torch, OpenBLAS and MKL all read; nothing when
    the caller set it."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}


def _worker_environments(workers: int) -> list[dict]:
    """Per worker: its share of the visible GPUs (``CUDA_VISIBLE_DEVICES``) or, without enough
    GPUs, of the CPU cores (:func:`cpu_share_environment`)."""
    import torch

    count = torch.cuda.device_count()
    if count >= workers:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(count)]
        share = count // workers
        return [{"CUDA_VISIBLE_DEVICES": ",".join(ids[i * share:(i + 1) * share])}
                for i in range(workers)]
    return [cpu_share_environment(workers)] * workers


class PhaseJob(submitit.helpers.Checkpointable):
    """One phase run as a Slurm job. On a time-out or pre-emption submitit requeues it, and the
    run resumes from its latest checkpoint."""

    def __init__(self, phase: str, params: dict, runs: str):
        self.phase, self.params, self.runs = phase, params, runs

    def __call__(self) -> str:
        os.environ["STILTS_RUNS_DIR"] = self.runs
        return str(execute_phase(self.phase, self.params))


def run_slurm(config: GridConfig, wait: bool = False,
              folder: Path | None = None) -> GridReport:
    """Submit every run that is not done as one Slurm job (through submitit), each depending on
    the jobs of its upstream runs (``afterok``: phase iii starts only after its phase ii
    succeeded; a failure cancels what depends on it). With ``wait``, wait for all of them and
    report failures. Job ids and logs are kept under ``folder`` (default
    ``runs/slurm/<grid>/``), with ``jobs.tsv`` listing each run id and its job id."""
    folder = Path(folder or runs_dir() / "slurm" / config.name)
    report, jobs = GridReport(), {}
    try:
        for run in plan(config):
            if is_done(run_path(run.run_id)):
                report.reused.append(run.run_id)
                continue
            after = [jobs[d].job_id for d in run.depends_on if d in jobs]
            executor = submitit.SlurmExecutor(folder=folder / "%j")
            executor.update_parameters(**_sbatch_options(config, run, after))
            jobs[run.run_id] = executor.submit(PhaseJob(run.phase, run.params, str(runs_dir())))
            report.submitted[run.run_id] = jobs[run.run_id].job_id
            logger.info(f"[stilts] {run.run_id}: Slurm job {jobs[run.run_id].job_id}"
                + (f" (after {', '.join(after)})" if after else ""))
    finally:  # the jobs submitted so far, even if a later submission failed
        atomic_write_text(folder / "jobs.tsv", "run_id\tjob_id\n" + "".join(
            f"{run}\t{job}\n" for run, job in report.submitted.items()))
    if wait:
        for identifier, job in jobs.items():
            try:
                job.result()
            except Exception as error:  # submitit's errors carry the job's traceback and log
                report.failed[identifier] = f"Slurm job {job.job_id}: {error}"
            else:
                report.executed.append(identifier)
    return report


def _sbatch_options(config: GridConfig, run: PlannedRun, after: list[str]) -> dict:
    resources, slurm = config.resources_for(run.phase), config.slurm
    options = {"job_name": f"stilts-{run.run_id}", "time": resources.time_min,
               "mem": f"{math.ceil(resources.mem_gb * 1024)}M", "cpus_per_task": resources.cpus,
               "setup": list(slurm.setup),
               "additional_parameters": {"kill_on_invalid_dep": "yes",
                                         **slurm.additional_parameters}}
    if resources.gpus:
        options["gpus_per_node"] = resources.gpus
    if after:
        options["dependency"] = "afterok:" + ":".join(after)
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(slurm, name):
            options[name] = getattr(slurm, name)
    return options


EXECUTORS = {"local": run_local, "slurm": run_slurm}

"""Phase runs: identity, folder layout, done markers and papermill execution.

A run's id is derived from its validated parameters, so running the same phase with the same
parameters finds its outputs instead of redoing them. Layout of ``runs/<run_id>/``:
``params.json``, ``notebook.ipynb`` (executed, with the injected parameters), ``metrics.json``,
``results/<task>/<language>.csv`` (tidy rows), ``provenance.json`` (what kind of evidence the run
is, condition by condition), ``attempts.json`` and ``compute.json`` (wall time of every attempt
and the device),
``progress.log`` (how far it got, line by line), ``predictions/``, model folders,
checkpoints while it trains, ``.lock`` and ``DONE``.

Crash safety: ``DONE`` is written last and atomically, so a run without it is partial and is
resumed (training from its latest checkpoint, evaluation from its finished languages). A run is
executed only under an exclusive lock on its ``.lock`` file (``flock``), which the kernel drops
when the holder dies for any reason, SIGKILL included: two workers never run the same run at
once, and a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stilts_core.lookup import lookup
from stilts_core.paths import REPO_ROOT, atomic_write_text, notebooks_dir, runs_dir
from stilts_core.training.progress import follow

logger = logging.getLogger(__name__)

DONE = "DONE"
COMPUTE = "compute.json"
LOCK = ".lock"


class RunError(RuntimeError):
    """A phase run failed or its inputs are missing; the message names the run and notebook."""


class RunBusy(RunError):
    """Another process holds the run's lock: it is running the run right now."""


@dataclass(frozen=True)
class Phase:
    name: str
    notebook: str
    description: str


PHASES: dict[str, Phase] = {
    p.name: p
    for p in (
        Phase("intermediate", "01_intermediate.ipynb",
              "phase (ii): train the encoder on an English intermediate task"),
        Phase("target", "02_target.ipynb",
              "phase (iii): fine-tune on the English training set of a target task, starting from "
              "a phase-(ii) encoder or, for the baseline, from the pretrained model"),
        Phase("zero_shot_eval", "03_zero_shot_eval.ipynb",
              "score a target-task model zero-shot on every language of the task"),
        Phase("retrieval", "04_retrieval.ipynb",
              "a retrieval task (Tatoeba, BUCC, Mewsli-X, LAReQA) with an encoder as it is (base "
              "or phase-(ii)), or after dual-encoder fine-tuning on its English pairs"),
        Phase("alignment", "04b_alignment.ipynb",
              "layer-wise alignment with English on parallel sentences (base, phase-(ii) or "
              "target fine-tuned encoder), and optionally the task's retrieval from the same pass"),
    )
}


def get_phase(name: str) -> Phase:
    return lookup(PHASES, name, "phase", RunError)


def run_id(phase: str, params: dict) -> str:
    """``<phase>-<task>-<hash of the parameters>``: stable across machines and sessions."""
    canonical = json.dumps({"phase": phase, **params}, sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    task = params.get("task")
    return f"{phase}-{task}-{digest}" if task else f"{phase}-{digest}"


def run_path(identifier: str) -> Path:
    """Runs live under :func:`runs_dir` (``$STILTS_RUNS_DIR``), which notebook kernels inherit,
    so a phase finds its upstream runs wherever the caller put them."""
    return runs_dir() / identifier


def is_done(path: Path) -> bool:
    return (Path(path) / DONE).is_file()


@contextlib.contextmanager
def run_lock(path: Path, wait: bool = True):
    """Hold the run's exclusive lock; with ``wait=False`` raise :class:`RunBusy` at once if
    another process holds it. The holder's host and pid are written into the lock file."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = (path / LOCK).read_text().strip() or "another process"
            raise RunBusy(f"run {path.name} is being executed by {holder}") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)


def is_running(path: Path) -> bool:
    """Whether some process holds the run's lock now (a probe that writes nothing)."""
    lock = Path(path) / LOCK
    if not lock.is_file():
        return False
    descriptor = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def mark_done(path: Path) -> None:
    atomic_write_text(Path(path) / DONE, time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "optimizer.pt")


def prune_weights(path: Path, keep: tuple[str, ...]) -> int:
    """Delete the weight folders of a finished run except its top-level ``keep`` folders, and
    return the bytes freed. A weight folder is one that holds a weight or optimiser file; its
    ``params``, metrics, results and records stay, so the run stays done and traceable."""
    path = Path(path)
    if not is_done(path):
        raise RunError(f"{path}: only a finished run (with {DONE}) can have its weights pruned")
    kept = {path / name for name in keep}
    folders = {file.parent for name in WEIGHT_FILES for file in path.rglob(name)}
    freed = 0
    for folder in sorted(folders):
        if folder in kept or any(parent in kept for parent in folder.parents) or not folder.exists():
            continue
        freed += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder)
    return freed


def load_done_run(identifier: str, weights: str | None = None) -> tuple[Path, dict]:
    """Folder and parameters of a finished upstream run (an input of a later phase), whose
    weight folder ``weights`` (``encoder``, ``model``) the caller reads: a run whose weights
    were deleted (``prune_weights``) is refused with the way to make them again."""
    path = run_path(identifier)
    if not is_done(path):
        raise RunError(
            f"run {identifier!r} is not finished ({path / DONE} is missing); run it first "
            "(`stilts grid run CONFIG` runs phases in dependency order)"
        )
    params = json.loads((path / "params.json").read_text())
    if weights and not (path / weights / "config.json").is_file():
        raise RunError(
            f"run {identifier!r} is finished but its {weights}/ was deleted (pruned weights); "
            f"make it again with the same parameters: `stilts run {params['phase']} --force "
            f"-p NAME VALUE ...` as in {path / 'params.json'}, or delete {path} and run the grid")
    return path, params


ATTEMPTS = "attempts.json"
HEARTBEAT_SECONDS = 30.0


def _device() -> tuple[int, str]:
    import platform

    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    name = torch.cuda.get_device_name(0) if gpus else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return gpus, name


@contextlib.contextmanager
def attempt(path: Path):
    """Time one attempt at a run into ``attempts.json``: its start, then a heartbeat every
    :data:`HEARTBEAT_SECONDS` and its end. An attempt killed without warning (SIGKILL, a pre-empted
    job) keeps the time up to its last heartbeat, so a resumed run's cost counts every attempt."""
    import threading

    record = Path(path) / ATTEMPTS
    attempts = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else []
    gpus, device = _device()
    mine = {"started": time.time(), "last_seen": time.time(), "finished": None, "gpus": gpus,
            "device": device}
    attempts.append(mine)
    lock = threading.Lock()

    def save() -> None:
        with lock:
            mine["last_seen"] = time.time()
            atomic_write_text(record, json.dumps(attempts, indent=1))

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            save()

    save()
    heart = threading.Thread(target=beat, daemon=True)
    heart.start()
    try:
        yield attempts
    finally:
        stop.set()
        heart.join()
        mine["finished"] = time.time()
        save()


# The threads a run computes with when its parameters do not say: one, whatever the machine or
# the number of workers beside it, so that the same run id always means the same arithmetic.
DEFAULT_THREADS = 1


def run_threads(params: dict) -> int:
    """The CPU threads a run computes with: its ``threads`` parameter, else the default."""
    return params.get("threads") or DEFAULT_THREADS

# What can still differ between two executions of the same run id, by device.
REPRODUCIBILITY = {
    "cpu": "bitwise on the same CPU instruction set, torch version and thread count; another "
           "instruction set (AVX2, AVX-512, AMX) may round differently",
    "gpu": "not bitwise: GPU kernels (cuBLAS reductions, atomic adds in backward passes, fused "
           "attention) may sum in another order on every execution, so scores may differ in the "
           "last digits and, through training, beyond them",
}


def cpu_model() -> str:
    """The CPU's model name (what decides how it rounds: its instruction set)."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def compute_record(attempts: list[dict], threads: int = DEFAULT_THREADS) -> dict:
    """What a run cost over all its attempts: wall seconds (each attempt from its start to its
    end, or to its last heartbeat if it was killed), GPU-seconds (each attempt's seconds times the
    GPUs it could see; a CPU run counts none), and the device of the last attempt; and how it
    computed: its CPU ``threads`` and what a rerun may change (:data:`REPRODUCIBILITY`)."""
    import torch

    seconds = [(a["finished"] or a["last_seen"]) - a["started"] for a in attempts]
    last = attempts[-1]
    return {"seconds": round(sum(seconds), 1), "attempts": len(attempts),
            "attempt_seconds": [round(s, 1) for s in seconds],
            "gpu_seconds": round(sum(s * a["gpus"] for s, a in zip(seconds, attempts, strict=True)), 1),
            "gpus": last["gpus"], "device": last["device"], "cpu": cpu_model(),
            "threads": threads,
            "reproducible": REPRODUCIBILITY["gpu" if last["gpus"] else "cpu"],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                      time.localtime(last["finished"] or last["last_seen"])),
            "torch": torch.__version__}


def read_compute(path: Path) -> dict | None:
    """A run's compute record, or ``None`` for runs made before runs recorded it."""
    record = Path(path) / COMPUTE
    return json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None


def execute_phase(phase: str, params: dict, force: bool = False, wait: bool = True) -> Path:
    """Run a phase notebook with papermill unless an identical run is already done.

    ``params`` must already be validated (see :func:`stilts_core.phases.params.validate_params`).
    The run holds its lock throughout; ``wait=False`` raises :class:`RunBusy` instead of waiting
    for another process that is running it. A partial run resumes where it stopped. The kernel
    works in the repository root whoever calls, so relative paths mean the same thing from the
    CLI, from papermill and from the book.
    """
    identifier = run_id(phase, params)
    path = run_path(identifier)
    if is_done(path) and not force:
        logger.info(f"[stilts] {identifier}: done, reusing {path}")
        return path
    with run_lock(path, wait=wait):
        if is_done(path) and not force:  # finished by the process we waited for
            logger.info(f"[stilts] {identifier}: done, reusing {path}")
            return path
        if force:  # start afresh: nothing of an earlier execution is resumed or read back
            for item in path.iterdir():
                if item.name != LOCK:
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
        _execute(phase, params, path)
    return path


# A Unix socket's path holds at most 107 bytes; the longest of ours ends in "/kernel-5".
_SOCKET_PATH_LIMIT = 107


def execute_notebook(source: Path, output: Path, parameters: dict) -> None:
    """Execute a notebook with papermill, its kernel working in the repository root.

    The kernel talks over Unix sockets in a private temporary folder rather than TCP: ports that
    one process picks for its kernel can be taken by a kernel another process starts at the
    same moment (grid jobs start side by side), which kills the kernel before it replies or
    leaves its client waiting for ever.
    """
    import papermill
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="stilts-kernel-") as sockets:
        prefix = os.path.join(sockets, "kernel")
        if len(prefix) + 2 > _SOCKET_PATH_LIMIT:
            raise RunError(f"the temporary folder {tempfile.gettempdir()} makes the kernel's "
                           f"socket paths longer than {_SOCKET_PATH_LIMIT} bytes; set TMPDIR to "
                           "a shorter path such as /tmp")
        papermill.execute_notebook(
            str(source), str(output), parameters=parameters, cwd=str(REPO_ROOT),
            kernel_name="python3", progress_bar=False,
            config=Config({"KernelManager": {"transport": "ipc", "ip": prefix}}),
        )


def _execute(phase: str, params: dict, path: Path) -> None:
    import papermill

    from stilts_core.runs.results import ResultsError, read_run_results

    spec = get_phase(phase)
    identifier = path.name
    resumed = (path / "params.json").is_file()
    atomic_write_text(path / "params.json", json.dumps({"phase": phase, **params}, indent=1))
    executed = path / "notebook.ipynb"
    logger.info(f"[stilts] {identifier}: {'resuming' if resumed else 'running'} {spec.notebook} "
                f"({spec.description})")
    started = time.time()
    try:
        with attempt(path) as attempts, follow(path, logger.info):  # progress lines reach our log
            execute_notebook(notebooks_dir() / spec.notebook, executed,
                             {**params, "run_dir": str(path)})
    except papermill.PapermillExecutionError as error:
        first_line = next((line for line in error.source.splitlines() if line.strip()), "")
        raise RunError(
            f"run {identifier} failed in cell {error.cell_index} (execution count "
            f"{error.exec_count}: {first_line.strip()[:80]}): {error.ename}: {error.evalue}\n"
            f"executed notebook: {executed}"
        ) from None
    if not (path / "metrics.json").is_file():
        raise RunError(f"run {identifier} finished without writing {path / 'metrics.json'}")
    try:
        read_run_results(path)  # every run leaves readable result rows
    except ResultsError as error:
        raise RunError(f"run {identifier} finished without usable results: {error}") from None
    atomic_write_text(path / COMPUTE,
                      json.dumps(compute_record(attempts, run_threads(params)), indent=1))
    mark_done(path)
    for checkpoints in list(path.rglob("checkpoints")):  # the final models are saved
        shutil.rmtree(checkpoints, ignore_errors=True)
    logger.info(f"[stilts] {identifier}: done in {time.time() - started:.0f}s")

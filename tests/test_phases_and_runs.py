import papermill
import pytest

from stilts_core.paths import notebooks_dir
from stilts_core.phases.params import PARAMS, ParameterError, validate_params
from stilts_core.runs.execution import PHASES, RunError, execute_phase, load_done_run, run_id


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_notebook_parameters_cell_matches_the_parameter_model(phase):
    import ast

    declared = papermill.inspect_notebook(str(notebooks_dir() / PHASES[phase].notebook))
    assert list(declared) == [*PARAMS[phase].model_fields, "run_dir"]
    for name, field in PARAMS[phase].model_fields.items():
        expected = field.get_default(call_default_factory=True)
        assert ast.literal_eval(declared[name]["default"]) == expected, name


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_each_phase_lives_in_its_own_module_and_its_notebook_calls_it(phase):
    """``stilts_core/phases/<phase>.py`` holds ``<phase>()``, the one procedure its notebook runs."""
    import importlib
    import json

    procedure = getattr(importlib.import_module(f"stilts_core.phases.{phase}"), phase)
    assert callable(procedure) and procedure.__doc__
    notebook = json.loads((notebooks_dir() / PHASES[phase].notebook).read_text())
    code = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                     if cell["cell_type"] == "code")
    assert f"from stilts_core.phases.{phase} import {phase}\n" in code
    assert f"{phase}(params, run_dir=run_dir)" in code


def test_validation_names_field_and_allowed_parameters():
    with pytest.raises(ParameterError, match=r"seed: Input should be a valid integer.*Allowed"):
        validate_params("intermediate", {"seed": "one"})
    with pytest.raises(ParameterError, match=r"colour: Extra inputs"):
        validate_params("target", {"colour": "red"})
    with pytest.raises(ParameterError, match=r"batch_size 32 is not a multiple of .* 5"):
        validate_params("target", {"per_device_batch_size": 5})


def test_run_id_is_stable_and_sensitive_to_every_parameter():
    params = validate_params("target", {"seed": 1})
    assert run_id("target", params) == run_id("target", dict(reversed(list(params.items()))))
    assert run_id("target", params) != run_id("target", {**params, "seed": 2})
    assert run_id("target", params).startswith("target-xnli-")


def test_unfinished_upstream_run_is_a_clear_error():
    with pytest.raises(RunError, match=r"not finished.*DONE is missing"):
        load_done_run("intermediate-mnli-000000000000")


def test_failed_run_names_the_executed_notebook_and_is_not_marked_done(tmp_path, monkeypatch):
    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path))
    with pytest.raises(ParameterError, match=r"'xnli' is a target task.*choose from .*multi"):
        validate_params("intermediate", {"task": "xnli", "model": "tiny-xlmr"})
    params = validate_params("intermediate", {"task": "sst2", "model": "tiny-xlmr"})
    with pytest.raises(RunError, match=r"(?s)failed in cell .*DataSourceError.*sst2.*notebook\.ipynb"):
        execute_phase("intermediate", params)
    run_folder = tmp_path / run_id("intermediate", params)
    assert (run_folder / "notebook.ipynb").is_file()
    assert not (run_folder / "DONE").exists()


def test_run_lock_is_exclusive_and_dies_with_its_holder(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from stilts_core.runs.execution import RunBusy, is_running, run_lock

    with run_lock(tmp_path):
        assert is_running(tmp_path)
        with pytest.raises(RunBusy, match=r"being executed by .* pid \d+"):
            with run_lock(tmp_path, wait=False):
                pass
    assert not is_running(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from stilts_core.runs.execution import run_lock\n"
        f"with run_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert is_running(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.time() + 10
    while is_running(tmp_path) and time.time() < deadline:
        time.sleep(0.05)
    assert not is_running(tmp_path)  # no stale lock after a SIGKILL


def _notebook(path, *sources):
    import nbformat

    notebook = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(notebook, path)
    return path


def test_kernel_talks_over_unix_sockets_in_a_private_folder_that_is_removed(tmp_path):
    """TCP ports picked by one process can be taken by a kernel another starts at the same
    moment, which killed a kernel of a grid job in CI; Unix sockets in a folder of its own
    cannot collide."""
    import json
    import os
    from pathlib import Path

    from stilts_core.paths import REPO_ROOT
    from stilts_core.runs.execution import execute_notebook

    source = _notebook(
        tmp_path / "connection.ipynb", "output = ''",
        "import json, os\n"
        "from ipykernel.kernelapp import IPKernelApp\n"
        "kernel = IPKernelApp.instance()\n"
        "sockets = sorted(os.listdir(os.path.dirname(kernel.ip)))\n"
        "json.dump({'transport': kernel.transport, 'ip': kernel.ip, 'sockets': sockets,\n"
        "           'cwd': os.getcwd()}, open(output, 'w'))")
    record = tmp_path / "connection.json"
    execute_notebook(source, tmp_path / "executed.ipynb", {"output": str(record)})
    connection = json.loads(record.read_text())
    assert connection["transport"] == "ipc"
    assert Path(connection["cwd"]) == REPO_ROOT
    folder = os.path.dirname(connection["ip"])
    assert os.path.basename(folder).startswith("stilts-kernel-")
    assert connection["sockets"] == [f"kernel-{port}" for port in range(1, 6)]
    assert not os.path.exists(folder)


def test_too_long_temporary_folder_for_kernel_sockets_is_a_clear_error(tmp_path, monkeypatch):
    import tempfile

    from stilts_core.runs.execution import execute_notebook

    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(RunError, match=r"socket paths longer than 107 bytes; set TMPDIR"):
        execute_notebook(_notebook(tmp_path / "n.ipynb", "x = 1"), tmp_path / "out.ipynb", {})
    assert not list(deep.iterdir())  # the private folder is removed on the error too


def test_unset_sample_caps_leave_existing_run_ids_unchanged():
    # The ids these parameters had before max_train_examples / max_eval_examples existed.
    assert run_id("target", validate_params("target", {"seed": 1})) == "target-xnli-e198f83240a4"
    assert (run_id("retrieval", validate_params("retrieval", {}))
            == "retrieval-tatoeba-80e3caf53cc4")
    capped = validate_params("target", {"seed": 1, "max_train_examples": 100})
    assert capped["max_train_examples"] == 100
    assert run_id("target", capped) != "target-xnli-e198f83240a4"


def test_a_sampled_run_can_never_be_full_scale():
    from stilts_core.phases.assessment import recipe_conditions
    from stilts_core.phases.params import PARAMS

    for phase in ("intermediate", "target", "zero_shot_eval", "retrieval", "alignment"):
        params = PARAMS[phase](**validate_params(phase, {"max_eval_examples": 50}))
        failed = [c.name for c in recipe_conditions(params) if not c.holds]
        assert failed == ["max_eval_examples"], phase
    params = PARAMS["target"](**validate_params("target", {"max_train_examples": 50}))
    assert [c.name for c in recipe_conditions(params) if not c.holds] == ["max_train_examples"]


def test_capped_split_is_the_same_fixed_seed_sample_in_every_run(fixtures_root):
    from stilts_core.phases.common import load_task_split
    from stilts_core.phases.params import PARAMS
    from stilts_core.tasks.registry import get_task

    task = get_task("xnli")
    one = PARAMS["zero_shot_eval"](data_root=str(fixtures_root), max_eval_examples=5)
    full = load_task_split(task, "test", "de", PARAMS["zero_shot_eval"](data_root=str(fixtures_root)), "eval")
    sample = load_task_split(task, "test", "de", one, "eval")
    assert len(sample) == 5 < len(full)
    assert sample["text"] == load_task_split(task, "test", "de", one, "eval")["text"]
    assert set(sample["text"]) <= set(full["text"])
    assert len(load_task_split(task, "test", "de", one, "train")) == len(full)  # no training cap set


def test_pruning_a_finished_run_keeps_what_later_phases_read(tmp_path):
    """keep_weights: downstream deletes stage copies, heads and checkpoints of a done run, and
    keeps the folders named for its phase, its records and its results."""
    from stilts_core.phases.params import WEIGHTS_READ_DOWNSTREAM
    from stilts_core.runs.execution import mark_done, prune_weights

    run = tmp_path / "target-xnli-abc"
    for folder in ("model", "encoder", "stages/1-xnli/model-xnli", "stages/1-xnli/encoder",
                   "stages/1-xnli/checkpoints/checkpoint-5"):
        (run / folder).mkdir(parents=True)
        (run / folder / "model.safetensors").write_bytes(b"w" * 100)
        (run / folder / "config.json").write_text("{}")
    (run / "stages/1-xnli/checkpoints/checkpoint-5/optimizer.pt").write_bytes(b"o" * 50)
    (run / "params.json").write_text("{}")
    with pytest.raises(RunError, match="only a finished run"):
        prune_weights(run, WEIGHTS_READ_DOWNSTREAM["target"])
    mark_done(run)
    assert prune_weights(run, WEIGHTS_READ_DOWNSTREAM["target"]) == 4 * 102 + 50
    assert (run / "model" / "model.safetensors").is_file() and (run / "params.json").is_file()
    assert not (run / "encoder").exists() and not (run / "stages/1-xnli/model-xnli").exists()
    assert not (run / "stages/1-xnli/checkpoints/checkpoint-5").exists()
    assert prune_weights(run, WEIGHTS_READ_DOWNSTREAM["target"]) == 0


def test_run_records_travel_with_a_collected_table(tmp_path):
    import json

    from stilts_core.runs.results import read_run_records, records_path, write_run_records

    runs = []
    for name in ("b-run", "a-run"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.json").write_text(json.dumps({"seed": 1, "name": name}))
        (tmp_path / name / "model.safetensors").write_bytes(b"weights")
        runs.append(tmp_path / name)
    (tmp_path / "a-run" / "provenance.json").write_text(json.dumps({"label": "smoke run"}))
    path = write_run_records(runs, records_path(tmp_path / "out" / "set.parquet"))
    assert path.name == "set.runs.jsonl"
    assert [json.loads(line)["run_id"] for line in path.read_text().splitlines()] == ["a-run", "b-run"]
    records = read_run_records(path)
    assert records["a-run"]["provenance"] == {"label": "smoke run"}
    assert records["b-run"]["params"]["name"] == "b-run" and "provenance" not in records["b-run"]


def test_records_name_files_the_same_on_every_machine(tmp_path, monkeypatch, machine_paths):
    """``pack:``, ``fixtures:``, repository-relative, else ``local:<name>`` with a digest; and
    the records of a run made before that (absolute paths, checkpoint paths) are converted when
    they are collected, its parameters unchanged."""
    import json
    import re

    from stilts_core.paths import REPO_ROOT, fixtures_dir, portable_location, portable_text
    from stilts_core.runs.results import read_run_records, records_path, write_run_records

    pack = tmp_path / "pack"
    (pack / "tatoeba").mkdir(parents=True)
    monkeypatch.setenv("STILTS_SHARED_DATA", str(pack))
    assert portable_location(pack) == "pack:."
    assert portable_location(pack / "tatoeba" / "tatoeba.deu-eng.deu") == "pack:tatoeba/tatoeba.deu-eng.deu"
    assert portable_location(fixtures_dir() / "xnli") == "fixtures:xnli"
    assert portable_location(REPO_ROOT / "data" / "cache" / "tiny-xlmr") == "data/cache/tiny-xlmr"
    mirror = tmp_path / "mirror"
    (mirror / "sst2").mkdir(parents=True)
    (mirror / "sst2" / "train-en.jsonl").write_text("{}\n")
    listed = portable_location(mirror)
    assert re.fullmatch(r"local:mirror@listing-sha256:[0-9a-f]{16}", listed)
    assert re.fullmatch(r"local:train-en\.jsonl@sha256:[0-9a-f]{16}",
                        portable_location(mirror / "sst2" / "train-en.jsonl"))
    (mirror / "sst2" / "train-en.jsonl").write_text("{}\n{}\n")
    assert portable_location(mirror) != listed
    assert portable_location(tmp_path / "gone") == "local:gone"
    assert (portable_text(f"read {pack}/tatoeba, ({mirror / 'gone'}) not https://x.org/a or a/b.")
            == "read pack:tatoeba, (local:gone) not https://x.org/a or a/b.")

    run = tmp_path / "runs" / "intermediate-mnli-0123456789ab"
    run.mkdir(parents=True)
    params = {"phase": "intermediate", "task": "mnli", "data_root": "pack"}
    checkpoint = str(run / "checkpoints" / "checkpoint-42")
    for name, record in {
        "params.json": params,
        "data_sources.json": {"mnli": {"pack": str(pack), "splits": {}}},
        "provenance.json": {"reasons": [f"data mnli train-en: local {pack}: 8,833 examples"]},
        "metrics.json": {"best_checkpoint": checkpoint,
                         "stages": [{"best_checkpoint": checkpoint, "resumed_from": checkpoint}]},
    }.items():
        (run / name).write_text(json.dumps(record))
    record, = read_run_records(write_run_records([run], records_path(tmp_path / "set.parquet"))).values()
    assert record["params"] == params
    assert record["data_sources"]["mnli"]["pack"] == "pack:."
    assert record["provenance"]["reasons"] == ["data mnli train-en: local pack:.: 8,833 examples"]
    assert record["metrics"] == {"best_checkpoint": "checkpoint-42", "stages": [
        {"best_checkpoint": "checkpoint-42", "resumed_from": "checkpoint-42"}]}
    assert machine_paths(record) == []


def test_a_fresh_runs_records_name_no_path_of_this_machine(tmp_path, monkeypatch, tiny_model_path,
                                                          machine_paths):
    """A trained run (its checkpoints deleted when it finishes) and an evaluation that skips
    languages, on the fixtures with the tiny model from the session's cache (outside the
    checkout): each record file as the phase wrote it, and as collected."""
    import json
    import re

    from stilts_core.runs.results import RUN_RECORDS, read_run_records, records_path, write_run_records

    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path / "runs"))
    small = {"model": "tiny-xlmr", "smoke": True, "max_length": 32}
    runs = [execute_phase("intermediate", validate_params("intermediate", {
                **small, "task": "mnli", "max_steps": 2, "eval_steps": 1, "batch_size": 8})),
            execute_phase("alignment", validate_params("alignment", small))]
    written = {}
    for run in runs:
        for name in RUN_RECORDS:
            if (run / name).is_file():
                written[run.name, name] = json.loads((run / name).read_text())
    assert {name for _, name in written} == set(RUN_RECORDS)
    assert [(key, found) for key, record in written.items() for found in machine_paths(record)] == []
    metrics = written[runs[0].name, "metrics.json"]
    assert re.fullmatch(r"checkpoint-\d+", metrics["best_checkpoint"]), metrics["best_checkpoint"]
    assert written[runs[0].name, "data_sources.json"] == {"mnli": {"local_root": "fixtures:."}}
    assert written[runs[0].name, "provenance.json"]["model_copy"].startswith("local:tiny-xlmr@")
    collected = read_run_records(write_run_records(runs, records_path(tmp_path / "set.parquet")))
    assert machine_paths(list(collected.values())) == []


def test_an_upstream_run_whose_weights_were_pruned_is_refused_with_the_fix(tmp_path, monkeypatch):
    import json

    from stilts_core.runs.execution import mark_done

    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path))
    run = tmp_path / "intermediate-mnli-0123456789ab"
    run.mkdir()
    (run / "params.json").write_text(json.dumps({"phase": "intermediate", "task": "mnli"}))
    mark_done(run)
    assert load_done_run(run.name)[1]["task"] == "mnli"  # its parameters alone: no weights read
    with pytest.raises(RunError, match=r"its encoder/ was deleted .*stilts run intermediate --force"):
        load_done_run(run.name, "encoder")
    (run / "encoder").mkdir()
    (run / "encoder" / "config.json").write_text("{}")
    assert load_done_run(run.name, "encoder")[0] == run

"""The hand-over is the experiment: a target run starts from exactly the phase-(ii) encoder,
under a head that owes nothing to phase (ii), for every format."""

import pytest
import safetensors.torch
import torch
from test_training import HEADS, _prepared

from stilts_core.training.model import initial_model
from stilts_core.training.trainer import train

SEED = 5


@pytest.fixture(scope="module")
def phase_two_encoder(tiny_model_path, tokenizer, tmp_path_factory):
    """A multiple-choice intermediate run (as Cosmos QA or HellaSwag), which trains the pooler
    its head scores choices with: the case where a head part could leak into phase (iii)."""
    prepared, hyper = _prepared("multiple_choice", tokenizer, train_size=64)
    hyper = hyper.model_copy(update={"max_steps": 8, "eval_steps": 8})
    output = tmp_path_factory.mktemp("phase-two")
    train(tiny_model_path, [prepared], tokenizer, output, hyper, seed=2)
    return output / "encoder"


def _tensors(module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


@pytest.mark.parametrize("format_name", sorted(HEADS))
def test_the_target_run_starts_from_the_phase_two_encoder_under_a_fresh_head(
        format_name, phase_two_encoder, tiny_model_path, tokenizer):
    prepared, hyper = _prepared(format_name, tokenizer, train_size=16)
    tasks = {prepared.name: prepared}
    handed_over = initial_model(str(phase_two_encoder), tasks, hyper, SEED, new_heads=True)
    baseline = initial_model(tiny_model_path, tasks, hyper, SEED, new_heads=True)
    saved = safetensors.torch.load_file(str(phase_two_encoder / "model.safetensors"))
    encoder = _tensors(handed_over.encoder)
    body = {name for name in saved if not name.startswith("pooler.")}
    assert body and body <= set(encoder)
    for name in body:  # the transformer body: exactly the phase-(ii) weights
        assert torch.equal(encoder[name], saved[name]), name
    # everything else the head computes with: the same fresh values as on the pretrained model
    head, fresh = _tensors(handed_over.heads[prepared.name]), _tensors(baseline.heads[prepared.name])
    assert head and head.keys() == fresh.keys()
    for name in head:
        assert torch.equal(head[name], fresh[name]), name
    baseline_encoder = _tensors(baseline.encoder)
    for name in (n for n in encoder if n.startswith("pooler.")):
        assert torch.equal(encoder[name], baseline_encoder[name]), name
        assert not torch.equal(encoder[name], saved[name]), f"{name} still holds phase (ii)"


def test_the_target_phase_hands_over_only_at_its_first_stage(monkeypatch, fixtures_root):
    """XCOPA-like multi-stage training carries its head from stage to stage; only the first
    stage starts new heads."""
    from stilts_core.phases import target as target_phase
    from stilts_core.phases.params import validate_params
    from stilts_core.tasks.registry import get_task

    calls = []

    def record(*args, new_heads=False, **kwargs):
        calls.append(new_heads)
        raise KeyboardInterrupt("stop after the call is recorded")

    monkeypatch.setattr(target_phase, "train", record)
    params = validate_params("target", {"task": "xnli", "model": "tiny-xlmr",
                                        "data_root": str(fixtures_root), "smoke": True})
    with pytest.raises(KeyboardInterrupt):
        target_phase.target(params)
    assert calls == [True] and len(get_task("xcopa").training) == 2


def test_multiple_choice_training_in_phase_two_trains_the_pooler(phase_two_encoder,
                                                                  tiny_model_path):
    """Why the pooler must be made fresh: phase (ii) leaves it trained inside the encoder."""
    from transformers import AutoModel

    pretrained = _tensors(AutoModel.from_pretrained(tiny_model_path))
    saved = safetensors.torch.load_file(str(phase_two_encoder / "model.safetensors"))
    assert not torch.equal(saved["pooler.dense.weight"], pretrained["pooler.dense.weight"])

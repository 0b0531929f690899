"""The model one training run trains: heads (one per task) on one shared encoder, built from a
checkpoint or a mixture's, fresh heads seeded, and the collators of each head."""

from __future__ import annotations

import copy

from stilts_core.formats import model_head
from stilts_core.training.inputs import Hyperparameters, TrainingTask


def _attach_shared_encoder(head_model, encoder) -> None:
    """Make ``head_model`` run on ``encoder`` without registering it as its submodule, so the
    encoder's weights appear once in the run's state dict (checkpoints) and once in the
    optimiser, however many heads share it."""
    prefix = head_model.base_model_prefix
    del head_model._modules[prefix]
    head_model.__dict__[prefix] = encoder
    output_embeddings = head_model.get_output_embeddings()
    if output_embeddings is not None:  # the MLM decoder is tied to the input embeddings
        output_embeddings.weight = encoder.get_input_embeddings().weight


def standalone(head_model):
    """The head model with its encoder registered again, for ``save_pretrained``."""
    prefix = head_model.base_model_prefix
    if prefix in head_model.__dict__:
        head_model.add_module(prefix, head_model.__dict__.pop(prefix))
    return head_model


def fresh_heads(model, seed: int) -> None:
    """Initialise every part of the heads that is not the transformer body afresh, from
    ``seed`` alone: the heads' own layers and the encoder's pooler (dense + tanh over ``<s>``),
    as ``from_pretrained`` initialises a missing layer (normal, std ``initializer_range``; zero
    bias; LayerNorm 1 and 0). A head then owes nothing to where the encoder came from, and
    runs of one seed start from the same head whatever their intermediate task.

    The pooler is a head part: only multiple-choice heads read it
    (``XLMRobertaForMultipleChoice`` scores each choice from ``outputs[1]``), but it lives in
    the shared encoder, so without this a phase-(iii) multiple-choice head would start with a
    part trained in phase (ii) (HellaSwag, Cosmos QA, CommonsenseQA, multi-task) while the
    other formats start wholly fresh. jiant (Phang et al. 2020) differs: its encoder output
    ``pooled`` is this pooler for classification and multiple-choice heads alike, and it is
    carried with the encoder from phase (ii) to phase (iii).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    std = model.encoder.config.initializer_range
    pooler = getattr(model.encoder, "pooler", None)
    parts = ([pooler] if pooler is not None else []) + [model.heads[n] for n in sorted(model.heads)]
    # weights tied to the body (an MLM decoder shares the input embeddings) stay as they are
    body = ({id(p) for p in model.encoder.parameters()}
            - {id(p) for p in (pooler.parameters() if pooler is not None else ())})
    for part in parts:
        for module in part.modules():
            if isinstance(module, torch.nn.Linear) and id(module.weight) not in body:
                with torch.no_grad():
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    if module.bias is not None:
                        module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                torch.nn.init.ones_(module.weight)
                torch.nn.init.zeros_(module.bias)


def initial_model(init_path: str, tasks: dict[str, TrainingTask], hyper: Hyperparameters,
                  seed: int, new_heads: bool = False):
    """The model a run starts training from, as :func:`train` builds it: seeded, the shared
    encoder from ``init_path`` and one head per task; ``new_heads`` (the start of phase iii)
    makes every head part fresh (:func:`fresh_heads`)."""
    from transformers import set_seed

    set_seed(seed)
    model = build_model(init_path, tasks, hyper.attention)
    if new_heads:
        fresh_heads(model, seed)
    return model


def build_model(init_path: str | None, tasks: dict[str, TrainingTask], attention: str = "sdpa",
                config=None):
    """The shared encoder and one head per task, from ``init_path``, or randomly initialised
    from ``config`` (the throughput benchmark: the real model's arithmetic without its weights)."""
    import torch
    import transformers

    class MultiTaskModel(torch.nn.Module):
        """One shared encoder, one ``AutoModelFor…`` head per task; ``task_name`` routes."""

        accepts_loss_kwargs = False
        main_input_name = "input_ids"

        def __init__(self, encoder, heads: dict):
            super().__init__()
            self.encoder = encoder
            self.heads = torch.nn.ModuleDict(heads)
            for head in heads.values():
                _attach_shared_encoder(head, encoder)

        def forward(self, task_name: str, input_ids=None, attention_mask=None, token_type_ids=None,
                    labels=None, start_positions=None, end_positions=None):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                      "token_type_ids": token_type_ids, "labels": labels,
                      "start_positions": start_positions, "end_positions": end_positions}
            return self.heads[task_name](**{k: v for k, v in inputs.items() if v is not None})

    def load(model_class, **options):
        if config is None:
            return model_class.from_pretrained(init_path, attn_implementation=attention, **options)
        return model_class.from_config(config_with(config, **options),
                                       attn_implementation=attention)

    encoder = load(transformers.AutoModel)
    heads = {}
    for name, t in tasks.items():
        options = {}
        if t.num_labels:
            labels = t.encoding.labels
            options = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                       "label2id": {label: i for i, label in enumerate(labels)}}
        heads[name] = load(getattr(transformers, t.head), **options)
    return MultiTaskModel(encoder, heads)


def config_with(config, **options):
    """A copy of a model config with ``options`` (e.g. a head's labels) set."""
    changed = copy.deepcopy(config)
    changed.update(options)
    return changed


def collators(tasks: list[TrainingTask], tokenizer, padding: str = "dynamic") -> dict:
    """Each task's batch collator: dynamic padding, or every sequence padded to the task's
    ``max_length`` (the naive baseline)."""
    def pad_to(t: TrainingTask) -> int | None:
        return t.encoding.max_length if padding == "max_length" else None

    return {t.name: (mlm_collator(tokenizer, pad_to(t)) if t.task is None
                     else model_head(t.task.format).collator(tokenizer, pad_to(t)))
            for t in tasks}


def mlm_collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorForLanguageModeling

    # texts are truncated to max_length, so a multiple of it is exactly max_length
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15,
                                           pad_to_multiple_of=max_length)

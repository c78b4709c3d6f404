"""The shared encoder + heads: shapes, pooling, and the zero-perturbation identity."""

import pytest
import torch

from mt_dnn.model import MultiTaskModel, checkpoint_pooling, masked_mean
from tests.tiny import CLS_TASK, REG_TASK, TASKS, tiny_batch, tiny_encoder, tiny_model


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_zero_perturbation_equals_clean_forward(kind, pooling):
    model = tiny_model(kind, pooling=pooling)
    batch = tiny_batch(CLS_TASK)
    clean = model(batch, CLS_TASK.name)
    embeds = model.embed(batch)
    perturbed = model.forward_embeds(embeds + torch.zeros_like(embeds), batch, CLS_TASK.name)
    assert torch.equal(clean, perturbed)


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_embeds_path_matches_the_encoders_own_input_ids_path(kind):
    """Our forward (via inputs_embeds) sees what the encoder sees from input_ids."""
    model = tiny_model(kind, pooling="mean")
    batch = tiny_batch(CLS_TASK)
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if model.uses_token_types:
        kwargs["token_type_ids"] = batch["token_type_ids"]
    reference = model.encoder(**kwargs).last_hidden_state
    ours = model.encode_embeds(model.embed(batch), batch)
    mask = batch["attention_mask"].bool()
    # Padded positions may differ (position ids of pads); real tokens must not.
    torch.testing.assert_close(ours[mask], reference[mask], rtol=1e-5, atol=1e-6)


def test_heads_shapes_and_token_types():
    bert, mpnet = tiny_model("bert"), tiny_model("mpnet")
    assert bert.uses_token_types and not mpnet.uses_token_types
    for model in (bert, mpnet):
        assert model(tiny_batch(CLS_TASK), CLS_TASK.name).shape == (4, 3)
        assert model(tiny_batch(REG_TASK), REG_TASK.name).shape == (4,)


def test_token_type_ids_change_bert_output_but_are_ignored_by_mpnet():
    for kind, should_change in (("bert", True), ("mpnet", False)):
        model = tiny_model(kind)
        batch = tiny_batch(CLS_TASK)
        other = dict(batch, token_type_ids=torch.zeros_like(batch["token_type_ids"]))
        changed = not torch.equal(model(batch, CLS_TASK.name), model(other, CLS_TASK.name))
        assert changed == should_change


def test_masked_mean_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(masked_mean(hidden, mask), torch.tensor([[2.0, 3.0]]))


def test_mean_pooling_is_invariant_to_padding_length():
    model = tiny_model("bert", pooling="mean")
    batch = tiny_batch(CLS_TASK, batch_size=1, seq_len=5)
    longer = {
        k: torch.cat([v, torch.zeros(1, 3, dtype=v.dtype)], dim=1) if v.dim() == 2 else v
        for k, v in batch.items()
    }
    torch.testing.assert_close(
        model(batch, CLS_TASK.name), model(longer, CLS_TASK.name), rtol=1e-5, atol=1e-6
    )


def test_pretrained_pooler_is_dropped_so_every_parameter_gets_a_gradient():
    model = tiny_model("bert")
    batch = tiny_batch(CLS_TASK)
    model(batch, CLS_TASK.name).sum().backward()
    model(tiny_batch(REG_TASK), REG_TASK.name).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    # token-type embeddings of type 1 get gradients too: the tiny batch uses both types
    assert no_grad == []


def test_checkpoint_pooling_reads_sentence_transformers_config(tmp_path):
    assert checkpoint_pooling(str(tmp_path)) == "cls"
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    assert checkpoint_pooling(str(tmp_path)) == "mean"


def test_unknown_pooling_is_an_error():
    with pytest.raises(ValueError, match="pooling"):
        MultiTaskModel(tiny_encoder(), TASKS, pooling="max")


def _tiny_config(kind: str):
    from transformers import (
        DebertaV2Config,
        ElectraConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    common = dict(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=72,
        pad_token_id=1,
    )
    return {
        "roberta": lambda: RobertaConfig(**common, type_vocab_size=1),
        "xlm-roberta": lambda: XLMRobertaConfig(**common, type_vocab_size=1),
        "deberta-v2": lambda: DebertaV2Config(**common, type_vocab_size=0),
        "electra": lambda: ElectraConfig(**common, embedding_size=16),
    }[kind]()


@pytest.mark.parametrize("kind", ["roberta", "xlm-roberta", "deberta-v2", "electra"])
def test_other_encoder_families_take_the_embeddings_path(kind):
    """Each supported family runs from inputs_embeds, matches its own input_ids path on
    real tokens, and reproduces the clean forward exactly under a zero perturbation."""
    from transformers import AutoModel

    torch.manual_seed(0)
    encoder = AutoModel.from_config(_tiny_config(kind)).eval()
    model = MultiTaskModel(encoder, TASKS, pooling="mean", dropout=0.0)
    batch = tiny_batch(CLS_TASK)
    batch["input_ids"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 1)
    assert model.pad_token_id == 1
    clean = model(batch, CLS_TASK.name)
    embeds = model.embed(batch)
    assert torch.equal(clean, model.forward_embeds(embeds + 0.0, batch, CLS_TASK.name))
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if model.uses_token_types:
        kwargs["token_type_ids"] = batch["token_type_ids"]
    reference = encoder(**kwargs).last_hidden_state
    mask = batch["attention_mask"].bool()
    ours = model.encode_embeds(embeds, batch)
    torch.testing.assert_close(ours[mask], reference[mask], rtol=1e-5, atol=1e-5)

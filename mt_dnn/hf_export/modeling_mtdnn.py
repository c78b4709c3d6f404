"""One task of an mt-dnn-tat checkpoint as a HuggingFace sequence classifier.

Written by ``mt_dnn/export.py`` next to the weights of an exported model, and
loaded by ``AutoModelForSequenceClassification.from_pretrained(folder,
trust_remote_code=True)`` or ``pipeline("text-classification", model=folder,
trust_remote_code=True)``. Self-contained on purpose: it imports torch and
transformers only, never mt_dnn, so the folder works without this toolkit.

The model is any ``AutoModel`` encoder (its architecture rebuilt from the
config embedded in ``encoder_config``) followed by mt-dnn-tat's task head:
pooling (the first token, ``cls``, or the mean over the attention mask,
``mean``), dropout and one linear layer. As in training, the encoder's
pretrained pooler is dropped, the word embeddings are looked up before the
encoder is run with ``inputs_embeds``, and ``token_type_ids`` reach the
encoder only when it has segment embeddings (``type_vocab_size > 1``).

Regression tasks (``problem_type="regression"``) have one logit, the score
itself; the pipeline returns it as is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("cls", "mean")


class MtDnnConfig(PretrainedConfig):
    """``encoder_config``: the encoder's own ``config.to_dict()`` (with its ``model_type``);
    ``pooling``: ``cls`` or ``mean``; ``classifier_dropout``: the head's dropout."""

    model_type = "mtdnn"

    def __init__(
        self,
        encoder_config: dict | None = None,
        pooling: str = "cls",
        classifier_dropout: float = 0.1,
        **kwargs,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {list(POOLINGS)}")
        self.encoder_config = dict(encoder_config or {})
        self.pooling = pooling
        self.classifier_dropout = float(classifier_dropout)
        super().__init__(**kwargs)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states over the positions where ``mask`` is 1."""
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def build_encoder(encoder_config: dict) -> PreTrainedModel:
    """The encoder's architecture (random weights) from its saved config dict."""
    config = dict(encoder_config)
    model_type = config.pop("model_type", None)
    if not model_type:
        raise ValueError("encoder_config has no model_type; cannot rebuild the encoder")
    return AutoModel.from_config(AutoConfig.for_model(model_type, **config))


class MtDnnPreTrainedModel(PreTrainedModel):
    config_class = MtDnnConfig
    base_model_prefix = "encoder"


class MtDnnForSequenceClassification(MtDnnPreTrainedModel):
    def __init__(self, config: MtDnnConfig):
        super().__init__(config)
        self.num_labels = int(config.num_labels or 2)  # transformers' default
        self.encoder = build_encoder(config.encoder_config)
        # Dropped in training too (mt_dnn.model.MultiTaskModel): the heads never use it.
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.register_module("pooler", None)
        encoder_config = self.encoder.config
        self.uses_token_types = (getattr(encoder_config, "type_vocab_size", 0) or 0) > 1
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(encoder_config.hidden_size, self.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.config.pooling == "cls":
            return hidden[:, 0]
        return masked_mean(hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.encoder.get_input_embeddings()(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones(
                inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device
            )
        encoder_kwargs = {"inputs_embeds": inputs_embeds, "attention_mask": attention_mask}
        if self.uses_token_types and token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        if output_attentions is not None:
            encoder_kwargs["output_attentions"] = output_attentions
        if output_hidden_states is not None:
            encoder_kwargs["output_hidden_states"] = output_hidden_states
        outputs = self.encoder(**encoder_kwargs, return_dict=True)
        pooled = self.pool(outputs.last_hidden_state, attention_mask)
        logits = self.classifier(self.dropout(pooled))

        loss = None
        if labels is not None:
            loss = self.loss(logits, labels)
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        if not return_dict:
            rest = [r for r in (outputs.hidden_states, outputs.attentions) if r is not None]
            return (loss, logits, *rest) if loss is not None else (logits, *rest)
        return SequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean squared error for regression, cross-entropy for single-label classification,
        binary cross-entropy for multi-label classification (as HF's own classifiers)."""
        labels = labels.to(logits.device)
        problem_type = self.config.problem_type
        if problem_type is None:
            problem_type = (
                "regression"
                if self.num_labels == 1
                else "single_label_classification"
                if labels.dtype in (torch.long, torch.int)
                else "multi_label_classification"
            )
        if problem_type == "regression":
            return MSELoss()(logits.squeeze(-1).float(), labels.reshape(-1).float())
        if problem_type == "single_label_classification":
            return CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))

"""SentencePiece tokenizers (XLM-R, DeBERTa-v2/v3) through prepro_std's command line.

A tiny unigram model is trained in-process on a few sentences (offline), saved under
the file name each model family's tokenizer reads, beside the family's config.json,
and loaded by prepro as any model folder is (AutoTokenizer.from_pretrained). Without
the sentencepiece package (requirements.txt) these tokenizers cannot be built and
this module fails at its import.
"""

from __future__ import annotations

import io
import json

import pytest
import sentencepiece as spm  # a requirement: missing, this test fails, it does not skip

from data_utils.prepro import run_prepro

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a song in the tree",
    "cats and dogs are friends",
    "a quick brown fox jumps over the lazy dog",
    "the sun is warm and the sky is blue",
]
ROWS = [  # uid, label, premise, hypothesis (with a word the model never saw)
    ("0", "entailment", "the cat sat on the mat", "a cat sat"),
    ("1", "not_entailment", "a zebra ran in the park", "the dog sang"),
]
FAMILIES = {  # model type -> (config class name, the file name its tokenizer reads)
    "xlm-roberta": ("XLMRobertaConfig", "sentencepiece.bpe.model"),
    "deberta-v2": ("DebertaV2Config", "spm.model"),
}


@pytest.fixture(scope="module")
def spm_model() -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 10),
        model_writer=model,
        vocab_size=48,
        model_type="unigram",
        hard_vocab_limit=False,  # the corpus is too small for an exact size
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prepro_tokenizes_with_a_sentencepiece_model(family, spm_model, tmp_path):
    import transformers

    config_class, file_name = FAMILIES[family]
    folder = tmp_path / family
    folder.mkdir()
    (folder / file_name).write_bytes(spm_model)
    getattr(transformers, config_class)(vocab_size=64).save_pretrained(folder)
    canonical = tmp_path / "canonical"
    canonical.mkdir()
    lines = ["uid\tlabel\tpremise\thypothesis"] + ["\t".join(row) for row in ROWS]
    (canonical / "rte_dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"

    argv = ["--model", str(folder), "--data_dir", str(canonical), "--output_dir", str(out)]
    assert run_prepro([*argv, "--tasks", "rte", "--progress", "false"]) == 0

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    processor = spm.SentencePieceProcessor(model_proto=spm_model)
    rows = [json.loads(line) for line in (out / "rte_dev.json").read_text().splitlines()]
    assert [row["uid"] for row in rows] == ["0", "1"]
    for row, (_, _, premise, hypothesis) in zip(rows, ROWS, strict=True):
        tokens = tokenizer.convert_ids_to_tokens(row["input_ids"])
        first = processor.encode(premise, out_type=str)
        second = processor.encode(hypothesis, out_type=str)
        # The sentences are SentencePiece's own pieces, between the family's special tokens.
        assert tokens[1 : 1 + len(first)] == first, tokens
        assert tokens[-1 - len(second) : -1] == second, tokens
        assert ("token_type_ids" in row) == ("token_type_ids" in tokenizer.model_input_names)

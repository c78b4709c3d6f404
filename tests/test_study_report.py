"""The TAT study's report (experiments/tat_study/report.py) on synthetic unit results.

Every expected number below is worked out by hand from the predictions built here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.scripts import load_script

BOOTSTRAP = ["--bootstrap", "200"]
MNLI = ["entailment", "neutral", "contradiction"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


report = load_script("experiments/tat_study/report.py", "tat_study_report")

# Held-out MNLI: 20 examples, gold i % 3. Wrong predictions are gold + 1 (mod 3).
GOLD = [i % 3 for i in range(20)]
WRONG_ON = {  # (method, seed) -> examples it gets wrong
    ("none", 1): range(0, 10),  # 50%
    ("none", 2): range(0, 5),  # 75%
    ("tat", 1): range(0),  # 100%
    ("tat", 2): range(18, 20),  # 90%
    ("tat_oracle", 1): range(0),  # 100%
    ("tat_uniform", 1): range(0, 2),  # 90%
    ("tat_mtdnn", 1): range(0, 4),  # 80%
    ("tat_mtdnn_attack", 1): range(0, 1),  # 95%
    ("tat_eps0.1", 1): range(0, 3),  # 85%
    ("smart", 1): range(0, 10),  # 50%
    ("smart_alpha3", 1): range(0),  # 100%
    ("smart_eps0.1", 1): range(0, 5),  # 75%
}
CURVES = {("none", 1): [40, 50], ("none", 2): [70, 75], ("tat", 1): [90, 100], ("tat", 2): [85, 90]}
WALL = {("none", 1): 100.0, ("none", 2): 110.0, ("tat", 1): 300.0, ("tat", 2): 330.0}
# Difficulty of uid i: 0-4 -> 30, 5-9 -> 60, 10-14 -> 90, 15-19 -> 100; uid 20 is not evaluated.
DIFFICULTY = [30] * 5 + [60] * 5 + [90] * 5 + [100] * 5 + [0]


def accuracy(gold, pred) -> float:
    return float(np.mean(np.asarray(gold) == np.asarray(pred)) * 100)


def eval_set(labels, gold, pred, metrics=None):
    uids = [str(i) for i in range(len(gold))]
    if metrics is None:
        metrics = {"accuracy": accuracy(gold, pred)} if labels else {}
    return {"metrics": metrics, "labels": labels, "uids": uids, "gold": gold, "pred": pred}


def unit(study, method, seed, evals, curve=None, wall=100.0, in_domain=None):
    in_domain = in_domain or next(iter(evals))
    metric = "accuracy" if evals[in_domain]["labels"] else "pearson"
    history = [
        {"epoch": e + 1, "train_seconds": 1.0, "train_examples_per_s": 20.0,
         "dev": {in_domain: {metric: value}}}
        for e, value in enumerate(curve or [evals[in_domain]["metrics"].get(metric, 0.0)])
    ]  # fmt: skip
    return {
        "unit": f"{study}-{method}-s{seed}", "study": study, "method": method, "seed": seed,
        "commit": "abcdef1234567890abcdef1234567890abcdef12", "dirty": False,
        "command": "python train.py", "predict_command": "python predict.py",
        "machine": "2-core CPU (test)", "started": "2026-11-30T07:00:00Z", "wall_seconds": wall,
        "history": history, "best_epoch": len(history), "eval": evals,
    }  # fmt: skip


def mnli_unit(method, seed):
    pred = [(g + 1) % 3 if i in WRONG_ON[method, seed] else g for i, g in enumerate(GOLD)]
    scitail_pred = [0, 1, 0, 0] if method.startswith("tat") else [0, 0, 0, 0]  # 75 / 50
    evals = {
        "mnli_dev_matched": eval_set(MNLI, GOLD, pred),
        "scitail_test": eval_set(["entails", "neutral"], [0, 1, 0, 1], scitail_pred),
    }
    curve, wall = CURVES.get((method, seed)), WALL.get((method, seed), 100.0)
    record = unit("mnli", method, seed, evals, curve, wall)
    if (method, seed) == ("tat", 2):
        record["attempts"] = 2  # cut off once and resumed (older results have no key: 1)
    return record


def glue_units():
    rte = ["not_entailment", "entailment"]
    stsb_gold = [1.0, 2.0, 3.0, 4.0, 5.0]
    return [
        unit("rte", "none", 1, {"rte_dev": eval_set(rte, [0, 1, 0, 1], [0, 1, 1, 1])}),  # 75
        unit("rte", "tat", 1, {"rte_dev": eval_set(rte, [0, 1, 0, 1], [0, 1, 0, 1])}),  # 100
        unit("stsb", "none", 1, {"stsb_dev": eval_set(None, stsb_gold, stsb_gold)}),  # 100
        # centred (-2,-1,0,2,1) against (-2,-1,0,1,2): r = 9/10
        unit("stsb", "tat", 1, {"stsb_dev": eval_set(None, stsb_gold, [1.0, 2.0, 3.0, 5.0, 4.0])}),
    ]


def write_units(folder: Path, units) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for record in units:
        (folder / f"{record['unit']}.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def write_difficulty(path: Path) -> Path:
    header = "index\tpremise\thypothesis\tgold_label\tnumber of correct responses (out of 100)"
    rows = [f"{i}\tA premise {i}.\tA hypothesis.\tneutral\t{s}" for i, s in enumerate(DIFFICULTY)]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def run(tmp_path: Path, units, *extra: str) -> str:
    results = write_units(tmp_path / "results", units)
    difficulty = write_difficulty(tmp_path / "difficulty.txt")
    out = tmp_path / "out"
    argv = ["--results", str(results), "--out", str(out), "--mnli_file", str(difficulty)]
    assert report.main([*argv, *BOOTSTRAP, *extra]) == 0
    return (out / "report.md").read_text(encoding="utf-8")


def section(text: str, number: int) -> str:
    start = text.index(f"\n## {number}.")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def block(text: str, heading: str) -> str:
    """From the heading line containing ``heading`` to the next heading."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start:end])


def row(text: str, first_cells: str) -> str:
    """The table line starting with ``| first_cells |``."""
    lines = [line for line in text.splitlines() if line.startswith(f"| {first_cells} |")]
    assert len(lines) == 1, (first_cells, lines)
    return lines[0]


MAIN_UNITS = [mnli_unit(m, s) for m, s in [("none", 1), ("none", 2), ("tat", 1), ("tat", 2)]]
NO_FIGURES = ("--heldout", "not_a_set")  # for tests about tables only: drawing is the slow part


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("full")
    return run(tmp, [*MAIN_UNITS, mnli_unit("tat_oracle", 1), *glue_units()]), tmp / "out"


def test_main_table_has_hand_computed_means_and_paired_differences(full):
    main = section(full[0], 1)
    held = block(main, "`mnli` / `mnli_dev_matched`")
    # none: 50, 75 -> 62.50, sample std sqrt(312.5) = 17.68; tat: 100, 90 -> 95.00 ± 7.07
    assert row(held, "none").startswith("| none | 2 | 62.50 ± 17.68 | — | — | — | not run yet |")
    tat = row(held, "tat").split(" | ")
    assert tat[:4] == ["| tat", "2", "95.00 ± 7.07", "+32.50 (s1 +50.00, s2 +15.00)"]
    # Seed-averaged per-example gains: 1 on 5 examples, 0.5 on 5, 0 on 8, -0.5 on 2:
    # mean 0.325, standard error about 0.11, so the 95% interval stays above 0.
    assert tat[5] == "ahead" and tat[6] == "not run yet"
    assert "in-domain (model selection), accuracy, 20 examples, 3 labels" in held
    assert "Not run yet on" not in held
    assert "| tat_oracle |" not in main  # the oracle has its own section
    assert "Methods not run yet: smart, freelb, r3f, random." in main


def test_zero_shot_and_regression_rows(full):
    main = section(full[0], 1)
    scitail = block(main, "`mnli` / `scitail_test`")
    assert "zero-shot, accuracy, 4 examples, 2 labels" in scitail
    assert row(scitail, "none").startswith("| none | 2 | 50.00 ± 0.00 |")
    tat = row(scitail, "tat").split(" | ")
    assert tat[2:4] == ["75.00 ± 0.00", "+25.00 (s1 +25.00, s2 +25.00)"]
    # The gain is one example of four: a resample misses it with probability (3/4)^4.
    assert tat[4].startswith("[+0.00,") and tat[5] == "no difference"
    stsb = block(main, "`stsb` / `stsb_dev`")
    assert "pearson, 5 examples, regression" in stsb
    assert row(stsb, "none").startswith("| none | 1 | 100.00 ± n/a |")
    assert row(stsb, "tat").startswith("| tat | 1 | 90.00 ± n/a | -10.00 (s1 -10.00) |")


def test_binary_tasks_have_their_own_table(full):
    text = full[0]
    binary = section(text, 2)
    assert "targeted gold-loss ascent (two labels: one wrong label)" in binary
    assert row(binary, "tat").startswith("| tat | 1 | 100.00 ± n/a | +25.00 (s1 +25.00) |")
    assert "rte_dev" not in section(text, 1)
    assert "stsb_dev" not in binary and "scitail_test" not in binary


def test_cola_is_scored_by_mcc_as_glue_scores_it(tmp_path):
    # GLUE's CoLA metric is the first of its task file: MCC, not accuracy. Gold has five
    # acceptable rows of eight; "none" predicts acceptable everywhere (accuracy 62.5, MCC
    # 0), "tat" misses one unacceptable row: tp 5, tn 2, fp 1, fn 0, so MCC is
    # (5*2 - 1*0) / sqrt(6 * 5 * 3 * 2) (accuracy 87.5).
    mcc = 1000 / np.sqrt(180)
    cola, gold = ["unacceptable", "acceptable"], [1, 1, 0, 1, 0, 1, 1, 0]
    units = [
        unit("cola", method, 1, {"cola_dev": eval_set(cola, gold, pred, {"mcc": value})})
        for method, pred, value in [("none", [1] * 8, 0.0), ("tat", [1, 1, 1, 1, 0, 1, 1, 0], mcc)]
    ]
    binary = section(run(tmp_path, units, *NO_FIGURES), 2)
    assert "`cola_dev`: in-domain (model selection), mcc," in binary and "Note:" not in binary
    assert row(binary, "tat").startswith(
        f"| tat | 1 | {mcc:.2f} ± n/a | +{mcc:.2f} (s1 +{mcc:.2f}) |"
    )
    assert row(binary, "none").startswith("| none | 1 | 0.00 ± n/a |")


def test_oracle_is_compared_with_tat_on_the_paired_seed(full):
    # tat_oracle has seed 1 only: 100 against tat's seed 1, also 100.
    assert row(section(full[0], 3), "mnli | mnli_dev_matched") == (
        "| mnli | mnli_dev_matched | 100.00 ± n/a | 95.00 ± 7.07 | +0.00 (s1 +0.00) "
        "| [+0.00, +0.00] | no difference | 100.0 |"
    )


def test_confusion_section_and_figure(full):
    text, out = full
    confusion = section(text, 4)
    # entailment row (7 examples x 2 seeds): none right on 8 of 14, 6 to neutral;
    # tat right on 13 of 14 (seed 2 misses uid 18), 1 to neutral.
    entail = row(confusion, "entailment").split(" | ")
    assert entail[1:3] == ["57.1 → 92.9 (+35.7)", "42.9 → 7.1 (-35.7)"]
    assert "(figures/confusion_mnli.png)" in confusion
    assert_png(out / "figures" / "confusion_mnli.png")


def test_difficulty_section_and_figure(full):
    text, out = full
    difficulty = section(text, 5)
    assert "model-agreement proxy" in difficulty and "not the human" in difficulty
    assert row(difficulty, "bucket") == "| bucket | examples | none | tat |"
    assert row(difficulty, "[0-50)") == "| [0-50) | 5 | 0.00 | 100.00 |"
    assert row(difficulty, "[50-80)") == "| [50-80) | 5 | 50.00 | 100.00 |"
    assert row(difficulty, "[80-95)") == "| [80-95) | 5 | 100.00 | 100.00 |"
    assert row(difficulty, "[95-100]") == "| [95-100] | 5 | 100.00 | 80.00 |"
    assert_png(out / "figures" / "difficulty_mnli.png")


def test_learning_curves_and_wall_time(full):
    text, out = full
    curves = section(text, 6)
    assert row(curves, "none") == "| none | 2 | 55.00 | 62.50 |"
    assert row(curves, "tat") == "| tat | 2 | 87.50 | 95.00 |"
    assert_png(out / "figures" / "curves_mnli.png")
    wall = section(text, 7)
    assert row(wall, "mnli-tat-s2") == (
        "| mnli-tat-s2 | abcdef1 | no | 2-core CPU (test) | 2026-11-30T07:00:00Z | 330.0 | 2 | 2 |"
    )
    assert row(wall, "mnli | tat") == "| mnli | tat | 2 | 315.0 | 3.00 |"  # 315 / 105
    assert row(wall, "mnli-tat-s1").split(" | ")[6] == "1"


def test_curve_panels_group_each_method_with_its_settings():
    methods = ["none", "smart", "tat", "r3f", "random", "freelb_eps0.02", "random_alpha3",
               "smart_eps0.02", "tat_uniform", "tat_mtdnn", "mine"]  # fmt: skip
    assert report.curve_panels(methods) == [
        ("smart", ["smart", "smart_eps0.02"]),
        ("tat", ["tat", "tat_uniform", "tat_mtdnn"]),
        ("r3f", ["r3f"]),
        ("random", ["random", "random_alpha3"]),
        ("freelb", ["freelb_eps0.02"]),  # settings without their defaults keep their family
        ("mine", ["mine"]),
    ]
    assert report.curve_panels(["none"]) == [("none", ["none"])]
    assert report.curve_panels(["tat"]) == [("tat", ["tat"])]


def test_a_partial_study_reports_what_is_missing_and_nothing_else(tmp_path):
    figures = tmp_path / "out" / "figures"
    figures.mkdir(parents=True)
    (figures / "confusion_mnli.png").write_bytes(PNG_MAGIC)  # from an earlier, fuller run
    (figures / "sketch.png").write_bytes(PNG_MAGIC)  # not the report's
    text = run(tmp_path, [mnli_unit("none", 1)], "--mnli_file", str(tmp_path / "absent.txt"))
    held = block(section(text, 1), "`mnli` / `mnli_dev_matched`")
    assert row(held, "none").startswith("| none | 1 | 50.00 ± n/a | — |")
    assert "Methods not run yet: smart, tat, freelb, r3f, random." in text
    assert "Fewer than 3 seeds: none (1)." in text
    assert section(text, 2).strip().endswith("Not run yet.")
    assert "No `tat_oracle` units: not run yet." in section(text, 3)
    assert "Figure 1 skipped (not run yet: tat)." in section(text, 4)
    assert "Figure 2 skipped: cannot read the difficulty file" in section(text, 5)
    for verdict in ("ahead", "behind", "no difference"):
        assert f"| {verdict} |" not in text
    # An old confusion figure would contradict the report: it is gone; others stay.
    assert not (figures / "confusion_mnli.png").exists()
    assert (figures / "sketch.png").exists()
    assert_png(figures / "curves_mnli.png")


def test_no_results_yet(tmp_path):
    text = run(tmp_path, [])
    assert "No finished units" in text


def test_a_recorded_metric_that_disagrees_with_the_predictions_is_noted(tmp_path):
    units = [mnli_unit("none", 1)]
    units[0]["eval"]["mnli_dev_matched"]["metrics"]["accuracy"] = 61.0
    text = run(tmp_path, units, *NO_FIGURES)
    assert "recorded accuracy 61.00 but its predictions give 50.00" in text
    assert "| none | 1 | 50.00 ± n/a |" in text


def test_bad_results_are_one_line_errors_naming_the_file(tmp_path, capsys):
    results = write_units(tmp_path / "results", [mnli_unit("none", 1)])
    (results / "broken.json").write_text("{not json", encoding="utf-8")
    argv = ["--results", str(results), "--out", str(tmp_path / "out"), *BOOTSTRAP]
    assert report.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.json" in err and err.count("\n") == 1
    (results / "broken.json").write_text(json.dumps(mnli_unit("none", 1)), encoding="utf-8")
    assert report.main(argv) == 2
    assert "seed 1 is also unit 'mnli-none-s1'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.md").exists()


def test_the_real_difficulty_file_reads_as_uid_to_count(data_real_dir):
    path = data_real_dir / "mnli" / "mnli_development_set_number_of_correct_responses.txt"
    scores = report.load_difficulty(path)
    assert len(scores) == 9815  # MNLI dev-matched
    assert set(scores) == {str(i) for i in range(9815)}
    assert all(0 <= s <= 100 for s in scores.values())


def test_a_wrong_difficulty_file_is_named(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("index\tpremise\thypothesis\tgold_label\n0\ta\tb\tneutral\n")
    with pytest.raises(report.ReportError, match="dev.tsv:1: expected a header"):
        report.load_difficulty(path)
    write_difficulty(path)
    path.write_text(path.read_text().replace("\t30\n", "\tmany\n", 1))
    with pytest.raises(report.ReportError, match="dev.tsv:2: 'many' is not a count"):
        report.load_difficulty(path)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1024, path


def confusion_record(labels, matrix) -> dict:
    return {"format": "mt-dnn-confusion", "version": 1,
            "tasks": {"mnli": {"labels": labels, "matrix": matrix}}}  # fmt: skip


def test_what_tat_targeted_is_rebuilt_from_the_recorded_tallies(tmp_path):
    tat = mnli_unit("tat", 1)
    tat["tat_confusion"] = {
        "1": confusion_record(MNLI, [[8, 1, 3], [2, 6, 2], [0, 0, 10]]),
        "2": confusion_record(MNLI, [[10, 2, 0], [1, 8, 1], [0, 0, 10]]),
    }
    oracle = mnli_unit("tat_oracle", 1)
    oracle["oracle_confusion"] = confusion_record(MNLI, [[5, 0, 5], [1, 5, 3], [2, 2, 5]])
    oracle["tat_confusion"] = {"1": confusion_record(MNLI, [[3, 0, 0], [0, 3, 0], [0, 0, 2]])}
    stepped = mnli_unit("tat", 2)
    stepped["command"] = "python train.py --adv tat --tat_update step"
    stepped["tat_confusion"] = tat["tat_confusion"]
    text = section(run(tmp_path, [tat, oracle, stepped], *NO_FIGURES), 8)
    assert row(text, "unit") == (
        "| unit | epoch | targets from | gold entailment | gold neutral | gold contradiction "
        "| distance | top |"
    )
    # epoch 1: TAT's initial e, uniform over the wrong labels
    assert row(text, "mnli-tat-s1 | 1").endswith(
        "| neut 50 / cont 50 | enta 50 / cont 50 | enta 50 / neut 50 | 0.000 | 50.0 |"
    )
    # epoch 2 from epoch 1's tally: entailment's errors 1 / 3 -> 25 / 75 (distance 0.25);
    # neutral 2 / 2 -> 50 / 50; contradiction has no errors -> uniform. Weighed by epoch
    # 2's rows (12, 10, 10): distance 12 * 0.25 / 32, top (12 * 0.75 + 10 * 0.5 * 2) / 32.
    assert row(text, "mnli-tat-s1 | 2") == (
        "| mnli-tat-s1 | 2 | epoch 1 tally | neut 25 / cont 75 | enta 50 / cont 50 "
        "| enta 50 / neut 50 | 0.094 | 59.4 |"
    )
    # the oracle's fixed e: rows 0/100, 25/75, 50/50 (distances 0.5, 0.25, 0) on rows 3, 3, 2
    assert row(text, "mnli-tat_oracle-s1 | 1") == (
        "| mnli-tat_oracle-s1 | 1 | oracle (fixed) | neut 0 / cont 100 | enta 25 / cont 75 "
        "| enta 50 / neut 50 | 0.281 | 78.1 |"
    )
    assert "Not rebuilt (their command changes how e is made): mnli-tat-s2." in text
    assert "mnli-tat-s2 |" not in text
    assert "(figures/targets_mnli.png)" in text
    assert_png(tmp_path / "out" / "figures" / "targets_mnli.png")


def test_binary_targets_are_tabled_but_not_drawn(tmp_path):
    rte = ["not_entailment", "entailment"]
    tat = unit("rte", "tat", 1, {"rte_dev": eval_set(rte, [0, 1, 0, 1], [0, 1, 1, 1])})
    record = {"format": "mt-dnn-confusion", "version": 1,
              "tasks": {"rte": {"labels": rte, "matrix": [[5, 3], [1, 7]]}}}  # fmt: skip
    tat["tat_confusion"] = {"1": record, "2": record}
    text = section(run(tmp_path, [tat]), 8)
    # gold not_entailment: every target is entailment, and the other way round
    assert row(text, "rte-tat-s1 | 2").endswith("| enta 100 | not_ 100 | 0.000 | 100.0 |")
    assert "Two labels: the one wrong label is every target, so no figure." in text
    assert not (tmp_path / "out" / "figures" / "targets_rte.png").exists()


def test_without_tallies_section_8_says_so(tmp_path):
    text = run(tmp_path, MAIN_UNITS, *NO_FIGURES)
    assert "No unit recorded TAT's training confusion tallies yet." in section(text, 8)


def test_the_scored_epoch_is_the_recorded_one_and_falls_back_to_the_best(tmp_path):
    last = unit("stsb", "none", 1, glue_units()[2]["eval"], curve=[80.0, 90.0, 85.0])
    last["best_epoch"], last["scored_epoch"] = 2, 3
    old = mnli_unit("none", 1)
    old["best_epoch"] = 1
    last["checkpoint"] = "last"
    text = run(tmp_path, [last, old], *NO_FIGURES)
    wall = section(text, 7)
    assert row(wall, "stsb-none-s1").endswith("| 3 |")
    assert row(wall, "mnli-none-s1").endswith("| 1 |")
    # a set that selected nothing is not called the model-selection set
    assert "`stsb` / `stsb_dev`: in-domain (last epoch scored, no model selection)" in text
    assert "`mnli` / `mnli_dev_matched`: in-domain (model selection)" in text


def test_how_concentrated_the_baselines_errors_are(full, tmp_path):
    # MNLI: every wrong prediction is gold + 1, so each gold row's errors all go to one
    # label: distance 0.5 (the most with three labels), top 100; 10 + 5 errors.
    assert row(section(full[0], 8), "mnli | mnli_dev_matched") == (
        "| mnli | mnli_dev_matched | 2 | 3 labels | 15 | 0.500 | 100.0 | — |"
    )
    # STS-B, binned as TAT bins ([0, 5] in 10): gold bins 2, 4, 6, 8, 9; predicted 3, 4,
    # 6, 8, 7: two errors, one of them one bin off. Rows 2 and 9 put all on one bin
    # (distance 8/9, top 1), rows 4, 6, 8 have no error (uniform: 0, 1/9).
    gold = [1.0, 2.0, 3.0, 4.0, 5.0]
    stsb = unit("stsb", "none", 1, {"stsb_dev": eval_set(None, gold, [1.6, 2.0, 3.0, 4.0, 3.9])})
    text = section(run(tmp_path, [stsb], *NO_FIGURES), 8)
    assert (
        row(text, "stsb | stsb_dev")
        == "| stsb | stsb_dev | 1 | 10 bins | 2 | 0.356 | 46.7 | 50.0 |"
    )


def test_targeting_ablated_is_tat_against_tat_uniform_on_the_paired_seed(tmp_path):
    units = [mnli_unit("tat", 1), mnli_unit("tat", 2), mnli_unit("tat_uniform", 1)]
    text = section(run(tmp_path, units, *NO_FIGURES), 3)
    ablated = text[text.index("### `tat` against `tat_uniform`") :]
    # tat seed 1 is right on all 20, tat_uniform seed 1 misses 2: +10 points on seed 1
    assert row(ablated, "mnli | mnli_dev_matched").startswith(
        "| mnli | mnli_dev_matched | 95.00 ± 7.07 | 90.00 ± n/a | +10.00 (s1 +10.00) |"
    )
    assert "No `tat_oracle` units: not run yet." in text


def test_mtdnn_recipe_pointed_by_the_gradient_against_its_random_direction(tmp_path):
    units = [mnli_unit("tat_mtdnn", 1), mnli_unit("tat_mtdnn_attack", 1)]
    text = section(run(tmp_path, units, *NO_FIGURES), 3)
    pointed = text[text.index("### `tat_mtdnn_attack` against `tat_mtdnn`") :]
    assert row(pointed, "mnli | mnli_dev_matched").startswith(
        "| mnli | mnli_dev_matched | 95.00 ± n/a | 80.00 ± n/a | +15.00 (s1 +15.00) |"
    )
    # both miss example 0 the same way; only tat_mtdnn misses 1-3: 17 of 20 alike
    assert row(pointed, "mnli | mnli_dev_matched").endswith("| 85.0 |")
    assert "No `tat` units: not run yet." in text


def with_command(record, flags):
    record["command"] = f"python train.py {flags} --seed {record['seed']} --output_dir runs/x"
    return record


def test_sweep_judges_each_setting_against_its_defaults_on_the_in_domain_set(tmp_path):
    units = [
        with_command(mnli_unit("tat", 1), "--adv tat"),
        with_command(mnli_unit("tat", 2), "--adv tat"),
        with_command(mnli_unit("tat_eps0.1", 1), "--adv tat --adv_epsilon 0.1 --adv_step_size 1.0"),
        with_command(mnli_unit("smart", 1), "--adv smart --adv_alpha 1"),
        with_command(mnli_unit("smart_alpha3", 1), "--adv smart --adv_alpha 3"),
        with_command(mnli_unit("none", 1), "--adv none"),
    ]
    stsb = [
        unit("stsb", method, 1, {"stsb_dev": eval_set(None, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])})
        for method in ("tat", "tat_uniform")
    ]
    for record in stsb:
        record["checkpoint"] = "last"  # no model-selection set: not swept
    text = section(run(tmp_path, units + stsb, *NO_FIGURES), 9)
    tat = block(text, "`mnli` / `mnli_dev_matched`: `tat`")
    assert (
        row(tat, "tat (defaults)")
        == "| tat (defaults) | abcdef1 | — | 2 | 95.00 ± 7.07 | — | — | — |"
    )
    # paired with tat seed 1 (100%) only; the seed and output flags are not changes
    assert row(tat, "tat_eps0.1 | abcdef1").startswith(
        "| tat_eps0.1 | abcdef1 | `--adv_epsilon 0.1 --adv_step_size 1.0` | 1 | 85.00 ± n/a "
        "| -15.00 (s1 -15.00) |"
    )
    assert "No setting is ahead of the defaults: the defaults stand." in tat
    smart = block(text, "`mnli` / `mnli_dev_matched`: `smart`")
    assert row(smart, "smart_alpha3 | abcdef1").endswith(
        "| +50.00 (s1 +50.00) | [+30.00, +70.00] | ahead |"
    )
    assert "Ahead of the defaults: `smart_alpha3`." in text
    # below each table: every setting against standard training on every set
    assert "Each setting against `none` on every set" in tat
    cell = row(tat, "tat_eps0.1 | 1").split(" | ")[2]  # held-out MNLI: 85% against 50%
    assert cell.startswith("+35.00 [") and cell.endswith("] ahead"), cell
    assert row(tat, "tat | 2").split(" | ")[2].startswith("+50.00 [")  # seed 1 only: 100 - 50
    assert "`mnli_dev_matched`: `none`" not in text and "`stsb`" not in text


def test_sweep_says_when_no_method_has_other_settings(tmp_path):
    text = section(run(tmp_path, [mnli_unit("none", 1), mnli_unit("tat", 1)], *NO_FIGURES), 9)
    assert "No method has a setting besides its defaults yet." in text


def test_agreement_is_the_share_of_same_predictions_with_the_same_seed(tmp_path):
    units = [mnli_unit(m, s) for m, s in [("none", 1), ("none", 2), ("tat", 1), ("tat", 2)]]
    units.append(mnli_unit("smart", 1))
    units.append(unit("stsb", "none", 1, {"stsb_dev": eval_set(None, [1.0, 2.0], [1.0, 2.0])}))
    text = section(run(tmp_path, units, *NO_FIGURES), 10)
    vs_none = block(text, "Study `mnli`: against `none`")
    assert vs_none.splitlines()[2] == "| method | mnli_dev_matched | scitail_test |"
    # seed 1: none misses 0-9, tat none: 10 of 20 alike; seed 2: none misses 0-4, tat
    # 18-19: 13 of 20. SciTail: tat predicts [0, 1, 0, 0], the others [0, 0, 0, 0].
    assert row(vs_none, "tat") == "| tat | 57.5 | 75.0 |"
    assert row(vs_none, "smart") == "| smart | 100.0 | 100.0 |"
    vs_smart = block(text, "Study `mnli`: against `smart`")
    assert row(vs_smart, "tat") == "| tat | 50.0 | 75.0 |"  # seed 1 only
    assert row(vs_smart, "none") == "| none | 100.0 | 100.0 |"
    assert "stsb" not in text  # regression: no labels to agree on


def test_tat_against_smart_at_each_setting_both_ran(tmp_path):
    units = [mnli_unit(m, 1) for m in ("tat_eps0.1", "smart_eps0.1", "smart_alpha3")]
    text = section(run(tmp_path, units, *NO_FIGURES), 3)
    pair = block(text, "`tat_eps0.1` against `smart_eps0.1`")
    # tat_eps0.1 misses 0-2, smart_eps0.1 0-4: +10 points, 18 of 20 predicted alike
    assert row(pair, "mnli | mnli_dev_matched").startswith(
        "| mnli | mnli_dev_matched | 85.00 ± n/a | 75.00 ± n/a | +10.00 (s1 +10.00) |"
    )
    assert row(pair, "mnli | mnli_dev_matched").endswith("| 90.0 |")
    assert "smart_alpha3`" not in text  # no tat_alpha3: no pair


def test_tat_against_smart_is_drawn_for_every_setting_both_ran(tmp_path):
    units = [mnli_unit(m, 1) for m in ("tat", "smart", "tat_eps0.1", "smart_eps0.1")]
    text = section(run(tmp_path, units, *NO_FIGURES), 3)
    forest = block(text, "TAT against SMART, every setting at once")
    assert "(figures/tat_vs_smart.png)" in forest
    assert_png(tmp_path / "out" / "figures" / "tat_vs_smart.png")


def test_without_a_tat_and_smart_pair_there_is_no_forest_and_an_old_one_goes(tmp_path):
    figures = tmp_path / "out" / "figures"
    figures.mkdir(parents=True)
    (figures / "tat_vs_smart.png").write_bytes(PNG_MAGIC)  # from an earlier, fuller run
    text = run(tmp_path, [mnli_unit("tat", 1), mnli_unit("smart_eps0.1", 1)], *NO_FIGURES)
    assert "every setting at once" not in text
    assert not (figures / "tat_vs_smart.png").exists()


def test_a_bound_that_rounds_to_zero_shows_its_first_digit():
    assert report.bound_text(-0.404) == "-0.40"
    assert report.bound_text(1.5) == "+1.50"
    assert report.bound_text(-0.0031) == "-0.003"  # not -0.00: "behind" must be readable
    assert report.bound_text(0.00042) == "+0.0004"
    assert report.bound_text(0.0) == "+0.00"


def test_a_command_that_cannot_be_parsed_is_an_error_naming_the_unit(tmp_path, capsys):
    units = [
        with_command(mnli_unit("tat", 1), "--adv tat"),
        with_command(mnli_unit("tat_eps0.1", 1), "--adv tat --note 'unclosed"),
    ]
    results = write_units(tmp_path / "results", units)
    argv = ["--results", str(results), "--out", str(tmp_path / "out"), *BOOTSTRAP, *NO_FIGURES]
    assert report.main(argv) == 2
    err = capsys.readouterr().err
    assert "mnli-tat_eps0.1-s1" in err and "cannot read its command" in err
    assert not (tmp_path / "out" / "report.md").exists()


def git_repo_with_a_flag_added_later(folder: Path) -> tuple[str, str]:
    """A repository whose config gains ``fast_dropout`` in its second commit."""
    config = folder / "mt_dnn" / "config.py"
    config.parent.mkdir(parents=True)
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    commits = []
    for fields in (["    seed: int = 1"], ["    seed: int = 1", "    fast_dropout: bool = True"]):
        config.write_text("class Config:\n" + "\n".join(fields) + "\n", encoding="utf-8")
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "config"], check=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        commits.append(head.stdout.strip())
    return commits[0], commits[1]


@pytest.mark.parametrize("defaults_have_the_flag", [False, True])
def test_a_flag_restating_what_older_code_did_is_no_change(tmp_path, defaults_have_the_flag):
    older, newer = git_repo_with_a_flag_added_later(tmp_path / "repo")
    defaults = [with_command(mnli_unit("tat", s), "--adv tat") for s in (1, 2)]
    for record in defaults:
        record["commit"] = newer if defaults_have_the_flag else older
    setting = with_command(
        mnli_unit("tat_eps0.1", 1), "--adv tat --fast_dropout false --adv_epsilon 0.1"
    )
    setting["commit"] = newer
    text = run(tmp_path, [*defaults, setting], *NO_FIGURES, "--repo", str(tmp_path / "repo"))
    tat = block(section(text, 9), "`mnli` / `mnli_dev_matched`: `tat`")
    # on the newer code a missing --fast_dropout means true, so false is a change there
    expected = (
        "--fast_dropout false --adv_epsilon 0.1" if defaults_have_the_flag else "--adv_epsilon 0.1"
    )
    assert row(tat, f"tat_eps0.1 | {newer[:7]}").startswith(
        f"| tat_eps0.1 | {newer[:7]} | `{expected}` |"
    )


def test_the_report_knows_the_flags_the_trainer_gained_later():
    from mt_dnn.trainer import BEFORE_ADDED

    as_flags = {f"--{k}": str(v).lower() for k, v in BEFORE_ADDED.items()}
    assert report.BEFORE_ADDED == as_flags


def test_section_11_says_which_verdicts_hold_when_the_seeds_are_drawn_too(tmp_path):
    # 200 held-out rows, gold 0; standard training is right on the first 100 with both
    # seeds. SMART: seed 1 right everywhere (+50), seed 2 on the first 60 only (-20):
    # "ahead" over examples (+15), not with seed 2 drawn twice. TAT: +50 on both seeds,
    # which holds. Each verdict is listed once: `smart` - `none`, not also its mirror.
    # R3F has one seed: its verdicts are not re-examined.
    def held_out(method, seed, right):
        pred = [0 if i < right else 1 for i in range(200)]
        return unit("mnli", method, seed, {"mnli_dev_matched": eval_set(MNLI, [0] * 200, pred)})

    rights = {("none", 1): 100, ("none", 2): 100, ("smart", 1): 200, ("smart", 2): 60,
              ("tat", 1): 200, ("tat", 2): 200, ("r3f", 1): 200}  # fmt: skip
    units = [held_out(m, s, r) for (m, s), r in rights.items()]
    text = section(run(tmp_path, units, *NO_FIGURES), 11)
    smart = row(text, "mnli | mnli_dev_matched | `smart` − `none`")
    assert "+15.00 (s1 +50.00, s2 -20.00)" in smart and "ahead" in smart
    assert smart.endswith("no difference | **no** |")
    assert row(text, "mnli | mnli_dev_matched | `tat` − `none`").endswith("ahead | yes |")
    assert "`none` − `smart`" not in text
    assert "`r3f`" not in text
    # TAT - SMART: seed 1 +0, seed 2 +70; drawing seed 1 twice gives 0, on the bound.
    assert row(text, "mnli | mnli_dev_matched | `tat` − `smart`").endswith("| **no** |")
    assert text.rstrip().endswith("1 of 3 verdicts hold with the seeds resampled too.")


def test_section_11_with_one_seed_each_says_so(tmp_path):
    text = section(run(tmp_path, [mnli_unit("none", 1), mnli_unit("tat", 1)], *NO_FIGURES), 11)
    assert "No verdict above rests on two or more paired seeds yet." in text


README_TEXT = f"""# A study

Intro kept as it is.

{report.README_BEGIN}
a stale table
{report.README_END}

Notes after the tables, kept too.
"""


def test_the_readmes_unit_tables_are_rendered_between_its_markers(tmp_path):
    # --out's README.md: only the lines between the markers change, and a second run
    # leaves the file as the first left it.
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text(README_TEXT, encoding="utf-8")
    units = [mnli_unit("tat", 2), mnli_unit("none", 1), *glue_units()]
    units[-1]["eval"]["stsb_dev"]["metrics"] = {"spearman": 90.0, "pearson": 90.0}
    units[-1]["history"][0]["dev"]["stsb_dev"]["pearson"] = 80.5
    run(tmp_path, units, *NO_FIGURES)
    text = (out / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# A study\n\nIntro kept as it is.\n\n" + report.README_BEGIN + "\n")
    assert text.endswith(report.README_END + "\n\nNotes after the tables, kept too.\n")
    assert "stale" not in text
    mnli = text[text.index("`mnli`, accuracy on each set") :]
    assert "| unit | code | wall | `mnli_dev_matched` | `scitail_test` |" in mnli
    # by method as the report orders them (none before tat), then seed; 2 attempts noted
    assert mnli.index("| mnli-none-s1 |") < mnli.index("| mnli-tat-s2 |")
    assert (
        row(mnli, "mnli-tat-s2") == "| mnli-tat-s2 | abcdef1 | 330 s (2 attempts) | 90.00 | 75.00 |"
    )
    assert row(mnli, "mnli-none-s1") == "| mnli-none-s1 | abcdef1 | 100 s | 50.00 | 50.00 |"
    # one set: every metric, in its task file's order (Pearson first), and the first per epoch
    stsb = text[text.index("`stsb` on `stsb_dev`") :]
    assert "| unit | code | wall | Pearson | Spearman | Pearson per epoch |" in stsb
    assert row(stsb, "stsb-tat-s1") == "| stsb-tat-s1 | abcdef1 | 100 s | 90.00 | 90.00 | 80.50 |"
    assert "`rte` on `rte_dev`" in text and row(text, "rte-tat-s1").endswith("| 100.00 | 100.00 |")
    run(tmp_path, units, *NO_FIGURES)
    assert (out / "README.md").read_text(encoding="utf-8") == text


def test_a_readme_without_markers_is_an_error_and_nothing_is_written(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# No markers here\n", encoding="utf-8")
    results = write_units(tmp_path / "results", [mnli_unit("none", 1)])
    argv = ["--results", str(results), "--out", str(tmp_path / "out"), "--readme", str(readme)]
    assert report.main([*argv, *BOOTSTRAP]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(readme) in err and "markers" in err
    assert readme.read_text(encoding="utf-8") == "# No markers here\n"
    assert not (tmp_path / "out").exists()  # no report.md, no figures
    # '' renders the report and leaves every README alone
    assert report.main([*argv[:-2], "--readme", "", *BOOTSTRAP]) == 0
    assert (tmp_path / "out" / "report.md").exists()
    assert not (tmp_path / "out" / "README.md").exists()
    assert any((tmp_path / "out" / "figures").glob("*.png"))  # what the error run did not draw

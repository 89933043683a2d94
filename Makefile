# FVI on Triton. The two commands of a fresh machine: `make serve` and `make test`.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-train setup-convert engines serve triton lint test test-fast bench load-test accuracy eval train train-data dataset clean

setup:            ## apt packages, virtualenv, tritonserver binary, perf_analyzer (idempotent)
	bash scripts/setup.sh serve

setup-train: setup ## + PyTorch CPU for training
	bash scripts/setup.sh train

setup-convert:    ## TensorFlow + tf2onnx in their own virtualenv (.venv-tf) for converters/tf_to_onnx.py
	VENV=.venv-tf bash scripts/setup.sh convert

engines: setup    ## committed ONNX -> model_repository/*/1 (validated); TensorRT plans where a GPU exists
	$(PY) -m converters.install_engines

serve: engines    ## embedded tritonserver + FastAPI gateway on :8080 (Ctrl-C stops both)
	$(PY) -m gateway.serve

triton: engines   ## only the embedded tritonserver (gRPC :8001, HTTP :8000, metrics :8002)
	$(PY) -m fvi.triton_launcher

lint: setup       ## ruff (pyproject.toml [tool.ruff])
	.venv/bin/ruff check .

test: engines setup-convert lint ## the whole suite, end-to-end tests included (starts and stops its own servers)
	$(PY) -m pytest -q

test-fast: engines ## unit tests only
	$(PY) -m pytest -q -m "not e2e"

bench: engines    ## perf_analyzer on fvi_ensemble + in-process reference -> reports/bench.md
	$(PY) -m bench.run

load-test: engines ## gateway under load with a Triton restart midway -> reports/load_test.md (DURATION=600 CONCURRENCY=16)
	$(PY) -m bench.load_test --duration $(or $(DURATION),600) --concurrency $(or $(CONCURRENCY),16)

accuracy: engines ## end-to-end exact match per field on held-out synthetic cards -> reports/accuracy.md
	$(PY) -m bench.accuracy --cards 200

EVAL_SET = $(if $(filter wild,$(CAPTURE)),_wild)$(if $(filter invented,$(WORDS)),_invented)$(if $(filter held_out,$(DOMAIN)),_held_out)
eval: engines     ## the evaluation: served ensemble + in-process pipeline + Tesseract -> reports/eval.md (CARDS=500 per card type; CAPTURE=wild, WORDS=invented, DOMAIN=held_out -> reports/eval_<those>/)
	$(PY) -m bench.evaluate --cards-per-type $(or $(CARDS),500) $(if $(filter wild,$(CAPTURE)),--capture wild) \
		$(if $(filter invented,$(WORDS)),--invented-words) $(if $(filter held_out,$(DOMAIN)),--domain held_out) \
		--out reports$(if $(EVAL_SET),/eval$(EVAL_SET))

train-data: setup-train ## the reader's cached training data (data/cache): the served detector's lines on synthetic photos, rendered lines
	bash training/train_all.sh data

train: setup-train ## the reader's data, training and export into models/ (about 1.3 hours on 2 CPU cores; fine-tunes the committed one, INIT=0 starts over)
	bash training/train_all.sh

dataset: setup    ## a labelled set of photographed cards: make dataset OUT=data/cards N=100 SEED=7
	$(PY) -m fvi.synth.dataset --out $(or $(OUT),data/cards) --count $(or $(N),100) --seed $(or $(SEED),7)

clean:
	rm -rf run reports/tmp model_repository/*/1/model.onnx model_repository/*/1/model.plan

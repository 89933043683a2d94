#!/usr/bin/env bash
# Train, evaluate and export the three models from scratch on CPU (about 80 minutes on 2 cores).
# One model at a time: two trainings sharing 2 cores slow each other several-fold (thread oversubscription).
# The exported ONNX files and model cards land in models/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-2}
[ -f data/cache/cropper_train.npz ] || $PY -m training.make_data --split train --seed 1 --flat 3000 --lines 20000 --cropper 8000
[ -f data/cache/cropper_val.npz ] || $PY -m training.make_data --split val --seed 2 --flat 200 --lines 1000 --cropper 400
$PY -m training.detector train --steps ${DETECTOR_STEPS:-800} --threads $THREADS && $PY -m training.detector export
$PY -m training.cropper train --steps ${CROPPER_STEPS:-2000} --threads $THREADS && $PY -m training.cropper export
# the reader: one run, then a fine-tune at a lower rate from a copy of its weights (as in models/reader.md)
$PY -m training.reader train --steps ${READER_STEPS:-2500} --threads $THREADS
cp data/runs/reader.pt data/runs/reader_base.pt && cp data/runs/reader.args.json data/runs/reader_base.args.json
$PY -m training.reader train --steps ${READER_FINETUNE_STEPS:-1500} --lr 0.0005 --seed 1 --init data/runs/reader_base.pt \
  --threads $THREADS && $PY -m training.reader export

#!/usr/bin/env bash
# Train, evaluate and export the three models from scratch on CPU (about an hour on 2 cores).
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
$PY -m training.reader train --steps ${READER_STEPS:-2500} --threads $THREADS && $PY -m training.reader export

#!/usr/bin/env bash
# Train, evaluate and export the three models from scratch on CPU (about 100 minutes on 2 cores).
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
# the reader: one run, then fine-tunes at lower rates, each from a copy of the weights before it
# (the commands models/reader.md lists)
$PY -m training.reader train --steps ${READER_STEPS:-2500} --threads $THREADS
for stage in base:1500:0.0005:1 ft1:1500:0.0003:2; do
  IFS=: read -r copy steps lr seed <<< "$stage"
  cp data/runs/reader.pt "data/runs/reader_$copy.pt" && cp data/runs/reader.args.json "data/runs/reader_$copy.args.json"
  $PY -m training.reader train --steps "$steps" --lr "$lr" --seed "$seed" --init "data/runs/reader_$copy.pt" --threads $THREADS
done
$PY -m training.reader export

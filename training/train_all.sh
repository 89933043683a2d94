#!/usr/bin/env bash
# Make the reader's training data and train, evaluate and export it on CPU (about 1.3 hours on 2 cores:
# 20 minutes of data, 3,000 fine-tuning steps at about 1.1 s each on one core).
# Only the reader is trained here: the text detector is PP-OCRv4's DB net as a package ships it, trained on real
# photos (converters/db_detector.py), and the cropper is a homography from the printed labels, with no net.
# The reader's crops are cut as the service cuts them: the served detector's lines on photographed cards.
# The exported ONNX file, model card and PyTorch weights land in models/.
# The served reader is the committed one fine-tuned on this data (its own from-scratch lineage, fifteen
# commands on the earlier pipeline's crops, is in docs/history.md and models/reader.md); INIT=0 starts over
# from random weights instead (3,000 steps are then far too few).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p data/logs
data() {  # `train_all.sh data`: only this, the Makefile's train-data
  # a step whose file is already in data/cache is skipped (delete data/cache to make everything again)
  step() { local file=$1; shift; [ -f "data/cache/$file" ] || $PY -m training.make_data "$@"; }
  local only="--lines 0 --card-types mixed"
  step reader_det-mild_val.npz --split val --seed 2 $only --reader-det 120 --capture mild
  step reader_det-wild_val.npz --split val --seed 4 $only --reader-det 120 --capture wild
  step reader_det-mild-invented_val.npz --split val --seed 6 $only --reader-det 120 --capture mild --invented-words
  step reader_lines_val.npz --split val --seed 8 --lines 2000
  step reader_det-mild_train.npz --split train --seed 1 $only --reader-det 1800 --capture mild
  step reader_det-wild_train.npz --split train --seed 3 $only --reader-det 1200 --capture wild
  step reader_det-mild-invented_train.npz --split train --seed 5 $only --reader-det 1000 --capture mild --invented-words
  step reader_lines_train.npz --split train --seed 7 --lines 12000
}
data
if [ "${1:-}" = data ]; then exit; fi
init() {  # INIT=1 (default): start from the served net's committed weights
  [ "${INIT:-1}" = 1 ] || return 0
  echo "--init models/checkpoints/$1.pt --lr $2"
}
$PY -m training.reader train --steps "${READER_STEPS:-3000}" --threads 1 --eval-every 500 --loss-per char \
  --seed 35 $(init reader 0.0005) > data/logs/reader.log 2>&1
$PY -m training.reader export >> data/logs/reader.log 2>&1
echo "done: models/reader.onnx, models/reader.md (log in data/logs/reader.log)"

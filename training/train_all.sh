#!/usr/bin/env bash
# Train, evaluate and export the three models from scratch on CPU: about 3 hours on 2 cores, the reader's
# 12,000 steps (0.8-0.9 s each on one core) being the long pole; the detector and cropper take 1.5 hours beside it.
# Two trainings at a time, one thread each: the reader on one core, the detector then the cropper on the
# other (two trainings of 2 threads each on 2 cores slow each other several-fold; one thread each does not).
# The exported ONNX files, model cards and PyTorch weights land in models/.
# To continue from the committed weights instead of starting over: INIT=1 (fine-tunes at a lower rate).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p data/logs
data() {  # all three card types, wild and mild capture (`train_all.sh data`: only this, the Makefile's train-data)
  # a step whose last file is already in data/cache is skipped: a cache made before a step existed gains
  # only what it lacks (delete data/cache to make everything again)
  step() { local last=$1; shift; [ -f "data/cache/$last" ] || $PY -m training.make_data "$@"; }
  step cropper_refine_train.npz --split train --seed 1 --flat 4000 --lines 30000 --cropper 8000 --cropper-refine 4000 --card-types mixed --capture wild
  step cropper_refine_val.npz --split val --seed 2 --flat 300 --lines 1000 --cropper 600 --cropper-refine 300 --card-types mixed --capture wild
  # the cropper's further photos: mild capture (its corners moved up to a fifth of the card, which wild's
  # turned card never does) and two more wild batches, each with its second-look views
  step cropper_refine-mild_train.npz --split train --seed 61 --flat 0 --lines 0 --cropper 6000 --cropper-refine 3000 --cropper-tag mild --card-types mixed --capture mild
  step cropper_refine-wild_train.npz --split train --seed 63 --flat 0 --lines 0 --cropper 4000 --cropper-refine 2000 --cropper-tag wild --card-types mixed --capture wild
  step cropper_refine-wild2_train.npz --split train --seed 65 --flat 0 --lines 0 --cropper 4000 --cropper-refine 2000 --cropper-tag wild2 --card-types mixed --capture wild
  # the reader's card crops: as many in mild capture as in wild (wild alone costs it precision on clean cards)
  local only="--flat 0 --lines 0 --cropper 0 --card-types mixed"
  step reader_cards-mild_train.npz --split train --seed 1 $only --reader-cards 2000 --capture mild
  step reader_cards-wild_train.npz --split train --seed 3 $only --reader-cards 2000 --capture wild
  step reader_cards-mild_val.npz --split val --seed 2 $only --reader-cards 200 --capture mild
  # and three more batches of each, on seeds of their own: the reader was still learning from more cards
  step reader_cards-mild-b_train.npz --split train --seed 11 $only --reader-cards 4000 --reader-cards-tag b --capture mild
  step reader_cards-wild-b_train.npz --split train --seed 13 $only --reader-cards 4000 --reader-cards-tag b --capture wild
  step reader_cards-mild-c_train.npz --split train --seed 21 $only --reader-cards 4000 --reader-cards-tag c --capture mild
  step reader_cards-wild-c_train.npz --split train --seed 23 $only --reader-cards 4000 --reader-cards-tag c --capture wild
  step reader_cards-mild-d_train.npz --split train --seed 31 $only --reader-cards 4000 --reader-cards-tag d --capture mild
  step reader_cards-wild-d_train.npz --split train --seed 33 $only --reader-cards 4000 --reader-cards-tag d --capture wild
  # cards whose names and places are random syllables: the reader learns marks, not the name lists' words
  step reader_cards-mild-invented_train.npz --split train --seed 41 $only --reader-cards 4000 --invented-words --capture mild
  # fresh batches of crops in each style and of invented names (tag, seed, invented-name cards): commands 10 and 11
  # (e, f; with more rendered lines below), commands 14 and 15 (h; the first weighing every character alike)
  for b in "e 71 3000" "f 81 3000" "h 101 4000"; do
    set -- $b
    step reader_cards-mild-$1_train.npz --split train --seed $2 $only --reader-cards 4000 --reader-cards-tag $1 --capture mild
    step reader_cards-wild-$1_train.npz --split train --seed $(($2 + 2)) $only --reader-cards 3000 --reader-cards-tag $1 --capture wild
    step reader_cards-mild-invented-$1_train.npz --split train --seed $(($2 + 4)) $only --reader-cards $3 --reader-cards-tag $1 --invented-words --capture mild
  done
  # and more invented names, then more wild cards (commands 12 and 13)
  step reader_cards-mild-invented-g_train.npz --split train --seed 91 $only --reader-cards 4000 --reader-cards-tag g --invented-words --capture mild
  step reader_cards-wild-g_train.npz --split train --seed 93 $only --reader-cards 3000 --reader-cards-tag g --capture wild
  step reader_lines-e_train.npz --split train --seed 77 --flat 0 --lines 20000 --lines-tag e --cropper 0 --card-types mixed
  step reader_cards-mild-invented_val.npz --split val --seed 2 $only --reader-cards 200 --invented-words --capture mild
  step reader_cards-wild-invented_val.npz --split val --seed 2 $only --reader-cards 200 --invented-words --capture wild
}
data
if [ "${1:-}" = data ]; then exit; fi
# INIT=1: start from the served net's committed weights
init() {
  [ -n "${INIT:-}" ] || return 0
  echo "--init models/checkpoints/$1.pt --lr $2"
}
(
  $PY -m training.detector train --steps "${DETECTOR_STEPS:-1500}" --threads 1 $(init detector 0.001) && $PY -m training.detector export
  $PY -m training.cropper train --steps "${CROPPER_STEPS:-3000}" --threads 1 --data cropper,cropper-mild,cropper-wild,cropper-wild2 $(init cropper 0.001) && $PY -m training.cropper export
) > data/logs/detector_cropper.log 2>&1 &
maps=$!
$PY -m training.reader train --steps "${READER_STEPS:-12000}" --threads 1 --data cards-mild,cards-wild,cards-mild-b,cards-wild-b,cards-mild-c,cards-wild-c,cards-mild-d,cards-wild-d,cards-mild-invented,cards-mild-invented,cards-mild-invented,lines,cards-mild-e,cards-wild-e,cards-mild-invented-e,lines-e,cards-mild-f,cards-wild-f,cards-mild-invented-f,cards-mild-invented-g,cards-wild-g,cards-mild-h,cards-mild-invented-h,cards-wild-h --loss-per char $(init reader 0.0005) > data/logs/reader.log 2>&1
$PY -m training.reader export >> data/logs/reader.log 2>&1
wait $maps
echo "done: models/*.onnx, models/*.md (logs in data/logs)"

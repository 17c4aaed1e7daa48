#!/usr/bin/env bash
# `make demo`: the whole pipeline on the embedded synthetic `sample` data, offline, on CPU.
# train -> export (ONNX + TFLite, float + int8, parity gate) -> bench -> attack -> visualize -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGE=".venv/bin/edge-tl"
RUN="runs/demo"
OUT="exported"
export MPLBACKEND=Agg

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/7 data check (the embedded synthetic 'sample' data)"
$EDGE data check sample

step "2/7 train: pretrained mobilenet_v2, frozen features, linear head"
$EDGE train --data sample --backbone mobilenet_v2 --out "$RUN" --force

step "3/7 export: ONNX and TFLite, float and full int8, each checked against the PyTorch model"
$EDGE export --model "$RUN" --format all --quantize none --out "$OUT" --force
$EDGE export --model "$RUN" --format all --quantize int8 --out "$OUT" --force

step "4/7 bench: every artefact at 1 and 2 threads"
$EDGE bench "$RUN" "$OUT"/model.onnx "$OUT"/model_int8.onnx "$OUT"/model.tflite "$OUT"/model_int8.tflite \
  --threads 1,2 --min-time 1 --json "$RUN/bench.json" --plot "$RUN/bench.png"

step "5/7 attack: white-box transfer + black-box on the deployed ONNX files"
$EDGE attack --model "$OUT"/model.onnx --model "$OUT"/model_int8.onnx --n 24 \
  --attacks fgsm,pgd,square --eps 1/255,2/255,4/255,8/255 --queries 300 \
  --json "$RUN/attack.json" --out "$RUN/attack"

step "6/7 visualize: the ideal image of each class"
CLASSES=$(.venv/bin/python -c "import json;print(','.join(json.load(open('$RUN/card.json'))['classes'][:3]))")
$EDGE visualize --model "$RUN" --class "$CLASSES" --out "$RUN/ideal.png"

step "7/7 report"
$EDGE report "$RUN"

step "done: outputs"
echo "run folder:        $RUN/  (model.pt, card.json, split.json, history.json, curves.png, confusion.png)"
echo "exported:          $(ls "$OUT"/*.onnx "$OUT"/*.tflite | tr '\n' ' ')"
echo "bench:             $RUN/bench.json, $RUN/bench.png"
echo "attack:            $RUN/attack.json, $RUN/attack/"
echo "ideal-class image: $RUN/ideal.png"
echo "HTML report:       $RUN/report.html"

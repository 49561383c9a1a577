#!/bin/bash
# CamVid from scratch on a CPU, twice (seeds 0 and 1), through the
# folder-dataset command line (README, "Train on your own data"); then the
# report (BENCHMARKS.md, "CamVid from scratch in an hour").
#
#   bash benchmarks/camvid_from_scratch.sh [CAMVID_ROOT] [OUT]
#
# Each run is timed by `date`; run it on an otherwise idle machine.
set -euo pipefail
camvid=${1:-../shared/data/camvid}
out=${2:-runs}
python=${PYTHON:-python}
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/^/# /'
$python benchmarks/camvid_from_scratch.py layout "$camvid" data/camvid11
for seed in 0 1; do
    start=$(date +%s)
    keras-ann train ann_r18_d16_camvid_cpu_1h --precision mixed_bfloat16 --seed $seed \
        --dataset folder --data-root data/camvid11 --num-classes 11 --label-map 11:255 \
        --classes sky,building,pole,road,pavement,tree,sign_symbol,fence,car,pedestrian,bicyclist \
        --checkpoint-interval 100 --work-dir "$out/camvid_seed$seed" --restart
    echo "seed $seed: $(( $(date +%s) - start )) s of wall time"
done
$python benchmarks/camvid_from_scratch.py report "$out/camvid_seed0" "$out/camvid_seed1" \
    --data-root "$camvid" --curves docs/camvid_curves.png --picture docs/camvid_prediction.png

#!/usr/bin/env bash
# Every GPU measurement the trainer's and the evidence issues ask for, in one call of under
# 10 minutes on one H100/H200 (each step has its own time limit; a step that fails or times
# out does not stop the next). Everything is printed and kept in $OUT/gpu_check.log (default
# OUT=out/gpu); the ResNet20 run's metrics.jsonl is copied there too.
#
# Prepare on the build machine (CIFAR-10 travels as the 18 MB JPEG archive, decoded there):
#     mkdir -p .gpu && cp ../shared/data/make_cifar10.py ../shared/data/cifar10_jpeg_q75.npz .gpu/
# then run from the repository root on the GPU machine (the package needs no install there,
# only torch, torchvision, numpy, pandas, pyarrow, matplotlib, scipy, tqdm and pytest):
#     bash benchmarks/gpu_check.sh
set -u
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-out/gpu}"
DATA="${GPU_CHECK_DATA:-/tmp/selectivity-cifar}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"  # cpu only to try the script itself out
mkdir -p "$OUT"

LOG="$OUT/gpu_check.log"

step() {  # step NAME SECONDS COMMAND...: run one check under a time limit, its output to stdout and the log
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | grep -v "^\s*$" | tee -a "$LOG"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - started))s" | tee -a "$LOG"
}

# The limits add up to 555 s, inside the device tool's 600 s per command.
step environment 20 bash -c 'nvidia-smi; python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name())"'
step cifar 45 python3 .gpu/make_cifar10.py "$DATA"
step tests 60 python3 -m pytest -q -x tests/test_train_step.py tests/test_regularizer.py tests/test_augment.py
step train_speed 120 python3 benchmarks/train_speed.py --device "$DEVICE" --data-root "$DATA" --steps 100 --warmup 10 --workers 8
# A Tiny ImageNet epoch (ResNet18, 64x64, batch 512, 100,000 images) on random images: the config's runtime.
step train_speed_resnet18 60 python3 benchmarks/train_speed.py --device "$DEVICE" --model resnet18 --stem cifar \
    --image-size 64 --classes 200 --batch-size 512 --epoch-images 100000 --steps 10 --warmup 3 --repeats 1 --workers 8
step regularizer_overhead 45 python3 benchmarks/regularizer_overhead.py --device "$DEVICE"
step measure_speed 30 python3 benchmarks/measure_speed.py --device "$DEVICE" --channels-last
step sweep_throughput 90 python3 benchmarks/sweep_throughput.py --device "$DEVICE" --concurrency 1 2 4 --seconds 10
# A real ResNet20 run of the paper recipe's first 15 epochs (lr 0.1, no decay yet), CUDA graphs on:
# seconds per epoch including each epoch's test-set evaluation, and accuracy so far.
RUNS=/tmp/selectivity-gpu-runs
step resnet20_15_epochs 85 python3 -m selectivity train experiments/resnet20-cifar10.toml --data-root "$DATA" \
    --epochs 15 --alpha -1 --device "$DEVICE" --out "$RUNS" --no-progress --set train.cuda_graphs=true --set evaluation.every=1
cp "$RUNS"/*/seed_0/metrics.jsonl "$OUT/resnet20_metrics.jsonl" 2>/dev/null
python3 -c "
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f\"epoch {r['epoch']:2d}: {r['seconds']:6.2f} s  test acc {r['test_accuracy']:.4f}  mean SI {r['mean_si']:.3f}\")
" "$OUT/resnet20_metrics.jsonl" 2>/dev/null | tee -a "$LOG"

#!/usr/bin/env bash
# The GPU checks owed by the CPU-only sessions, as one script for a device machine (see
# ../shared/device/README.md; results and logs under $OUT):
#   frac   4 trials at 0.5 GPU, 2 at a time on one GPU: both on cuda together; peak_gpu_mb, gpu_device_busy, gpu_util_own
#   ddp1   a trial with a whole GPU (nccl, pinned memory), digits CNN
#   ddp2   2 ranks sharing one GPU (0.5 each: gloo over CUDA tensors)
#   fsdp   FSDP with bf16 mixed precision, then with CPU offload, a whole GPU
# (nccl across ranks, one GPU a rank, needs two GPUs: not on a one-GPU machine.)
# There:  mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site &&
#         export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && bash benchmarks/gpu_check.sh
# Here, the script itself on the CPU path: GPUS=0 OUT=/tmp/gpu_check bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:?set OUT to a folder for the results}
GPUS=${GPUS:-1}  # 0: the CPU path, to check the script where no GPU is
PY=${PY:-python3}
mkdir -p "$OUT"
work=$(mktemp -d)
cd "$(dirname "$0")/.." || exit 2
root=$PWD
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

study() {  # name, resources, trainable, extra parameter lines
  cat > "$work/$1.yaml" <<YAML
name: $1
trainable: $3
metric: {name: val_accuracy, goal: maximize}
method: random
seed: 0
run_cap: 4
max_concurrent: 2
resources: $2
parameters:
  lr: {distribution: log_uniform_values, min: 3e-3, max: 3e-2}
  epochs: {value: 3}
$4
YAML
}

g() { [ "$GPUS" = 0 ] && echo 0 || echo "$1"; }
study frac "{gpus: $(g 0.5)}" trainables.digits:train_cnn "  channels: {values: [8, 16]}"
study ddp1 "{workers: 1, gpus: $(g 1)}" trainables.digits:train_cnn "  channels: {value: 16}"
study ddp2 "{workers: 2, gpus: $(g 0.5)}" trainables.digits:train_cnn "  channels: {value: 16}"
study fsdp "{workers: 1, gpus: $(g 1), strategy: fsdp, mixed_precision: bf16}" trainables.digits:train_mlp "  hidden: {value: 512}
  layers: {value: 3}"
study offload "{workers: 1, gpus: $(g 1), strategy: fsdp, cpu_offload: true}" trainables.digits:train_mlp "  hidden: {value: 512}
  layers: {value: 3}"

for name in frac ddp1 ddp2 fsdp offload; do
  start=$(date +%s)
  (cd "$work" && PYTHONPATH="$root:${PYTHONPATH:-}" timeout 240 "$PY" -m tuner run "$name.yaml" --no-dashboard \
    > "$OUT/$name.log" 2>&1)
  rc=$?
  echo "$name: rc=$rc in $(( $(date +%s) - start )) s" >> "$OUT/summary.txt"
  if [ -d "$work/results/$name" ]; then
    cp -r "$work/results/$name" "$OUT/$name" 2>/dev/null
    "$PY" - "$work/results/$name" >> "$OUT/summary.txt" 2>&1 <<'PYEOF'
import json, sys, pandas as pd
t = pd.read_parquet(f"{sys.argv[1]}/trials.parquet")
cols = ["trial_id", "status", "value", "peak_gpu_mb", "peak_gpu_reserved_mb", "gpu_device_busy", "gpu_util_own", "gpu_util_note", "peak_rss_mb", "s_per_step"]
print(t[[c for c in cols if c in t]].to_string(index=False))
span = {}  # trial -> [start, end] from the journal: how many ran at once
for line in open(f"{sys.argv[1]}/journal.jsonl"):
    e = json.loads(line)
    if e["e"] in ("start", "end") and "t" in e:
        span.setdefault(e["trial"], [None, None])[e["e"] == "end"] = e["t"]
edges = sorted([(a, 1) for a, b in span.values() if a] + [(b, -1) for a, b in span.values() if b])
running = peak = 0
for _, d in edges:
    running += d
    peak = max(peak, running)
print(f"at most {peak} trial(s) at once")
PYEOF
  fi
done
cat "$OUT/summary.txt"

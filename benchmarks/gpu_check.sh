#!/usr/bin/env bash
# The GPU checks owed by the CPU-only sessions, as one script for a device machine (see
# ../shared/device/README.md; results and logs under $OUT):
#   frac   4 trials at 0.5 GPU, 2 at a time on one GPU: both on cuda together; peak_gpu_mb, gpu_device_busy, gpu_util_own
#   ddp1   a trial with a whole GPU (nccl, pinned memory), digits CNN
#   ddp2   2 ranks sharing one GPU (0.5 each: gloo over CUDA tensors)
#   fsdp   FSDP with bf16 mixed precision, then with CPU offload, a whole GPU
#   warm   16 trials of the packing loop (trainables/anchor_cnn.py) at 0.125 GPU: seconds to the first
#          report of each trial in start order (the first 8 on fresh workers), workers_ready
#   oom    a trial that runs out of memory at batch 256: on_oom: halve_batch retries it at 128 (micro_batch)
#   settle 4 trials of the packing loop with gpus: auto that report only at their end: the others start
#          beside the first once its memory has settled (starts a few seconds apart, not a trial apart)
# (nccl across ranks, one GPU a rank, needs two GPUs: not on a one-GPU machine.)
# There:  mkdir -p /tmp/site && tar xJf .devbundle/site.tar.xz -C /tmp/site &&
#         export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && bash benchmarks/gpu_check.sh
# Here, the script itself on the CPU path: GPUS=0 OUT=/tmp/gpu_check bash benchmarks/gpu_check.sh
# ONLY="warm oom" runs those checks alone.
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
if [ "$GPUS" = 0 ]; then dev=cpu; batch=32; steps=5; warm_trials=4; long=20; else dev=cuda; batch=256; steps=300; warm_trials=16; long=3000; fi
cat > "$work/warm.yaml" <<YAML
name: warm
trainable: trainables.anchor_cnn:train
metric: {name: loss, goal: minimize}
method: random
seed: 0
run_cap: $warm_trials
resources: {gpus: $(g 0.125), cpus: 1}
parameters:
  lr: {distribution: log_uniform_values, min: 0.01, max: 0.1}
  steps: {value: $steps}
  batch: {value: $batch}
  device: {value: $dev}
YAML
cat > "$work/settle.yaml" <<YAML
name: settle
trainable: trainables.anchor_cnn:train
metric: {name: loss, goal: minimize}
method: random
seed: 0
run_cap: 4
resources: {gpus: $([ "$GPUS" = 0 ] && echo 0 || echo auto), cpus: 1}
parameters:
  lr: {distribution: log_uniform_values, min: 0.01, max: 0.1}
  steps: {value: $long}
  report_every: {value: $long}
  batch: {value: $batch}
  device: {value: $dev}
YAML
cat > "$work/oom.yaml" <<YAML
name: oom
trainable: trainables.anchor_cnn:fill_memory
metric: {name: loss, goal: minimize}
method: random
seed: 0
run_cap: 1
on_oom: halve_batch
resources: {gpus: $(g 1)}
parameters:
  batch: {value: 256}
  fill: {value: 0.55}
YAML

for name in ${ONLY:-frac ddp1 ddp2 fsdp offload warm oom settle}; do
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
import yaml
cols = ["trial_id", "status", "attempts", "value", "peak_gpu_mb", "peak_gpu_reserved_mb", "gpu_device_busy",
        "gpu_util_own", "peak_rss_mb", "s_per_step", "metric_micro_batch"]
print(t[[c for c in cols if c in t]].to_string(index=False))
if "gpu_util_note" in t and t["gpu_util_note"].notna().any():
    print("gpu_util_note:", t["gpu_util_note"].dropna().iloc[0])
summary = yaml.safe_load(open(f"{sys.argv[1]}/summary.yaml"))
print("workers_ready:", summary.get("workers_ready"))
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
starts = sorted(a for a, _ in span.values() if a)
print("starts s after the first:", " ".join(f"{t - starts[0]:.1f}" for t in starts))
h = pd.read_parquet(f"{sys.argv[1]}/history.parquet").sort_values("time_s")
if "t_report" in h:  # from the trial's launch by the driver (a worker's start-up included)
    first = h.groupby("trial_id")["t_report"].first() - pd.Series({k: v[0] for k, v in span.items()})
else:  # from the trial's start in its worker
    first = h.groupby("trial_id")["time_s"].first()
print("first report s, trials in start order:", " ".join(f"{first[i]:.1f}" for i in sorted(first.index)))
PYEOF
  fi
done
cat "$OUT/summary.txt"

#!/usr/bin/env bash
# GPU check: training speed on CPU and CUDA, and whether CUDA scores like the CPU.
#
#   bench/gpu_check.sh                      # EPOCHS=3 ROWS=12000 PYTHON=python by default
#   EPOCHS=5 ROWS=50000 bench/gpu_check.sh
#
# For three shapes (window T, hidden H, columns D) it writes a synthetic series,
# fits it for a fixed number of epochs with --device cpu and with --device cuda,
# and prints training windows/s for each: train_windows x epochs_run / seconds
# from the model's training summary (`lstmae info --json`), so reading the data
# and calibrating the threshold count too. Then it scores a test series with the
# CPU-fitted model on the CPU and on the GPU (Detector scores where its model is)
# and prints the largest relative difference between the two sets of window errors.
# Needs an NVIDIA GPU and a CUDA build of torch; it stops with a message otherwise.
set -euo pipefail

PYTHON=${PYTHON:-python}
EPOCHS=${EPOCHS:-3}
ROWS=${ROWS:-12000}

die() {
    echo "gpu_check: $*" >&2
    exit 1
}

command -v nvidia-smi >/dev/null 2>&1 || die "no GPU here: nvidia-smi is not on PATH"
"$PYTHON" -c "import torch" 2>/dev/null || die "$PYTHON cannot import torch"
"$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "no GPU here: torch.cuda.is_available() is False (torch" \
           "$("$PYTHON" -c 'import torch; print(torch.__version__)'); a CPU-only build?)"

cd "$(dirname "$0")/.."  # so that `python -m lstmae` finds this checkout even if not installed
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'on',
torch.cuda.get_device_name(0), '| CPU threads', torch.get_num_threads())"
echo "$ROWS training rows, $EPOCHS epochs (no early stopping), default batch size"
printf '%-18s %12s %12s %8s %22s\n' "shape T/H/D" "cpu win/s" "cuda win/s" "speedup" \
    "max rel diff (score)"

for shape in "64 64 1" "64 64 25" "100 128 38"; do
    read -r T H D <<<"$shape"
    # Sines of different periods and phases plus noise: something to learn, every column different.
    "$PYTHON" - "$work" "$D" "$ROWS" <<'EOF'
import sys
import numpy as np
import pandas as pd

work, d, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for name, n in [("train", rows), ("test", rows // 3)]:
    t = np.arange(n)[:, None]
    period = 20 + 7 * np.arange(d)
    values = np.sin(2 * np.pi * t / period + np.arange(d)) + 0.1 * rng.standard_normal((n, d))
    pd.DataFrame(values, columns=[f"c{i}" for i in range(d)]).to_csv(
        f"{work}/{name}.csv", index=False)
EOF
    rates=()
    for device in cpu cuda; do
        "$PYTHON" -m lstmae fit "$work/train.csv" -m "$work/$device.lstmae" --window "$T" \
            --hidden "$H" --epochs "$EPOCHS" --patience "$EPOCHS" --device "$device" -q
        rates+=("$("$PYTHON" -m lstmae info "$work/$device.lstmae" --json | "$PYTHON" -c '
import json, sys
t = json.load(sys.stdin)["training"]
print(round(t["train_windows"] * t["epochs_run"] / t["seconds"]))')")
    done
    diff=$("$PYTHON" - "$work/cpu.lstmae" "$work/test.csv" <<'EOF'
import sys
import numpy as np
import pandas as pd
from lstmae import Detector

detector = Detector.load(sys.argv[1])
frame = pd.read_csv(sys.argv[2])
cpu = detector.score(frame)["error"].to_numpy()
detector.model_.to("cuda")
cuda = detector.score(frame)["error"].to_numpy()
print(f"{(np.abs(cuda - cpu) / np.abs(cpu)).max():.2e}")
EOF
)
    speedup=$("$PYTHON" -c "print(f'{${rates[1]} / ${rates[0]}:.1f}x')")
    printf '%-18s %12s %12s %8s %22s\n' "$T/$H/$D" "${rates[0]}" "${rates[1]}" "$speedup" "$diff"
done

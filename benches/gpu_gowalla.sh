#!/usr/bin/env bash
# Runs Gowalla training jobs side by side on one CUDA GPU (the numbers in BENCHMARKS.md marked
# "GPU"): each job is an ordinary benches/ script with --device auto, which picks CUDA.
#
#   bash benches/gpu_gowalla.sh JOBS_FILE [MINUTES] [RESULTS_DIR]
#
# JOBS_FILE has one job a line: "NAME SCRIPT ARGS..." (see benches/gpu_jobs.txt). MINUTES is
# each job's training budget (the best validation state is kept). Results (one JSON per job,
# with the command, the metrics and the per-epoch history) and logs go to RESULTS_DIR. The jobs
# share the GPU, so their training times are upper bounds of a job running alone.
set -uo pipefail
JOBS=$(realpath "$1")
cd "$(dirname "$0")"
M=${2:-7}
DEST=${3:-../runs}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
python3 -c "import torch, personae; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

while read -r name script args; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    (
        # shellcheck disable=SC2086
        python3 "$script" --quiet --name "$name" --max-minutes "$M" $args >"$DEST/$name.log" 2>&1
        echo "$name exit $?: $(grep -h -E '"(recall|ndcg)@20"' "../runs/$name.json" 2>/dev/null | tr -d ' \n')"
    ) &
done <"$JOBS"
wait
cp ../runs/*.json "$DEST/" 2>/dev/null || true

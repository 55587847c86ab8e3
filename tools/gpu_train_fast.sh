#!/bin/bash
# One call on a lent GPU: two fast-network runs side by side for TRAIN_S seconds, then benchmarks/gpu.py.
# The data: tools/pack_training_data.py ../shared/data .gpu/data --contents 500 (fits the 64 MiB upload).
# Results land in $OUT (checkpoints and a tar of each run, the benchmark JSON).
set -u
cd "$(dirname "$0")/.."  # the repository root
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
TRAIN_S=${TRAIN_S:-380}; BATCH=${BATCH:-16}; GPU_ARGS=${GPU_ARGS:-}; PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>/dev/null
$PY -c "import torch, safetensors, PIL, tqdm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# the data where CPU runs find it, so a later --resume there reads the same paths
DATA=../shared/data
if [ ! -d $DATA/content ]; then mkdir -p ../shared 2>/dev/null && ln -sfn "$PWD/.gpu/data" ../shared/data; fi
[ -d $DATA/content ] || DATA=.gpu/data
echo "data: $DATA"
mkdir -p runs
date
train() {
  name=$1; shift
  OMP_NUM_THREADS=4 timeout -s INT -k 45 $TRAIN_S $PY -m stylekit train fast --content $DATA/content --style $DATA/style \
    --out runs/$name --batch-size $BATCH --max-steps 200000 --save-minutes 1 --sample-every 1000 --log-every 25 \
    --no-progress "$@" > runs/$name.out 2>&1
  echo "$name: exit $?"
}
train fast-distill &
train fast-style --style-weight 0.02 &
wait
date
for r in fast-distill fast-style; do echo "== $r"; head -2 runs/$r.out; tail -2 runs/$r/log.csv; done
for r in fast-distill fast-style; do
  [ -f runs/$r/checkpoint.pt ] && cp runs/$r/checkpoint.pt $OUT/$r-checkpoint.pt
  (cd runs && tar cf $OUT/$r.tar $r.out $r/log.csv $r/run.json $r/weights.safetensors $(ls $r/samples/*.png 2>/dev/null | tail -3))
done
timeout 150 $PY benchmarks/gpu.py --fast-weights runs/fast-distill/weights.safetensors \
  --train-log runs/fast-distill/log.csv runs/fast-style/log.csv --out $OUT/gpu.json $GPU_ARGS
echo "benchmark: exit $?"
ls -la $OUT

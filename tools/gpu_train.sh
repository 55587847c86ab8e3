#!/bin/bash
# One call on a lent GPU (a 64 MiB upload, ten minutes a call): training runs side by side for
# TRAIN_S seconds each, then benchmarks/gpu.py; what comes back lands in $OUT.
#
#   JOBS="fast-resume adain-multiscale" TRAIN_S=400 bash tools/gpu_train.sh
#
# Jobs:
#   fast-resume     continue training/fast (its config names the packed data, see below)
#   fast-distill    a new fast run, distillation only (runs/fast-distill)
#   fast-style      a new fast run with the style loss at 0.02 (runs/fast-style)
#   adain-multiscale  fine-tune the AdaIN decoder with the multi-scale style loss (scales 1, 2, 4) on
#                   256 px crops, from INIT (default: the shipped decoder), in runs/adain-multiscale
#   adain-pyramid   the same fine-tune through the pyramid, in runs/adain-pyramid
# The data: python tools/pack_training_data.py ../shared/data .gpu/data --contents 500, carried as .gpu;
# it is linked to ../shared/data there, where the runs' configs look for it.
set -u
cd "$(dirname "$0")/.."  # the repository root
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1
JOBS=${JOBS:-"fast-resume adain-multiscale"}; TRAIN_S=${TRAIN_S:-380}; BATCH=${BATCH:-16}; PY=${PY:-python3}
INIT=${INIT:-src/stylekit/data/adain_decoder_relu3_1.safetensors}; GPU_ARGS=${GPU_ARGS:-}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if [ ! -d ../shared/data/content ]; then mkdir -p ../shared 2>/dev/null && ln -sfn "$PWD/.gpu/data" ../shared/data; fi
DATA=../shared/data; [ -d $DATA/content ] || DATA=.gpu/data
mkdir -p runs
common="--max-steps 1000000 --save-minutes 1 --sample-every 1000 --log-every 25 --no-progress"
dir_of() { if [ "$1" = fast-resume ]; then echo training/fast; else echo runs/$1; fi; }
job() {
  local name=$1 dir; dir=$(dir_of $1)
  case $name in
    fast-resume) set -- fast --out $dir --resume ;;
    fast-distill) set -- fast --content $DATA/content --style $DATA/style --out $dir --batch-size $BATCH ;;
    fast-style) set -- fast --content $DATA/content --style $DATA/style --out $dir --batch-size $BATCH \
      --style-weight 0.02 ;;
    adain-multiscale) set -- adain --content $DATA/content --style $DATA/style --out $dir \
      --style-scales 1,2,4 --style-weight 5 --crop 256 --resize 256 --batch-size 8 --lr 1e-5 --init-weights $INIT ;;
    adain-pyramid) set -- adain --content $DATA/content --style $DATA/style --out $dir --pyramid \
      --style-scales 1,2,4 --style-weight 5 --crop 256 --resize 256 --batch-size 8 --lr 1e-5 --init-weights $INIT ;;
    *) echo "unknown job $name"; return 2 ;;
  esac
  OMP_NUM_THREADS=4 timeout -s INT -k 45 $TRAIN_S $PY -m stylekit train "$@" $common > runs/$name.out 2>&1
  echo "$name: exit $? ($(tail -1 $dir/log.csv 2>/dev/null | cut -d, -f1) steps)"
  [ -f $dir/checkpoint.pt ] && cp $dir/checkpoint.pt $OUT/$name-checkpoint.pt
  tar cf $OUT/$name.tar runs/$name.out $dir/log.csv $dir/run.json $dir/weights.safetensors \
    $(ls $dir/samples/*.png 2>/dev/null | tail -2)
}
date
for j in $JOBS; do job $j & done
wait
date
logs=""; fast=""
for j in $JOBS; do
  d=$(dir_of $j); logs="$logs $d/log.csv"
  case $j in fast-*) [ -f $d/weights.safetensors ] && fast=$d/weights.safetensors ;; esac
done
timeout 150 $PY benchmarks/gpu.py ${fast:+--fast-weights $fast} --train-log $logs --out $OUT/gpu.json $GPU_ARGS
ls -la $OUT

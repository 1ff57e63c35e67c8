#!/usr/bin/env bash
# Evidence sweeps (issues 16, 17), run from a frozen snapshot of the code (~/sweep-code) so
# mid-sweep commits on main cannot mix code versions inside one sweep. Resumable: rerunning
# this script skips finished runs and resumes interrupted ones from their last epoch.
# Order matters on this slow CPU (fp32, AVX2: ~25 min a 6-epoch ResNet20 run when idle):
# alpha = 0 first, then the alphas whose verdicts 3 seeds can decide.
#
#   bash experiments/cpu-evidence.sh          # from the repository root; background it: setsid nohup nice -n 5 ...
#
# It freezes the current commit into ~/sweep-code the first time (git worktree), writes
# CIFAR-10 to ~/data/cifar if absent, and keeps every run store under ~/runs.
set -u
if [ ! -d ~/sweep-code/selectivity ]; then git worktree add --detach ~/sweep-code HEAD; fi
[ -d ~/data/cifar/cifar-10-batches-py ] || python3 ../shared/data/make_cifar10.py ~/data/cifar
cd ~/sweep-code
export PYTHONPATH=~/sweep-code
export OMP_NUM_THREADS=1   # two 1-thread workers use 2 cores better than one 2-thread worker
DATA=~/data/cifar
S=experiments/sweeps
W=${WORKERS:-2}
log() { echo "[$(date -u +%FT%TZ)] $*"; }
six() { python3 -m selectivity sweep $S/resnet20-cifar10-cpu.toml --set data.root=$DATA --set 'analyses=[]' \
        --store ~/runs/resnet20-cifar10-cpu --workers $W --no-progress "$@"; log "exit $?"; }
log "stage 1: alpha 0,-10,-2,-1,1 x seeds 0-2";  six --set 'alphas=[0,-10,-2,-1,1]' --set 'seeds=[0,1,2]'
log "stage 2: same alphas, seeds 3-4";           six --set 'alphas=[0,-10,-2,-1,1]' --set 'seeds=[3,4]'
log "stage 3: 18 epochs, alpha 0,-10,-1 x 3 seeds"
python3 -m selectivity sweep $S/resnet20-cifar10-cpu-18ep.toml --set data.root=$DATA --set 'analyses=[]' \
    --set 'alphas=[0,-10,-1]' --store ~/runs/resnet20-cifar10-cpu-18ep --workers $W --no-progress; log "exit $?"
log "stage 4: ResNet18 / Tiny ImageNet CPU scale (data: make_tiny_imagenet.py ~/data/tiny --git-dir ...)"
[ -d ~/data/tiny/tiny-imagenet-200 ] && { python3 -m selectivity sweep $S/resnet18-tinyimagenet-cpu.toml \
    --set data.root=$HOME/data/tiny --set 'analyses=[]' --store ~/runs/resnet18-tinyimagenet-cpu --workers 1 \
    --no-progress; log "exit $?"; }
log "stage 5: the rest of the 6-epoch grid";     six

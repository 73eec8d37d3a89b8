#!/usr/bin/env bash
# One time-limited piece of a long GPU run, on a machine without network access (how the evidence and
# ablation runs were made): installs the wheels carried in .whl/ (monai, nibabel, einops) once, starts
# the CUDA MPS daemon once (processes side by side then share the GPU instead of taking turns), runs the
# given `python -m sikd_utils` commands side by side, each with --max-minutes, and packs book/results
# (finished tasks and the ablations' part files) into OUT/piece.tgz with each command's log.
#
#   bash scripts/gpu_piece.sh OUT MINUTES "reproduce --preset gpu --tasks cardiac --workers 5" \
#                                         "ablate --preset gpu --tasks fundus abdomen --workers 5"
#
# A command may carry its own --max-minutes (e.g. a neighbour that should stop when the main command
# will have finished, in a session's last piece: a job it cannot finish then is GPU time lost).
# SIKD_PIECE_STOP_WITH_FIRST=1 stops the other commands when the first one ends: for a session's last piece,
# where a neighbour's network that cannot finish before the machine goes back is GPU time lost. A neighbour
# given --finish-only is not stopped but waited for: it stops each of its jobs that cannot finish in time by
# itself, and its others can (stopping it would kill jobs that would have finished). Each command runs in a
# process group of its own, so its worker processes stop with it; part files and checkpoints are written
# atomically, so a stop loses only the network or test set in progress.
# Run it again (same commands) to continue: finished work is reused. Take each piece into the caller's
# checkout with scripts/take_piece.py (it copies what the piece finished and nothing older). Checkpoints
# of unfinished networks live in runs/ and are lost with the machine, so keep a session's pieces back to back.
set -uo pipefail
out=$1 minutes=$2
shift 2
site=/tmp/sikd-site
if [ ! -e "$site/.done" ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
        && touch "$site/.done" || exit 1
fi
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
export SIKD_COMMIT=${SIKD_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mpslog
mkdir -p /tmp/mps /tmp/mpslog "$out"
if command -v nvidia-cuda-mps-control >/dev/null; then
    pgrep -f nvidia-cuda-mps-control >/dev/null || setsid nvidia-cuda-mps-control -d
fi
# The device's copy of the tree is refreshed from the caller's at every call, which removes files the caller
# does not have: the ablation part files a piece finished would be gone in the next piece (their methods
# then tested again). runs/ is ignored, so it stays between calls of one machine: keep the parts there and
# put back what the tree lacks (files sent from the caller stay as they are).
keep=${SIKD_PIECE_KEEP:-runs/piece-keep/ablation-parts}
parts=${SIKD_PIECE_PARTS:-book/results/ablations/parts}
if [ -d "$keep" ]; then  # put back each kept part the tree lacks (cp -n warns on newer coreutils)
    (cd "$keep" && find . -type f) | while read -r f; do
        [ -e "$parts/$f" ] || install -D -m 644 "$keep/$f" "$parts/$f"
    done
fi
set -m  # each background command a process group of its own (see SIKD_PIECE_STOP_WITH_FIRST)
pids=()
commands=("$@")
n=0
for command in "${commands[@]}"; do
    n=$((n + 1))
    read -r sub rest <<< "$command"
    # the piece's limit first, so a --max-minutes of the command's own (later on the line) wins
    # shellcheck disable=SC2086  # each command is a word list on purpose
    python3 -m sikd_utils $sub --max-minutes "$minutes" $rest > "$out/run$n.log" 2>&1 &
    pids+=($!)
done
status=0
if [ "${SIKD_PIECE_STOP_WITH_FIRST:-0}" = 1 ] && [ ${#pids[@]} -gt 1 ]; then
    wait "${pids[0]}" || status=$?
    for k in "${!pids[@]}"; do
        [ "$k" -gt 0 ] || continue
        case " ${commands[$k]} " in
            *" --finish-only "*) ;;  # it stops what cannot finish by itself
            *) kill -TERM -- "-${pids[$k]}" 2>/dev/null ;;  # the whole group: the command and its workers
        esac
        wait "${pids[$k]}"
        code=$?
        if [ "$code" -eq 143 ]; then  # 128 + SIGTERM: stopped here, not ended by itself
            echo "STOPPED: the first command ended (SIKD_PIECE_STOP_WITH_FIRST=1); run the same command again to continue" \
                >> "$out/run$((k + 1)).log"
            code=3  # unfinished, as sikd_utils says it (EXIT_UNFINISHED)
        fi
        [ "$code" -eq 0 ] || [ "$status" -ne 0 ] || status=$code
    done
else
    for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
fi
for log in "$out"/run*.log; do echo "== $log"; tail -4 "$log"; done
tar czf "$out/piece.tgz" book/results
if [ -d "$parts" ]; then rm -rf "$keep" && mkdir -p "$keep" && cp -r "$parts/." "$keep/"; fi
exit $status

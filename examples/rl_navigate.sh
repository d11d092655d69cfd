#!/usr/bin/env bash
# docs/rl.md's experiment end to end, from nothing: the reference recipe's world model, navigate stores, the world
# model fine-tuned on them, a reward model, then PPO in the dream beside PPO in the engine over several seeds.
#
#   bash examples/rl_navigate.sh                  # OUT=runs/rlnav; the stage times add up to ~3 hours on 2 cores
#   OUT=runs/x SEEDS="0 1 2 3" bash examples/rl_navigate.sh
#   QUICK=1 OUT=/tmp/rlq bash examples/rl_navigate.sh   # every stage at toy size (5 minutes): checks the plumbing
#   OBSERVE=goal bash examples/rl_navigate.sh     # what the agents observe (rl_dream.py --observe): frames (default),
#                                                 # frames+goal or goal (the goal: the engine's task state, in the
#                                                 # dream the reward model's odometry estimate); GOAL=1 = OBSERVE=goal
#   DREAM_STEPS=8 bash examples/rl_navigate.sh    # dreamed episode length (default 16)
#   REWARD_STEPS=2000 bash examples/rl_navigate.sh   # the reward model's training steps (default 4000)
#   GOAL_MAPS=0 bash examples/rl_navigate.sh      # dream with the navigate world model without goal maps (navdit2);
#                                                 # default 1: the one fine-tuned to draw the goal where the reward
#                                                 # model's odometry puts it (navgoal, docs/world_model.md)
#   ADV=0.3 bash examples/rl_navigate.sh          # the goal-map fine-tune with an adversarial term of this weight on
#                                                 # its one-step frames (sharper dreams, docs/world_model.md "twelfth
#                                                 # session"; critic lr 1e-3); its run and results get an _adv suffix
#   BLUR=1 bash examples/rl_navigate.sh          # the PPO agents see their frames through a gaussian blur of this
#                                                 # std in pixels, dream and engine alike (rl_dream.py --blur: the
#                                                 # dream's unsure parts are blurred, the engine's sharp); results
#                                                 # get a _b<std> suffix
#   SHIFT=4 bash examples/rl_navigate.sh         # the PPO agents train on frames moved by up to this many pixels
#                                                 # (rl_dream.py --shift, DrQ's random shift; scored unshifted);
#                                                 # results get a _sh<pad> suffix
#   STATE_REWARD=1 bash examples/rl_navigate.sh  # a reward model whose reward is read off its tracked goal point
#                                                 # alone (train-reward model.state_reward=true: OUT/reward_state;
#                                                 # pays random walks as the engine does, docs/rl.md "seventeenth
#                                                 # session"); results get an _rs suffix
#   TABLE=1 bash examples/rl_navigate.sh         # the reward model also learns from random walks of the agents'
#                                                 # own action table (policy=table: OUT/close_table; pays an
#                                                 # untrained agent's walks more as the engine does, docs/rl.md
#                                                 # "eighteenth session"); its run gets _table, results _tb
#   END=1 bash examples/rl_navigate.sh           # the reward model pays a step that ends the episode (arrival)
#                                                 # by its own head, reading the frames (train-reward
#                                                 # model.terminal_reward=true; docs/rl.md "nineteenth session");
#                                                 # its run gets _end, results _te
#   DREAMS=1 bash examples/rl_navigate.sh        # the reward model also learns from 1024 of the world model's
#                                                 # own 64-step dreams along the stores' recorded actions
#                                                 # (train-reward dreams=1024 dream_horizon=64 dream_ckpt=<the
#                                                 # dreaming model>: the dream shows less motion than the engine,
#                                                 # docs/world_model.md "twentieth session"); its run gets
#                                                 # _dream_<that model> (e.g. _dream_navgoal), results _rd
#   SPAWN=1 bash examples/rl_navigate.sh         # dreams start at the spawn: the first frames of the table's
#                                                 # random walks (OUT/close_table, recorded from the engine's
#                                                 # resets; rl_dream.py --dream-start first), as the engine agents'
#                                                 # episodes start; results get an _sp suffix. The best frames-only
#                                                 # setting measured (docs/rl.md "twentieth session"):
#                                                 # STATE_REWARD=1 TABLE=1 END=1 DREAMS=1 SPAWN=1 DREAM_STEPS=64
#   LEARNED=1 bash examples/rl_navigate.sh       # a third agent: PPO in the engine paid by the reward model
#                                                 # (rl_dream.py --learned-engine: the dream's reward without the
#                                                 # dream); results get an _le suffix
#
# Every stage is skipped when its output is there, and the commands it runs resume themselves, so after an
# interruption the same command carries on. Stage times on a 2-core machine (docs/rl.md): recipe ~60 min, stores
# ~9 min, latents ~8 min, fine-tunes ~14 min, reward model ~10-20 min, goal-map fine-tune ~25 min, RL ~35 min (the
# seeds side by side, one torch thread each). The table is printed at the end and kept in
# OUT/rl_<observe>_d<dream steps>[_gm][_adv][_b<blur>][_sh<pad>][_rs][_tb][_te][_rd][_sp][_le].json (_gm: with goal maps; per seed: ..._s<seed>.json, e.g.
# OUT/rl_frames_d16_gm_s0.json).
set -euo pipefail

OUT=${OUT:-runs/rlnav}
SEEDS=${SEEDS:-"0 1 2"}
QUICK=${QUICK:-0}
GOAL=${GOAL:-0}
OBSERVE=${OBSERVE:-frames}
if [ "$GOAL" = 1 ]; then OBSERVE=goal; fi
DREAM_STEPS=${DREAM_STEPS:-16}
GOAL_MAPS=${GOAL_MAPS:-1}
ADV=${ADV:-0}
case "$OBSERVE" in frames|frames+goal|goal) ;; *) echo "OBSERVE must be frames, frames+goal or goal, not '$OBSERVE'" >&2; exit 2;; esac
case "$DREAM_STEPS" in ''|*[!0-9]*|0) echo "DREAM_STEPS must be a positive integer, not '$DREAM_STEPS'" >&2; exit 2;; esac
case "$GOAL_MAPS" in 0|1) ;; *) echo "GOAL_MAPS must be 0 or 1, not '$GOAL_MAPS'" >&2; exit 2;; esac
if ! [[ "$ADV" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then echo "ADV must be a non-negative number, not '$ADV'" >&2; exit 2; fi
BLUR=${BLUR:-0}
if ! [[ "$BLUR" =~ ^([0-7](\.[0-9]+)?|8(\.0+)?)$ ]]; then echo "BLUR must be a std in pixels in [0, 8], not '$BLUR'" >&2; exit 2; fi
SEE=""
if [[ ! "$BLUR" =~ ^0(\.0+)?$ ]]; then SEE="_b$BLUR"; fi
SHIFT=${SHIFT:-0}
if ! [[ "$SHIFT" =~ ^([0-9]|1[0-6])$ ]]; then echo "SHIFT must be a pad in pixels, an integer in [0, 16], not '$SHIFT'" >&2; exit 2; fi
if [ "$SHIFT" != 0 ]; then SEE="${SEE}_sh$SHIFT"; fi
STATE_REWARD=${STATE_REWARD:-0}
TABLE=${TABLE:-0}
END=${END:-0}
SPAWN=${SPAWN:-0}
DREAMS=${DREAMS:-0}
LEARNED=${LEARNED:-0}
case "$STATE_REWARD" in 0|1) ;; *) echo "STATE_REWARD must be 0 or 1, not '$STATE_REWARD'" >&2; exit 2;; esac
case "$TABLE" in 0|1) ;; *) echo "TABLE must be 0 or 1, not '$TABLE'" >&2; exit 2;; esac
case "$END" in 0|1) ;; *) echo "END must be 0 or 1, not '$END'" >&2; exit 2;; esac
case "$SPAWN" in 0|1) ;; *) echo "SPAWN must be 0 or 1, not '$SPAWN'" >&2; exit 2;; esac
case "$DREAMS" in 0|1) ;; *) echo "DREAMS must be 0 or 1, not '$DREAMS'" >&2; exit 2;; esac
case "$LEARNED" in 0|1) ;; *) echo "LEARNED must be 0 or 1, not '$LEARNED'" >&2; exit 2;; esac
REWARD_RUN=reward_odo; REWARD_ARGS=(); LEARNED_ARGS=(); TABLE_STORE=""
if [ "$STATE_REWARD" = 1 ]; then REWARD_RUN=reward_state; REWARD_ARGS=(model.state_reward=true); SEE="${SEE}_rs"; fi
if [ "$TABLE" = 1 ]; then REWARD_RUN="${REWARD_RUN}_table"; TABLE_STORE=",$OUT/close_table_lat"; SEE="${SEE}_tb"; fi
if [ "$END" = 1 ]; then REWARD_RUN="${REWARD_RUN}_end"; REWARD_ARGS+=(model.terminal_reward=true); SEE="${SEE}_te"; fi
if [ "$DREAMS" = 1 ]; then SEE="${SEE}_rd"; fi
DREAM_STORE="$OUT/close_mix"; START_ARGS=()
if [ "$SPAWN" = 1 ]; then DREAM_STORE="$OUT/close_table"; START_ARGS=(--dream-start first); SEE="${SEE}_sp"; fi
if [ "$LEARNED" = 1 ]; then LEARNED_ARGS=(--learned-engine); SEE="${SEE}_le"; fi
SHARP=""; SHARP_ARGS=()
if [[ ! "$ADV" =~ ^0+(\.0+)?$ ]]; then  # a weight above 0
    if [ "$GOAL_MAPS" != 1 ]; then echo "ADV applies to the goal-map fine-tune: it needs GOAL_MAPS=1" >&2; exit 2; fi
    SHARP=_adv; SHARP_ARGS=(adv_weight="$ADV" adv_lr=0.001 adv_warmup=50)
fi
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*"; }

if [ "$QUICK" = 1 ]; then  # toy sizes: every command runs, nothing learns
    RECIPE="recipe.generate.episodes=4 recipe.generate.steps=32 recipe.heldout.episodes=2 recipe.heldout.steps=32
            recipe.lookback.episodes=1 recipe.lookback.steps=32 recipe.train_vae.steps=20 recipe.train.steps=10
            recipe.train.save_every=10 recipe.train_vae.eval_every=10 recipe.train_vae.save_every=10
            recipe.eval.windows=4 recipe.eval.episodes=2"
    EP_BIG=4; EP_MID=2; EP_HELD=2; STEPS_BIG=24; STEPS_CLOSE=24; STEPS_TABLE=24
    FT1=10; FT2=10; FT3=10; REWARD_STEPS=20; RL_STEPS=256; EVAL_EPISODES=2; RL_EXTRA="--n-steps 32 --max-steps 24"
    REWARD_DREAMS=8; DREAM_HORIZON=4
else
    RECIPE=""
    EP_BIG=384; EP_MID=96; EP_HELD=16; STEPS_BIG=160; STEPS_CLOSE=120; STEPS_TABLE=300
    FT1=400; FT2=240; FT3=1000; REWARD_STEPS=${REWARD_STEPS:-4000}; RL_STEPS=50000; EVAL_EPISODES=20; RL_EXTRA=""
    REWARD_DREAMS=1024; DREAM_HORIZON=64
fi

# 1. the reference recipe (docs/world_model.md): its VAE and DiT are the starting point
if [ ! -e "$OUT/recipe/report.json" ]; then
    log "recipe"
    # shellcheck disable=SC2086
    worldsim recipe out="$OUT/recipe" $RECIPE
fi
VAE="$OUT/recipe/vae"

# 2. navigate stores: goals 12-32 blocks away (the task's default) and 4-10 (what the agents are scored on);
#    `mix` episodes (explorer, solver, random, lookback), the privileged solver's, the frame-only seeker's
gen() {  # name, then generate overrides
    local name=$1; shift
    if [ ! -e "$OUT/$name/zarr.json" ] || ! grep -q '"finalized": true' "$OUT/$name/zarr.json"; then
        log "generate $name"
        worldsim generate env=voxel task=navigate width=64 height=64 workers=2 out="$OUT/$name" "$@"
    fi
}
CLOSE="+env.kwargs.goal_distance=[4,10]"
gen nav384 policy=mix episodes=$EP_BIG steps=$STEPS_BIG seed=20000
gen navsolve policy=solver episodes=$EP_MID steps=200 seed=30000
gen navseek policy=seeker episodes=$EP_MID steps=200 seed=31000
gen close_mix "$CLOSE" policy=mix episodes=$EP_MID steps=$STEPS_CLOSE seed=40000
gen close_solver "$CLOSE" policy=solver episodes=$((EP_MID / 2)) steps=100 seed=41000
gen close_seek "$CLOSE" policy=seeker episodes=$EP_MID steps=100 seed=41500
gen close_held "$CLOSE" policy=mix episodes=$EP_HELD steps=$STEPS_CLOSE seed=42000
CACHED="nav384 navsolve navseek close_mix close_solver close_seek"
if [ "$TABLE" = 1 ] || [ "$SPAWN" = 1 ]; then  # random walks of the agents' table, as long as their episodes
    gen close_table "$CLOSE" policy=table episodes=$((EP_MID * 2)) steps=$STEPS_TABLE seed=43000
fi
if [ "$TABLE" = 1 ]; then CACHED="$CACHED close_table"; fi

# 3. latents of the recipe's VAE (training reads them instead of encoding every step)
for s in $CACHED; do
    if [ ! -e "$OUT/${s}_lat/zarr.json" ]; then
        log "cache-latents $s"
        worldsim cache-latents store="$OUT/$s" vae="$VAE" out="$OUT/${s}_lat"
    fi
done

# 4. the world model fine-tuned on navigate, then on close goals (resumes from its last checkpoint)
log "fine-tune the world model on navigate"
worldsim train init="$OUT/recipe/dit" store="[$OUT/nav384_lat,$OUT/navsolve_lat]" vae="$VAE" out="$OUT/navdit" \
    steps=$FT1 frames=14 lr=0.0003 warmup=20 val_episodes=0
log "fine-tune it on close goals"
worldsim train init="$OUT/navdit" store="[$OUT/close_mix_lat,$OUT/close_solver_lat,$OUT/navsolve_lat]" vae="$VAE" \
    out="$OUT/navdit2" steps=$FT2 frames=14 lr=0.0003 warmup=20 val_episodes=0

# 5. goal maps: the fine-tuned model learns to draw the goal where the task state puts it (model.goal_map=true; in
#    the dream the reward model's estimate), on the close-goal stores and the seeker's (the goal comes into view)
WM="$OUT/navdit2"
if [ "$GOAL_MAPS" = 1 ]; then
    log "fine-tune it with goal maps"
    worldsim train init="$OUT/navdit2" \
        store="[$OUT/close_mix_lat,$OUT/close_seek_lat,$OUT/close_solver_lat,$OUT/navseek_lat]" vae="$VAE" \
        out="$OUT/navgoal$SHARP" steps=$FT3 frames=14 lr=0.0003 warmup=20 val_episodes=0 model.goal_map=true \
        "${SHARP_ARGS[@]}"
    WM="$OUT/navgoal$SHARP"
fi
DREAM_ARGS=()  # DREAMS=1: dreams of the model the agents dream with (QUICK: 8 dreams of 4 steps)
if [ "$DREAMS" = 1 ]; then  # named after the dreaming model: another one (GOAL_MAPS, ADV) gets its own reward model
    DREAM_ARGS=(dreams=$REWARD_DREAMS dream_horizon=$DREAM_HORIZON dream_ckpt="$WM")
    REWARD_RUN="${REWARD_RUN}_dream_$(basename "$WM")"
fi
# 6. the reward model: not on the privileged solver's episodes (its actions say where the goal is: they are left
#    out of the `mix` stores too); the seeker's goal-directed episodes read the frame only (docs/world_model.md,
#    "Reward runs (2026-12-03, sixth session)"); it starts from where the goal is at the dream's first frame (the
#    stores' task state) and follows it step by step (odometry: "Reward runs (2026-12-04)"; each step's turn is the
#    camera action's, `exact_turn`, the default since 2026-12-05: an OUT from before keeps its learned-turn model)
if [ ! -e "$OUT/$REWARD_RUN/checkpoints" ]; then
    log "reward model ($REWARD_RUN)"
    worldsim train-reward ckpt="$OUT/navdit2" \
        store="[$OUT/nav384_lat,$OUT/navseek_lat,$OUT/close_mix_lat,$OUT/close_seek_lat$TABLE_STORE]" \
        skip_policies="[NavigateSolver]" val_store="$OUT/close_held" seq_len=64 batch_size=8 steps=$REWARD_STEPS \
        task_state=true model.odometry=true "${REWARD_ARGS[@]}" "${DREAM_ARGS[@]}" out="$OUT/$REWARD_RUN"
fi

RL="rl_${OBSERVE/+/_}_d${DREAM_STEPS}$([ "$GOAL_MAPS" = 1 ] && echo _gm)$SHARP$SEE"

# 7. PPO in the dream and in the engine, one process and one torch thread per seed, side by side
files=(); pids=()
for s in $SEEDS; do
    files+=("$OUT/${RL}_s$s.json")
    if [ ! -e "$OUT/${RL}_s$s.json" ]; then
        log "RL seed $s"
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=1 python "$(dirname "$0")/rl_dream.py" --checkpoint "$WM" \
            --reward "$OUT/$REWARD_RUN" --store "$DREAM_STORE" "${START_ARGS[@]}" --steps $RL_STEPS --goal-distance 4 10 \
            --dream-episode-steps "$DREAM_STEPS" --sample --solver --eval-episodes $EVAL_EPISODES --seeds "$s" \
            --observe "$OBSERVE" --blur "$BLUR" --shift "$SHIFT" "${LEARNED_ARGS[@]}" \
            --out "$OUT/${RL}_s$s.json" $RL_EXTRA > "$OUT/${RL}_s$s.log" 2>&1 &
        pids+=("$!:$s")
    fi
done
for p in "${pids[@]}"; do
    wait "${p%%:*}" || { echo "RL seed ${p##*:} failed: see $OUT/${RL}_s${p##*:}.log" >&2; exit 1; }
done
python "$(dirname "$0")/rl_dream.py" --merge "${files[@]}" --out "$OUT/$RL.json"
log "done: $OUT/$RL.json"

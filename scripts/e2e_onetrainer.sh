#!/usr/bin/env bash
# The real OneTrainer, end to end on a CPU, with no GitHub access (docs/onetrainer-e2e.md):
#   1. otdoctor install from local mirrors (OneTrainer and the git requirements it names)
#   2. tiny random-weight SD 1.5- and SDXL-layout base models (scripts/make_tiny_model.py)
#   3. otdoctor smoke in OneTrainer mode: the real scripts/train.py on each
#   4. per configuration a 24-step smoke and a longer run, one thread each, recorded with wall and CPU
#      clocks; the estimate from the smoke alone against the long run in each clock
#   5. otdoctor check --config on every preset of the checkout and on OneTrainer's own defaults
#
#   scripts/e2e_onetrainer.sh MIRROR_DIR [WORK_DIR]
#
# MIRROR_DIR holds bare mirrors as <owner>+<name>/repo (Nerogar+OneTrainer, huggingface+diffusers,
# Nerogar+mgds, KellerJordan+Muon). WORK_DIR (default ~/ot-e2e) gets the checkout, its venv, the
# models and every record; nothing is written into this repository. About 25 minutes on 2 busy cores
# (the install alone about 4): not part of the default CI run.
set -euo pipefail

MIRROR_DIR=$(cd "${1:?usage: $0 MIRROR_DIR [WORK_DIR]}" && pwd)
WORK=${2:-$HOME/ot-e2e}
REF=${OT_E2E_REF:-23df3832}
EPOCHS_LONG=${OT_E2E_EPOCHS:-40}
HERE=$(cd "$(dirname "$0")" && pwd)
OTDOCTOR=${OTDOCTOR:-$HERE/../.venv/bin/otdoctor}
mkdir -p "$WORK"
cd "$WORK"
OT="$WORK/OneTrainer"
PY="$OT/venv/bin/python"
E2E="$HERE/e2e_onetrainer.py"
RUN="nice -n 5"

say() { printf '\n== %s\n' "$*"; }

say "1. install OneTrainer $REF from the mirrors in $MIRROR_DIR"
{
  echo "[git]"
  for repo in "$MIRROR_DIR"/*+*/repo; do
    name=$(basename "$(dirname "$repo")")
    echo "\"${name/+//}\" = \"$repo\""
  done
} > mirrors.toml
# The CPU pair of torch/torchvision this machine has (OneTrainer's requirements-default.txt pins a
# torch PyPI serves only as a CUDA build): the launcher's own OT_PLATFORM_REQUIREMENTS names it.
printf 'torch==2.14.1\ntorchvision==0.29.1\nonnxruntime==1.23.2\n' > requirements-cpu-e2e.txt
export OT_PLATFORM_REQUIREMENTS="$WORK/requirements-cpu-e2e.txt"
start=$(date +%s)
$RUN "$OTDOCTOR" install --dir "$OT" --ref "$REF" --python 3.11 --mirrors mirrors.toml --yes > install.log 2>&1 || {
  tail -20 install.log
  exit 1
}
echo "install: $(( $(date +%s) - start )) s (log: $WORK/install.log)"

say "2. tiny models"
$RUN "$PY" "$HERE/make_tiny_model.py" models --single-file --ot-dir "$OT" 2>&1 | grep -E 'MB$'

say "3 and 4. smoke (24 steps, OneTrainer's own schedule) -> prediction -> the real longer run"
# One thread (e2e_onetrainer.py train sets OMP/MKL/OpenBLAS) and one run at a time: the tree's CPU
# time measures the work whatever else the machine runs; wall time is compared too.
VPY="$(dirname "$OTDOCTOR")/python"
# NAME, then the smoke's images, epochs (24 steps) and what it sets on top. The smoke must show each
# overhead once where nothing else happens: with sampling every 2 epochs and a backup after 3, 6
# epochs of 4 images and a save after 5 give a lone epoch boundary (1), a lone save (5) apart from
# the final one (whose cost includes the process's exit), sampling passes (2, 4) and a backup (3).
while read -r name smoke_images smoke_epochs smoke_sets <&3; do
  # 3. what a user runs: `otdoctor smoke` in OneTrainer mode, its figures as it reports them
  cfg=$("$PY" "$E2E" config "$name" --ot-dir "$OT" --models models --work long --images 6 --epochs "$EPOCHS_LONG")
  $RUN "$OTDOCTOR" smoke --ot-dir "$OT" --config "$cfg" --steps 25 --warmup 3 --set epochs=4 --format json \
    > "otdoctor-smoke-$name.json"
  # 4. the same 24-step run recorded with both clocks, then the long run
  for kind in smoke long; do
    images=$smoke_images epochs=$smoke_epochs sets=()
    if [[ $smoke_sets != - ]]; then sets=(--set "$smoke_sets"); fi
    if [[ $kind == long ]]; then images=6 epochs=$EPOCHS_LONG sets=(); fi
    cfg=$("$PY" "$E2E" config "$name" --ot-dir "$OT" --models models --work "$kind" --images "$images" \
      --epochs "$epochs" "${sets[@]}")
    $RUN "$VPY" "$E2E" train "$cfg" --ot-dir "$OT" --record "$WORK/$kind-$name.jsonl" > "$kind-$name.json"
  done
  for clock in wall cpu; do
    # otdoctor's own meter reads the smoke's record in this clock into a smoke result, which
    # `otdoctor estimate --from-smoke` finds in a cache of its own.
    "$VPY" "$E2E" smoke-figures "smoke-$name.json" --config "smoke/$name/config.json" --clock "$clock" \
      --out "cache-$name-$clock/smoke" > /dev/null
    OTDOCTOR_CACHE_DIR="$WORK/cache-$name-$clock" "$OTDOCTOR" estimate --config "long/$name/config.json" \
      --ot-dir "$OT" --from-smoke --format json > "estimate-$name-$clock.json"
    echo "$name: $("$VPY" "$E2E" compare --estimate "estimate-$name-$clock.json" --real "long-$name.json" --clock "$clock")"
  done
done 3<<'EOF'
sd15 6 4 -
sdxl 6 4 -
sd15-samples-backups 4 6 save_every=5
EOF

say "5. otdoctor check --config on every preset and on OneTrainer's defaults"
"$PY" "$E2E" defaults --ot-dir "$OT" --out "$WORK/defaults.json" > /dev/null
"$PY" "$E2E" presets --ot-dir "$OT" --otdoctor "$OTDOCTOR" --extra "$WORK/defaults.json" > presets.json
python3 - presets.json <<'EOF'
import collections, json, sys
rows = json.load(open(sys.argv[1]))
crashes = [r["config"] for r in rows if "crash" in r]
count = collections.Counter((f["status"], f["id"]) for r in rows for f in r.get("found", []))
print(f"{len(rows)} configs, {len(crashes)} crashed {crashes}")
for (status, check), n in sorted(count.items()):
    print(f"  {status.upper():5} {check:28} {n}")
EOF

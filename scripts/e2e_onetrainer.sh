#!/usr/bin/env bash
# The real OneTrainer, end to end on a CPU, with no GitHub access (docs/onetrainer-e2e.md):
#   1. otdoctor install from local mirrors (OneTrainer and the git requirements it names)
#   2. tiny random-weight SD 1.5- and SDXL-layout base models (scripts/make_tiny_model.py)
#   3. otdoctor smoke in OneTrainer mode: the real scripts/train.py on each
#   4. a longer real run per configuration, predicted from the smoke first, then compared
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
RUN="nice -n 10"

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

say "3 and 4. smoke (<= 30 steps, OneTrainer's own schedule) -> prediction -> the real longer run"
# NAME SMOKE_SETTINGS SMOKE_SAMPLES SMOKE_BACKUPS SMOKE_SAVES (what 4 epochs of the smoke hold)
while read -r name sets samples backups saves; do
  cfg=$("$PY" "$E2E" config "$name" --ot-dir "$OT" --models models --work long --images 6 --epochs "$EPOCHS_LONG")
  smoke_args=()
  if [[ $sets != - ]]; then for s in ${sets//,/ }; do smoke_args+=(--set "$s"); done; fi
  $RUN "$OTDOCTOR" smoke --ot-dir "$OT" --config "$cfg" --steps 25 --warmup 3 --set epochs=4 "${smoke_args[@]}" \
    --format json > "smoke-$name.json"
  "$OTDOCTOR" estimate --config "$cfg" --ot-dir "$OT" --from-smoke --format json > "estimate-$name.json"
  $RUN "$PY" "$E2E" train "$cfg" --ot-dir "$OT" --record "$WORK/long-$name.jsonl" > "long-$name.json"
  echo "$name: $("$(dirname "$OTDOCTOR")/python" "$E2E" compare --smoke "smoke-$name.json" --estimate "estimate-$name.json" \
    --real "long-$name.json" --smoke-counts 4 "$samples" "$backups" "$saves")"
done <<'EOF'
sd15 - 0 0 0
sdxl - 0 0 0
sd15-samples-backups sample_after=2,sample_after_unit=EPOCH,backup_after=3,backup_after_unit=EPOCH,save_every=2,save_every_unit=EPOCH 2 1 2
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

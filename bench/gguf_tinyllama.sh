#!/usr/bin/env bash
# bench/gguf_tinyllama.sh: the full TinyLlama-1.1B shape in q8_0, written
# by flexpage synth as a GGUF and as an image from the same seed, decoded
# greedily by flexpage run: resident, the GGUF mapped, the GGUF paged
# directly at 50%, the image paged at 50%.  Every run must print the same
# ids (the suite checks a reduced shape of the same layout); prints each
# run's speed line.  Usage: bench/gguf_tinyllama.sh [BUILD_DIR] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build} steps=${2:-24}
flexpage=$build/tools/flexpage
cache=${FLEXPAGE_CACHE:-$HOME/.cache/flexpage}
mkdir -p "$cache"
gguf=$cache/tinyllama-1.1b-q8_0-seed7.gguf img=$cache/tinyllama-1.1b-q8_0-seed7.img
tok=$root/../shared/models/tokenizer.bin
[ -e "$gguf" ] || "$flexpage" synth --shape tinyllama-1.1b --quant q8_0 --seed 7 \
	$([ -r "$tok" ] && echo --tokenizer "$tok") -o "$gguf"
[ -e "$img" ] || "$flexpage" synth --shape tinyllama-1.1b --quant q8_0 --seed 7 -o "$img"

want= status=0
run() {
	local what=$1; shift
	local ids speed
	ids=$("$flexpage" run "$@" --steps "$steps" --temperature 0 --no-stop 2>"$cache/run.err")
	speed=$(grep 'tokens/s' "$cache/run.err" || true)
	if [ -z "$want" ]; then want=$ids; fi
	if [ "$ids" = "$want" ]; then echo "same ids  $what: $speed"
	else echo "OTHER IDS $what: $ids"; status=1; fi
}
run "image, resident" "$img" --load resident
run "GGUF, resident" "$gguf" --load resident
run "GGUF, mmap" "$gguf" --load mmap
run "GGUF paged directly at 50%" "$gguf" --budget 50%
run "image paged at 50%" "$img" --budget 50%
echo "ids: $want"
exit $status

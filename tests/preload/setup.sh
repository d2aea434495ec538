#!/usr/bin/env bash
# The preload suites' peers, fetched, built and cached once (ctest runs
# this first, as the fixture preload_peers):
#   - llama.cpp's prebuilt shared libraries and headers from the npm
#     registry (bench/peers/llama-cpp --prebuilt: no 15-minute build), and
#     tests/preload/llama_driver.c compiled against them;
#   - llama2.c's run.c from ../shared/peers/llama2.c, unmodified;
#   - stories260K.bin packed verbatim in 64 KiB chunks (flexpage pack);
#   - a TinyLlama-layout q8_0 GGUF with 4 of its 22 layers and its own
#     classifier (flexpage synth --format gguf, the Llama 2 vocabulary),
#     cached in ~/.cache/flexpage/tests.
# Writes OUT/peers.env (KEY=VALUE lines) for the suites.
# usage: setup.sh ROOT OUT CC FLEXPAGE
set -Eeuo pipefail
root=$1 out=$2 cc=$3 flexpage=$4
shared=$root/../shared
mkdir -p "$out"
say() { echo "preload setup: $*" >&2; }

eval "$("$root/bench/peers/llama-cpp" --prebuilt)"
libs=()
for l in "$LLAMA_CPP_PREBUILT"/libllama.*so "$LLAMA_CPP_PREBUILT"/libggml.*so "$LLAMA_CPP_PREBUILT"/libggml-base.so; do
	[ -f "$l" ] && libs+=("$l")
done
[ ${#libs[@]} -ge 3 ] || { say "no libllama, libggml and libggml-base in $LLAMA_CPP_PREBUILT"; exit 1; }
includes=()
for d in $LLAMA_CPP_INCLUDE; do includes+=(-I "$d"); done
say "compiling llama_driver against the prebuilt libllama ($LLAMA_CPP_COMMIT)"
"$cc" -O2 -o "$out/llama_driver" "$root/tests/preload/llama_driver.c" "${includes[@]}" "${libs[@]}" \
	-Wl,-rpath,"$LLAMA_CPP_PREBUILT"

say "compiling llama2.c's run.c"
"$cc" -O2 -o "$out/run" "$shared/peers/llama2.c/run.c" -lm

"$flexpage" pack --verbatim --chunk 64K --force --quiet "$shared/models/stories260K.bin" "$out/stories260K.img"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/flexpage/tests
tiny=$cache/tinyllama-layout-4l-q8_0-seed2.gguf
if [ ! -s "$tiny" ]; then
	say "synthesizing $tiny (about 312 MiB)"
	mkdir -p "$cache"
	"$flexpage" synth --shape 2048,5632,4,32,4,32000,2048,0 --quant q8_0 --format gguf \
		--tokenizer "$shared/models/tokenizer.bin" --seed 2 --quiet -o "$tiny.tmp.$$.gguf"
	mv "$tiny.tmp.$$.gguf" "$tiny"
fi

cat >"$out/peers.env.tmp" <<END
LLAMA_DRIVER=$out/llama_driver
LLAMA_BACKENDS=$LLAMA_CPP_PREBUILT
LLAMA_CPP_COMMIT=$LLAMA_CPP_COMMIT
RUN_C=$out/run
STORIES_BIN=$shared/models/stories260K.bin
STORIES_IMG=$out/stories260K.img
STORIES_GGUF=$shared/models/stories260K.gguf
TOK512=$shared/models/tok512.bin
TINYLLAMA_GGUF=$tiny
END
mv "$out/peers.env.tmp" "$out/peers.env"
say "ready: $out/peers.env"

#!/usr/bin/env bash
# A shared library exports exactly the functions its public headers declare:
#   exports.sh CC LIB.so NODE OWN_INCLUDE_DIRS [OTHER_INCLUDE_DIRS...]
# OWN_INCLUDE_DIRS (':'-separated) hold the library's installed headers;
# every function declared in a header under them (the compiler's own list,
# gcc -aux-info, with FLEXPAGE_EXPERIMENTAL defined so that fenced parts
# count) must be a dynamic symbol of LIB.so, versioned NODE_x.y by its
# version script, and LIB.so must export nothing else.  OTHER_INCLUDE_DIRS
# are for the headers those headers include.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: exports.sh CC LIB.so NODE OWN_INCLUDE_DIRS [OTHER_INCLUDE_DIRS...]" >&2; exit 2; }
cc=$1 lib=$2 node=$3
IFS=: read -r -a own <<<"$4"
shift 4
name=$(basename "$lib")
fail() { echo "exports $name: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
incs=()
for d in "${own[@]}" "$@"; do incs+=(-I"$d"); done

# every header under the own dirs, each compiled on its own
: >"$tmp/declared"
n_headers=0
while IFS= read -r -d '' h; do
	n_headers=$((n_headers + 1))
	printf '#include "%s"\n' "$h" >"$tmp/tu.c"
	"$cc" -std=gnu17 -DFLEXPAGE_EXPERIMENTAL "${incs[@]}" -aux-info "$tmp/tu.aux" -c "$tmp/tu.c" -o "$tmp/tu.o" ||
		fail "$h does not compile on its own"
	# lines: /* FILE:LINE:NC */ extern RET NAME (ARGS);   (NF: a definition, e.g. static inline)
	for d in "${own[@]}"; do
		grep -F "/* $d/" "$tmp/tu.aux" | grep -E ':[0-9]+:[NO]C \*/' |
			sed 's|^/\*[^*]*\*/ *||; s/ (.*//; s/.*[ *]//' >>"$tmp/declared" || true
	done
done < <(for d in "${own[@]}"; do find "$d" -name '*.h' -print0; done)
sort -u -o "$tmp/declared" "$tmp/declared"
[ "$n_headers" -gt 0 ] && [ -s "$tmp/declared" ] || fail "no function declarations found under ${own[*]}"

# defined dynamic symbols, but the version definitions themselves (type A)
nm -D --defined-only --format=posix "$lib" | awk '$2 != "A" { print $1 }' >"$tmp/symbols"
unversioned=$(grep -v "@@${node}_[0-9]" "$tmp/symbols" || true)
[ -z "$unversioned" ] || fail "exported without a ${node}_x.y version (a map without them?): $unversioned"
sed 's/@.*//' "$tmp/symbols" | sort -u >"$tmp/exported"

missing=$(comm -23 "$tmp/declared" "$tmp/exported")
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
# shellcheck disable=SC2086 # one name a word
[ -z "$missing" ] || echo "exports $name: declared in a public header but not exported (add them to the version script):" $missing >&2
# shellcheck disable=SC2086
[ -z "$extra" ] || echo "exports $name: exported but declared in no public header (internal symbols leak):" $extra >&2
[ -z "$missing$extra" ] || exit 1
echo "exports $name: the $(wc -l <"$tmp/exported") functions of $n_headers public header(s), nothing else"

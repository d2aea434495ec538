#!/usr/bin/env bash
# The installed libraries as a program outside the tree sees them:
#   run.sh BUILD_DIR FLEXPAGE_TOOL CC VERSION SOVERSION LIBDIR [CFLAGS...]
# installs BUILD_DIR into a temporary prefix with cmake --install, checks
# the layout (headers, static and shared libraries with their sonames,
# pkg-config files), compiles the installed headers alone as strict C17
# (and C++ when there is a compiler), builds consumer.c and rt_consumer.c
# in a directory of their own with nothing but pkg-config's flags, linked
# against the shared and against the static libraries, and runs them: over
# regions of real images (one `flexpage pack` wrote of a plain file) and a
# forward pass of a small model.  CFLAGS (the sanitizers of an ASan build)
# go to every compile.  Exit 0 when all holds, 77 without userfaultfd.
set -euo pipefail
[ $# -ge 6 ] || { echo "usage: run.sh BUILD_DIR FLEXPAGE_TOOL CC VERSION SOVERSION LIBDIR [CFLAGS...]" >&2; exit 2; }
build=$1 tool=$2 cc=$3 version=$4 soversion=$5 libdir=$6
shift 6
extra=("$@")
here=$(cd "$(dirname "$0")" && pwd)

fail() { echo "test_install: $*" >&2; exit 1; }

# O_DIRECT needs a disk file system, not tmpfs
for base in /var/tmp /tmp "$build"; do
	case $(stat -f -c %T "$base" 2>/dev/null) in tmpfs | ramfs | "") continue ;; esac
	tmp=$(mktemp -d "$base/flexpage-install.XXXXXX") && break
done
[ -n "${tmp:-}" ] || fail "no directory on a disk file system for the temporary prefix"
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix lib=$tmp/prefix/$libdir

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install $build failed"; }

# ---- the layout
for f in include/flexpage/flexpage.h include/flexpage/version.h include/flexrt/runtime.h \
	include/flexkern/kernels.h bin/flexpage; do
	[ -f "$prefix/$f" ] || fail "$f is not installed"
done
private=$(cd "$prefix" && find . -name '*.h' ! -path './include/flexpage/*' ! -path './include/flexrt/*' \
	! -path './include/flexkern/*' -o -name 'internal.h' -o -name '*.in')
[ -z "$private" ] || fail "private or template files installed: $private"
for name in flexpage flexrt flexkern; do
	[ -f "$lib/lib$name.a" ] || fail "$libdir/lib$name.a is not installed"
	real=$lib/lib$name.so.$version
	[ -f "$real" ] && [ ! -L "$real" ] || fail "$libdir/lib$name.so.$version is not installed"
	[ "$(readlink "$lib/lib$name.so.$soversion")" = "lib$name.so.$version" ] ||
		fail "$libdir/lib$name.so.$soversion is not a link to lib$name.so.$version"
	[ "$(readlink "$lib/lib$name.so")" = "lib$name.so.$soversion" ] ||
		fail "$libdir/lib$name.so is not a link to lib$name.so.$soversion"
	soname=$(readelf -d "$real" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
	[ "$soname" = "lib$name.so.$soversion" ] || fail "lib$name.so's soname is '$soname', not lib$name.so.$soversion"
	[ -f "$lib/pkgconfig/$name.pc" ] || fail "$libdir/pkgconfig/$name.pc is not installed"
done

# The preload library exports the functions it stands in for, nothing else.
preload=$lib/libflexpage-preload.so
[ -f "$preload" ] || fail "$libdir/libflexpage-preload.so is not installed"
exported=$(nm -D --defined-only "$preload" | awk '{ print $3 }' | sort | paste -sd' ')
want="madvise mlock mlock2 mlockall mmap mmap64 mprotect mremap munlock munlockall munmap posix_madvise"
[ "$exported" = "$want" ] || fail "libflexpage-preload.so exports '$exported', not '$want'"

# ---- pkg-config, from the prefix alone
export PKG_CONFIG_PATH=$lib/pkgconfig
for name in flexpage flexrt flexkern; do
	got=$(pkg-config --modversion "$name") || fail "pkg-config does not find $name"
	[ "$got" = "$version" ] || fail "pkg-config --modversion $name: $got, the project is $version"
done
flags=$(pkg-config --cflags --libs flexpage flexrt)
echo "pkg-config --cflags --libs flexpage flexrt: $flags"
root=$(cd "$here/../.." && pwd)
for tok in $flags; do
	case $tok in -I* | -L*)
		[[ ${tok:2} == "$prefix"/* ]] && continue
		[[ ${tok:2} == "$root"/* || ${tok:2} == "$build"/* ]] && fail "pkg-config points into the tree: $tok" ;;
	esac
done

# ---- out of the tree: nothing but the installed files
work=$tmp/consumer
mkdir "$work"
cp "$here/consumer.c" "$here/rt_consumer.c" "$work/"
cd "$work"
strict=(-Wall -Wextra -Werror "${extra[@]}")
compile() { "$@" || fail "cannot build against the installed files: $*"; }
# pkg-config's flags are words
# shellcheck disable=SC2046
cflags() { printf '%s\n' $(pkg-config --cflags "$@"); }
# -l:lib<name>.a for each of our libraries: the archives, not the .so
static_libs() { pkg-config --static --libs "$@" | sed -E 's/-l(flexpage|flexrt|flexkern)\b/-l:lib\1.a/g'; }

printf '#include <flexpage/flexpage.h>\n#include <flexrt/runtime.h>\n#include <flexkern/kernels.h>\n' >headers.c
compile "$cc" -std=c17 -pedantic "${strict[@]}" $(cflags flexpage flexrt) -c headers.c -o headers.o
if command -v c++ >/dev/null; then
	cp headers.c headers.cc
	compile c++ -std=c++17 -pedantic -Wall -Wextra -Werror $(cflags flexpage flexrt) -c headers.cc -o headers_cc.o
else
	echo "no C++ compiler: the headers' C++ check is left out"
fi

# shellcheck disable=SC2046
compile "$cc" -std=gnu17 "${strict[@]}" consumer.c -o consumer $(pkg-config --cflags --libs flexpage) -Wl,-rpath,"$lib"
# shellcheck disable=SC2046
compile "$cc" -std=gnu17 "${strict[@]}" rt_consumer.c -o rt_consumer $(pkg-config --cflags --libs flexrt) -lm -Wl,-rpath,"$lib"
# shellcheck disable=SC2046
compile "$cc" -std=gnu17 "${strict[@]}" consumer.c -o consumer_static $(cflags flexpage) $(static_libs flexpage)
# shellcheck disable=SC2046
compile "$cc" -std=gnu17 "${strict[@]}" rt_consumer.c -o rt_consumer_static $(cflags flexrt) $(static_libs flexrt) -lm

loads() {
	local deps
	deps=$(ldd "./$1")
	[[ $deps == *"=> $lib/$2.so.$soversion "* ]] || fail "$1 does not load the installed $2.so: $deps"
}
loads consumer libflexpage
loads rt_consumer libflexrt
loads rt_consumer libflexkern
deps=$(ldd ./consumer_static ./rt_consumer_static)
if grep -E 'lib(flexpage|flexrt|flexkern)\.so' <<<"$deps"; then
	fail "the static consumers load a shared flexpage library"
fi

# ---- run them over real images
# random, text (compressible), random again: chunks of either kind and a partial last one
{ head -c 300000 /dev/urandom; seq 1 60000; head -c 77777 /dev/urandom; } >plain.bin
"$tool" pack plain.bin packed.img --chunk 64K --codec zstd -q || fail "flexpage pack failed"
for c in consumer consumer_static; do
	rc=0
	"./$c" "$work" packed.img plain.bin || rc=$?
	[ $rc -eq 77 ] && exit 77
	[ $rc -eq 0 ] || fail "$c failed (exit $rc)"
done
./rt_consumer || fail "rt_consumer failed"
./rt_consumer_static || fail "rt_consumer_static failed"
echo "test_install: the installed flexpage $version builds and runs out of the tree"

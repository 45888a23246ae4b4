#!/bin/sh
# closure.sh LIST OS_LIBS DIR...
# Copies into /opt/lib every shared library that an ELF file under DIR... needs and that
# neither /opt nor the Lambda OS (the sonames in OS_LIBS) provides; appends each copied
# soname to LIST. Fails naming every library ldd cannot find, and what needs it.
# Runs with the build's /opt at /opt (in_opt): the paths ldd resolves are the final ones.
set -eu
list=$1 os_libs=$2
shift 2
mkdir -p /opt/lib
touch "$list"
# R's own libraries (libR.so) are found the way R's front end finds them.
LD_LIBRARY_PATH=/opt/lib:/opt/R/lib/R/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH

is_elf() { [ "$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')" = 7f454c46 ]; }
provided_by_os() { grep -Fqx -- "$1" "$os_libs"; }

missing=$(mktemp)
trap 'rm -f "$missing"' EXIT
find "$@" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) | sort | while IFS= read -r elf; do
  is_elf "$elf" || continue
  # ldd fails on static executables; they need nothing.
  deps=$(ldd "$elf" 2>/dev/null) || continue
  printf '%s\n' "$deps" | while read -r name arrow path _rest; do
    case "$arrow" in
      "=>") ;;
      *) continue ;; # the loader and the vdso: "name (0x...)"
    esac
    if [ "$path" = "not" ]; then
      provided_by_os "$name" || printf '%s (needed by %s)\n' "$name" "$elf" >>"$missing"
      continue
    fi
    case "$path" in /opt/*) continue ;; esac
    provided_by_os "$name" && continue
    if [ ! -e "/opt/lib/$name" ]; then
      cp -L -- "$path" "/opt/lib/$name"
      chmod 0755 "/opt/lib/$name"
      printf '%s\n' "$name" >>"$list"
      echo "bundled $name (from $path, for $elf)"
    fi
  done
done
if [ -s "$missing" ]; then
  echo "ERROR: shared libraries not found:" >&2
  sort -u "$missing" | sed 's/^/  /' >&2
  exit 1
fi

#!/bin/sh
# closure.sh LIST OS_LIBS DIR...
# Copies into /opt/lib every shared library that an ELF file under DIR... needs and that
# neither /opt nor the Lambda OS (the sonames in OS_LIBS) provides; appends each copied
# soname to LIST. Fails naming every library that cannot be found, and what needs it.
# Walks DT_NEEDED entries rather than ldd's flat list: a library the OS provides brings its
# own dependencies, so they are not bundled (libcurl's TLS/SSH/LDAP chain, for one).
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
needed() { LC_ALL=C readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'; }

missing=$(mktemp) queue=$(mktemp) next=$(mktemp)
trap 'rm -f "$missing" "$queue" "$next"' EXIT
find "$@" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) | sort >"$queue"
# Each round scans the files queued; libraries copied in a round are scanned in the next.
while [ -s "$queue" ]; do
  : >"$next"
  while IFS= read -r elf; do
    is_elf "$elf" || continue
    names=$(needed "$elf")
    [ -n "$names" ] || continue
    # ldd resolves where each name comes from (static executables: nothing to resolve).
    resolved=$(ldd "$elf" 2>/dev/null) || continue
    for name in $names; do
      provided_by_os "$name" && continue
      path=$(printf '%s\n' "$resolved" | awk -v n="$name" '$1 == n && $2 == "=>" {print $3; exit}')
      if [ -z "$path" ] || [ "$path" = "not" ]; then
        printf '%s (needed by %s)\n' "$name" "$elf" >>"$missing"
        continue
      fi
      case "$path" in /opt/*) continue ;; esac
      [ -e "/opt/lib/$name" ] && continue
      cp -L -- "$path" "/opt/lib/$name"
      chmod 0755 "/opt/lib/$name"
      printf '%s\n' "$name" >>"$list"
      printf '%s\n' "/opt/lib/$name" >>"$next"
      echo "bundled $name (from $path, for $elf)"
    done
  done <"$queue"
  cp "$next" "$queue"
done
if [ -s "$missing" ]; then
  echo "ERROR: shared libraries not found:" >&2
  sort -u "$missing" | sed 's/^/  /' >&2
  exit 1
fi

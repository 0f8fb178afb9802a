# Shared by scripts/check-fresh and scripts/build-image (sourced, not run): a minimal Debian bookworm
# root made by debootstrap from this machine's own Debian mirror, cached in /var/tmp/quiver-fresh,
# and the steps that turn a copy of it into a working root. Needs root.

# --- this machine's Debian sources, as one-line entries: "URI SUITE COMPONENTS" ---
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       comps = ""; for (j = i + 2; j <= NF; j++) comps = comps " " $j
                       print $i, $(i + 1) comps }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: blank-line separated stanzas with Types/URIs/Suites/Components.
    awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no")
                              for (u in U) for (s in S) print U[u], S[s], comps
                            delete U; delete S; types = ""; comps = ""; enabled = "" }
         /^[ \t]*$/ { flush(); next }
         /^#/ { next }
         { key = $1; sub(/:$/, "", key); $1 = ""; sub(/^ /, "")
           if (key == "Types") types = $0
           else if (key == "URIs") { n = split($0, a, " "); for (k = 1; k <= n; k++) U[k] = a[k] }
           else if (key == "Suites") { n = split($0, a, " "); for (k = 1; k <= n; k++) S[k] = a[k] }
           else if (key == "Components") comps = $0
           else if (key == "Enabled") enabled = tolower($0) }
         END { flush() }' "$f"
  done
}
# bookworm_base WHO REBUILD: sets CACHE, BASE (the cached minbase root), ENTRIES (this machine's
# bookworm sources) and MIRROR; builds the base when missing (or REBUILD=1). Holds the cache's lock
# (fd 9) until the caller exits: checks and image builds share the base and the package cache.
bookworm_base() {
  local who="$1" rebuild="${2:-0}" e uri suite
  mapfile -t ENTRIES < <(apt_entries | awk '$2 ~ /^bookworm/' | sort -u)
  MIRROR=""
  for e in "${ENTRIES[@]}"; do
    read -r uri suite _ <<<"$e"
    if [ "$suite" = bookworm ]; then MIRROR="$uri"; break; fi
  done
  [ -n "$MIRROR" ] || { echo "$who: no 'bookworm' Debian source in this machine's apt sources" >&2; exit 2; }
  CACHE=/var/tmp/quiver-fresh
  BASE="$CACHE/base-bookworm"
  mkdir -p "$CACHE/apt-archives/partial"
  exec 9>"$CACHE/lock"
  flock 9
  if [ "$rebuild" = 1 ] || [ ! -f "$BASE/.quiver-base-complete" ]; then
    echo "$who: debootstrap --variant=minbase bookworm from $MIRROR (cached in $BASE)"
    rm -rf "$BASE"
    debootstrap --variant=minbase --cache-dir="$CACHE/apt-archives" bookworm "$BASE" "$MIRROR" \
      > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    date -u +%FT%TZ > "$BASE/.quiver-base-complete"
  fi
}

# seed_root ROOT: a fresh copy of the base with this machine's sources (read now, never stored in the
# repository), its resolver, /etc/hosts, and no daemons started by package scripts (haproxy, prometheus ...).
seed_root() {
  local root="$1" e
  cp -a "$BASE/." "$root/"
  rm -f "$root/.quiver-base-complete"
  : > "$root/etc/apt/sources.list"
  rm -f "$root"/etc/apt/sources.list.d/*
  for e in "${ENTRIES[@]}"; do echo "deb $e" >> "$root/etc/apt/sources.list"; done
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # debootstrap writes no /etc/hosts; Debian's installer (and every container runtime) does, and
  # tests resolve "localhost" through it.
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
}

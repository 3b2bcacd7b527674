#!/usr/bin/env bash
# ipex-upgrade-backup: copy state directories into timestamped backups before
# an upgrade, and prune backups by the timestamp in their names (never by
# mtime: rsync -a gives a backup the source's mtime, so a state directory
# untouched for longer than the limit would lose its fresh backup at once).
#
# Usage:
#   ipex-upgrade-backup --backup-dir DIR --keep-days N
#                       [--source NAME:PATH]... [--exclude NAME:PATTERN]...
#                       [--new-system PATH --current-system PATH]
#
# Each source PATH is copied to DIR/NAME-YYYYmmdd-HHMMSS (UTC) with rsync -a,
# without the rsync PATTERNs given for NAME (anchored at PATH, e.g. /models/).
# A copy is made under NAME-….partial and renamed when complete, so a failed
# copy is never taken for a backup. Then every DIR/NAME-YYYYmmdd-HHMMSS older
# than N days is removed; other entries of DIR are left alone.
# With --new-system and --current-system, nothing is done when both resolve
# to the same path (the upgrade would not change the system).
# Exit codes: 0 ok, 1 a copy or removal failed, 2 usage error (nothing done).
set -euo pipefail

synopsis="usage: ipex-upgrade-backup --backup-dir DIR --keep-days N [--source NAME:PATH]... [--exclude NAME:PATTERN]... [--new-system PATH --current-system PATH]"

usage() {
  echo "ipex-upgrade-backup: $1" >&2
  echo "$synopsis" >&2
  exit 2
}

backup_dir=""
keep_days=""
new_system=""
current_system=""
names=()
paths=()
exclude_names=()
exclude_patterns=()

while [ $# -gt 0 ]; do
  case "$1" in
    --backup-dir | --keep-days | --source | --exclude | --new-system | --current-system)
      [ $# -ge 2 ] || usage "$1 needs a value"
      ;;
  esac
  case "$1" in
    --backup-dir) backup_dir=$2 ;;
    --keep-days) keep_days=$2 ;;
    --new-system) new_system=$2 ;;
    --current-system) current_system=$2 ;;
    --source)
      case "$2" in
        *:/*) ;;
        *) usage "--source takes NAME:/absolute/path, got '$2'" ;;
      esac
      names+=("${2%%:*}")
      paths+=("${2#*:}")
      ;;
    --exclude)
      case "$2" in
        ?*:?*) ;;
        *) usage "--exclude takes NAME:PATTERN, got '$2'" ;;
      esac
      exclude_names+=("${2%%:*}")
      exclude_patterns+=("${2#*:}")
      ;;
    -h | --help)
      echo "$synopsis"
      echo "Copies each PATH to DIR/NAME-YYYYmmdd-HHMMSS (rsync -a, without the PATTERNs for NAME),"
      echo "then removes DIR/NAME-YYYYmmdd-HHMMSS entries whose timestamp is more than N days old."
      echo "With --new-system/--current-system, does nothing when both are the same system."
      exit 0
      ;;
    *) usage "unknown argument '$1'" ;;
  esac
  shift 2
done

[ -n "$backup_dir" ] || usage "--backup-dir is required"
case "$backup_dir" in
  /*) ;;
  *) usage "--backup-dir must be an absolute path, got '$backup_dir'" ;;
esac
[[ "$keep_days" =~ ^[1-9][0-9]*$ ]] || usage "--keep-days must be a positive number of days, got '$keep_days'"
if { [ -n "$new_system" ] && [ -z "$current_system" ]; } || { [ -z "$new_system" ] && [ -n "$current_system" ]; }; then
  usage "--new-system and --current-system go together"
fi
for name in "${names[@]}"; do
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || usage "source name '$name' may hold only letters, digits, '.', '_' and '-'"
done

if [ -n "$new_system" ]; then
  new=$(readlink -f -- "$new_system" || true)
  current=$(readlink -f -- "$current_system" || true)
  if [ -n "$new" ] && [ "$new" = "$current" ]; then
    echo "ipex-upgrade-backup: $new is already the current system: no upgrade, no backup"
    exit 0
  fi
fi

umask 077
mkdir -p -- "$backup_dir"
stamp=$(date -u +%Y%m%d-%H%M%S)
status=0

for i in "${!names[@]}"; do
  name=${names[$i]}
  src=${paths[$i]}
  if [ ! -d "$src" ]; then
    echo "ipex-upgrade-backup: $src does not exist, nothing to back up for $name"
    continue
  fi
  dest="$backup_dir/$name-$stamp"
  if [ -e "$dest" ]; then
    echo "ipex-upgrade-backup: $dest exists already" >&2
    status=1
    continue
  fi
  args=(-a --delete)
  for j in "${!exclude_names[@]}"; do
    if [ "${exclude_names[$j]}" = "$name" ]; then
      args+=("--exclude=${exclude_patterns[$j]}")
    fi
  done
  rm -rf -- "$dest.partial"
  if rsync "${args[@]}" -- "$src/" "$dest.partial/" && mv -T -- "$dest.partial" "$dest"; then
    echo "ipex-upgrade-backup: $src -> $dest"
  else
    echo "ipex-upgrade-backup: backing up $src failed" >&2
    rm -rf -- "$dest.partial"
    status=1
  fi
done

# Prune by the name's timestamp: YYYYmmddHHMMSS compares as a string.
cutoff=$(date -u -d "@$(($(date -u +%s) - keep_days * 86400))" +%Y%m%d%H%M%S)
shopt -s nullglob
for entry in "$backup_dir"/*; do
  base=${entry##*/}
  if [[ "$base" =~ ^.+-([0-9]{8})-([0-9]{6})$ ]]; then
    taken="${BASH_REMATCH[1]}${BASH_REMATCH[2]}"
    if [[ "$taken" < "$cutoff" ]]; then
      if rm -rf -- "$entry"; then
        echo "ipex-upgrade-backup: removed $entry (older than $keep_days days)"
      else
        echo "ipex-upgrade-backup: could not remove $entry" >&2
        status=1
      fi
    fi
  fi
done
exit "$status"

# ipex-security-scan: vulnerability scan of the flake's closure and an audit
# of flake.lock. Usage: ipex-security-scan [--flake DIR] [--attr ATTR]...
# Exit 0 clean, 1 findings, 2 usage error.
set -euo pipefail

flake=.
# Set by the package to the store path of lock-nixpkgs.jq.
lock_nixpkgs_jq="@lockNixpkgsJq@"
attrs=()
whitelist=""
while [ $# -gt 0 ]; do
  case "$1" in
    --flake) flake="$2"; shift 2 ;;
    --attr) attrs+=("$2"); shift 2 ;;
    --whitelist) whitelist="$2"; shift 2 ;;
    -h|--help)
      echo "usage: ipex-security-scan [--flake DIR] [--attr ATTR]... [--whitelist FILE]"
      exit 0 ;;
    *) echo "ipex-security-scan: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#attrs[@]} -eq 0 ]; then
  attrs=(ollama-ipex comfyui-ipex invokeai-ipex python-ipex ipex-exporter)
fi

nix() { command nix --extra-experimental-features 'nix-command flakes' "$@"; }
findings=0

echo "== flake.lock audit"
lock="$flake/flake.lock"
if [ ! -f "$lock" ]; then
  echo "FINDING: $lock is missing: run 'nix flake lock' and commit flake.lock so every build is pinned."
  findings=$((findings + 1))
else
  # Every locked node must have a narHash and an immutable revision.
  unpinned=$(jq -r '.nodes | to_entries[] | select(.key != "root")
    | select((.value.locked.narHash // "") == "" or ((.value.locked.rev // "") == "" and .value.locked.type != "path"))
    | .key' "$lock")
  if [ -n "$unpinned" ]; then
    echo "FINDING: inputs without a narHash or revision: $unpinned"
    findings=$((findings + 1))
  fi
  # Inputs older than 90 days miss security fixes.
  now=$(date +%s)
  stale=$(jq -r --argjson now "$now" '.nodes | to_entries[] | select(.key != "root")
    | select(.value.locked.lastModified != null and ($now - .value.locked.lastModified) > 7776000)
    | "\(.key) (\((($now - .value.locked.lastModified) / 86400) | floor) days)"' "$lock")
  if [ -n "$stale" ]; then
    echo "FINDING: inputs locked more than 90 days ago; run 'nix flake update':"
    echo "$stale"
    findings=$((findings + 1))
  fi
  # More than one nixpkgs node reached from the root means an input does
  # not follow ours (lock-nixpkgs.jq resolves follows; unused nodes do not
  # count).
  nixpkgs=$(jq -r -f "$lock_nixpkgs_jq" "$lock")
  extra=$(printf '%s\n' "$nixpkgs" | grep '^extra' || true)
  if [ -n "$extra" ]; then
    echo "FINDING: $(printf '%s\n' "$nixpkgs" | grep -c .) nixpkgs nodes in use in flake.lock; add to flake.nix:"
    printf '%s\n' "$extra" | while IFS=$'\t' read -r _ node path line; do
      echo "  $line   # $path (node $node)"
    done
    findings=$((findings + 1))
  fi
fi

echo "== closure vulnerability scan (vulnix)"
system=$(nix eval --impure --raw --expr builtins.currentSystem)
for attr in "${attrs[@]}"; do
  echo "-- $attr"
  drv=$(nix path-info --derivation "$flake#packages.$system.$attr" 2>/dev/null | tail -n1 || true)
  if [ -z "$drv" ]; then
    echo "FINDING: cannot evaluate $attr; fix the evaluation error first."
    findings=$((findings + 1))
    continue
  fi
  # The runtime closure when built, else the build-time closure of the .drv.
  out=$(nix-store -q --outputs "$drv" | head -n1)
  target="$drv"
  args=(--json)
  if [ -e "$out" ]; then
    target="$out"
    args+=(--closure)
  fi
  echo "closure: $(nix-store -q --requisites "$target" | wc -l) paths"
  if [ -n "$whitelist" ]; then args+=(--whitelist "$whitelist"); fi
  report=$(vulnix "${args[@]}" "$target" || true)
  count=$(echo "${report:-[]}" | jq 'length')
  if [ "$count" -gt 0 ]; then
    echo "FINDING: $count vulnerable derivations in $attr:"
    echo "$report" | jq -r '.[] | "  \(.name): \(.affected_by | join(", "))"'
    findings=$((findings + 1))
  fi
done

echo "== summary: $findings finding(s)"
[ "$findings" -eq 0 ]

#!/usr/bin/env bash
# ipex-hardware-detect: write the device selector the IPEX services use to
# $IPEX_HARDWARE_ENV (default /run/ipex/hardware.env). With --want-gpu and an
# Intel GPU (PCI vendor 0x8086) that has a render node, the selector is
# --selector; otherwise --fallback-selector and IPEX_CPU_FALLBACK=1. When the
# file changes from an earlier run, the --restart units are restarted (not
# waited for: they are ordered after this unit). Run at boot and by udev
# whenever a render node appears. IPEX_SYSFS and IPEX_DEV (default /sys and
# /dev) exist for tests.
set -euo pipefail

selector=""
fallback=""
want_gpu=false
restart=()
while [ $# -gt 0 ]; do
  case "$1" in
    --selector | --fallback-selector | --restart)
      [ $# -ge 2 ] || {
        echo "ipex-hardware-detect: $1 needs a value" >&2
        exit 2
      }
      ;;
  esac
  case "$1" in
    --selector) selector=$2 && shift ;;
    --fallback-selector) fallback=$2 && shift ;;
    --restart) restart+=("$2") && shift ;;
    --want-gpu) want_gpu=true ;;
    *)
      echo "ipex-hardware-detect: unknown argument '$1'" >&2
      exit 2
      ;;
  esac
  shift
done
if [ -z "$selector" ] || [ -z "$fallback" ]; then
  echo "ipex-hardware-detect: --selector and --fallback-selector are required" >&2
  exit 2
fi

sysfs=${IPEX_SYSFS:-/sys}
dev=${IPEX_DEV:-/dev}
out=${IPEX_HARDWARE_ENV:-/run/ipex/hardware.env}
old=$(cat "$out" 2>/dev/null || true)

gpus=()
for card in "$sysfs"/class/drm/card[0-9]*; do
  [ -e "$card/device/vendor" ] || continue
  case "${card##*/}" in *-*) continue ;; esac
  if [ "$(cat "$card/device/vendor")" = "0x8086" ]; then
    gpus+=("${card##*/}:$(cat "$card/device/device")")
  fi
done
render=false
for node in "$dev"/dri/renderD*; do
  if [ -e "$node" ]; then
    render=true
    break
  fi
done

{
  echo "IPEX_DETECTED_GPUS=${gpus[*]:-none}"
  if $want_gpu && [ ${#gpus[@]} -gt 0 ] && $render; then
    echo "ONEAPI_DEVICE_SELECTOR=$selector"
  else
    echo "ONEAPI_DEVICE_SELECTOR=$fallback"
    echo "IPEX_CPU_FALLBACK=1"
  fi
} >"$out.new"
mv "$out.new" "$out"
cat "$out"
if [ -n "$old" ] && [ "$old" != "$(cat "$out")" ] && [ ${#restart[@]} -gt 0 ]; then
  echo "hardware changed: restarting ${restart[*]}"
  systemctl --no-block try-restart "${restart[@]}"
fi

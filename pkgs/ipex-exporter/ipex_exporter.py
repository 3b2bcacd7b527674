"""Prometheus exporter for IPEX hosts.

Serves /metrics in the Prometheus text format with:
  ipex_gpu_devices                 Intel GPUs in sysfs
  ipex_gpu_render_node_accessible  1 when the GPU's render node opens read-write
  ipex_gpu_frequency_ratio         actual / maximum GT frequency (i915 and xe sysfs);
                                   a frequency, not a busy ratio
  ipex_gpu_temperature_celsius     hwmon temp1_input of each Intel GPU
  ipex_gpu_energy_joules_total     hwmon energy1_input (rate() gives watts)
  ipex_gpu_power_watts             energy delta between two scrapes
  ipex_memory_total_bytes, ipex_memory_available_bytes   /proc/meminfo
  ipex_memory_pressure_some_ratio, ipex_memory_pressure_full_ratio
                                   /proc/pressure/memory avg60 (share of time stalled)
  ipex_filesystem_size_bytes, ipex_filesystem_avail_bytes  statvfs of --disk-path
  ipex_gpu_memory_total_bytes, ipex_gpu_memory_free_bytes ComfyUI /system_stats
  ipex_service_up, ipex_api_probe_duration_seconds  round trip of a cheap API call
                                   (/api/tags, /system_stats) per service
  ipex_inference_probe_first_token_seconds  histogram of the time to the first
                                   text of a short generation with
                                   --ollama-probe-model, every --probe-interval
  ipex_inference_probe_failures_total  probes that failed or produced no token
  ipex_throughput_queue_pending, ipex_throughput_queue_running,
  ipex_throughput_prompts_completed                      ComfyUI /queue, /history
  ipex_models_loaded                                     Ollama /api/tags

The text format is prometheus_client's (label escaping, float formatting,
HELP/TYPE lines); the exporter reads only, so it runs hardened with no
writable paths and no privileges.
"""

import argparse
import glob
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

INTEL_VENDOR = "0x8086"
# Buckets of the first-token histogram, around the 2 s target.
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
# Tokens a probe may generate before its first text arrives.
PROBE_TOKENS = 8


def read(path):
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def read_number(path):
    value = read(path)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def intel_cards(sysfs):
    """Yield (name, card_dir) for every DRM card whose PCI vendor is Intel."""
    for card in sorted(glob.glob(os.path.join(sysfs, "class/drm/card[0-9]*"))):
        name = os.path.basename(card)
        if "-" in name:  # connectors such as card0-DP-1
            continue
        if read(os.path.join(card, "device/vendor")) == INTEL_VENDOR:
            yield name, card


def frequency_ratio(card):
    pairs = [
        ("gt_act_freq_mhz", "gt_max_freq_mhz"),  # i915
        ("device/tile0/gt0/freq0/act_freq", "device/tile0/gt0/freq0/max_freq"),  # xe
    ]
    for act, top in pairs:
        a = read_number(os.path.join(card, act))
        m = read_number(os.path.join(card, top))
        if a is not None and m:
            return a / m
    return None


def render_nodes(card):
    """Names of the render nodes (renderD128, …) that belong to a card."""
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(card, "device/drm/renderD*")))


def accessible(path):
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def pressure(procfs, kind):
    """avg60 of /proc/pressure/<kind> as {"some": ratio, "full": ratio}."""
    out = {}
    for line in (read(os.path.join(procfs, "pressure", kind)) or "").splitlines():
        parts = line.split()
        if not parts:
            continue
        for field in parts[1:]:
            key, _, value = field.partition("=")
            if key == "avg60":
                try:
                    out[parts[0]] = float(value) / 100.0
                except ValueError:
                    pass
    return out


def filesystem(path):
    try:
        st = os.statvfs(path)
    except OSError:
        return None, None
    return float(st.f_blocks * st.f_frsize), float(st.f_bavail * st.f_frsize)


class FirstTokenProbe:
    """Times the first text of short generations against Ollama, as a histogram.

    Each probe streams /api/generate (at most PROBE_TOKENS tokens, greedy)
    and records the time from sending the request to the first chunk that
    carries text (response or thinking), then closes the stream, which stops
    the generation. More than one token is allowed because a token can be
    part of a UTF-8 character, which Ollama holds back until it is complete.
    A probe without text counts as a failure, never as a time.
    """

    def __init__(self, url, model, timeout=60.0):
        self.url = url.rstrip("/") + "/api/generate"
        self.model = model
        self.timeout = timeout
        self.lock = threading.Lock()
        self.counts = [0] * len(FIRST_TOKEN_BUCKETS)
        self.count = 0
        self.total = 0.0
        self.failures = 0

    def observe(self, seconds):
        with self.lock:
            for i, bound in enumerate(FIRST_TOKEN_BUCKETS):
                if seconds <= bound:
                    self.counts[i] += 1
            self.count += 1
            self.total += seconds

    def fail(self):
        with self.lock:
            self.failures += 1

    def run_once(self):
        body = json.dumps(
            {
                "model": self.model,
                "prompt": "Say hi.",
                "stream": True,
                "think": False,
                "options": {"num_predict": PROBE_TOKENS, "temperature": 0},
            }
        ).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                for line in resp:
                    line = line.strip()
                    if not line:
                        continue
                    chunk = json.loads(line)
                    if chunk.get("error"):
                        break
                    if chunk.get("response") or chunk.get("thinking"):
                        self.observe(time.perf_counter() - start)
                        return True
                    if chunk.get("done"):
                        break
        except (OSError, ValueError, urllib.error.URLError):
            pass
        self.fail()
        return False

    def loop(self, interval, stop):
        while not stop.wait(0 if self.count + self.failures == 0 else interval):
            self.run_once()

    def families(self):
        """The histogram of first-token times and the failure counter."""
        with self.lock:
            counts, count, total, failures = list(self.counts), self.count, self.total, self.failures
        labels = ["service", "model"]
        values = ["ollama", self.model]
        hist = HistogramMetricFamily(
            "ipex_inference_probe_first_token_seconds",
            "Time to the first text of a short probe generation.",
            labels=labels,
        )
        buckets = [(f"{bound:g}", float(c)) for bound, c in zip(FIRST_TOKEN_BUCKETS, counts)]
        hist.add_metric(values, buckets + [("+Inf", float(count))], total)
        fails = CounterMetricFamily(
            "ipex_inference_probe_failures_total",
            "Probe generations that failed or produced no text.",
            labels=labels,
        )
        fails.add_metric(values, float(failures))
        return [hist, fails]

    def lines(self):
        """The probe's metrics as lines of the text format."""
        return generate_latest(_Snapshot(self.families())).decode().splitlines()


def hwmon_value(card, name):
    for path in sorted(glob.glob(os.path.join(card, "device/hwmon/hwmon*", name))):
        value = read_number(path)
        if value is not None:
            return value
    return None


def meminfo(procfs):
    out = {}
    text = read(os.path.join(procfs, "meminfo")) or ""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def fetch_json(url, timeout):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = json.load(resp)
    return body, time.perf_counter() - start


def family(name, kind, help_text, samples):
    """The metric family of samples ((labels, value) pairs, None values
    dropped), or None when no sample is left. Every sample of a family has
    the same label names."""
    samples = [(labels, value) for labels, value in samples if value is not None]
    if not samples:
        return None
    make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    fam = make(name, help_text, labels=sorted(samples[0][0]))
    for labels, value in samples:
        fam.add_metric([labels[k] for k in sorted(labels)], float(value))
    return fam


class _Snapshot:
    """A registry of already collected families, for generate_latest."""

    def __init__(self, families):
        self._families = families

    def collect(self):
        return iter(self._families)


class Collector:
    """Collects the metrics (prometheus_client families); keeps the last
    energy reading for power."""

    def __init__(
        self,
        sysfs="/sys",
        procfs="/proc",
        ollama_url=None,
        comfyui_url=None,
        timeout=5.0,
        devfs="/dev",
        disk_paths=(),
        probe=None,
    ):
        self.sysfs = sysfs
        self.procfs = procfs
        self.devfs = devfs
        self.ollama_url = ollama_url
        self.comfyui_url = comfyui_url
        self.timeout = timeout
        self.disk_paths = list(disk_paths)
        self.probe = probe
        self._energy = {}

    def collect(self, now=None):
        """The metrics in the Prometheus text format."""
        return generate_latest(_Snapshot(self.families(now))).decode()

    def families(self, now=None):
        """The metric families of one scrape."""
        now = time.monotonic() if now is None else now
        out = []

        def metric(name, kind, help_text, samples):
            fam = family(name, kind, help_text, samples)
            if fam is not None:
                out.append(fam)

        cards = list(intel_cards(self.sysfs))
        metric("ipex_gpu_devices", "gauge", "Intel GPUs found in sysfs.", [({}, float(len(cards)))])
        nodes = [(n, r) for n, c in cards for r in render_nodes(c)]
        metric(
            "ipex_gpu_render_node_accessible",
            "gauge",
            "1 when the GPU's render node opens read-write for this exporter (render group), else 0.",
            [
                ({"card": n, "node": r}, 1.0 if accessible(os.path.join(self.devfs, "dri", r)) else 0.0)
                for n, r in nodes
            ],
        )
        metric(
            "ipex_gpu_frequency_ratio",
            "gauge",
            "Actual over maximum GT frequency (not a busy ratio: an idle GPU may run at a high clock).",
            [({"card": n}, frequency_ratio(c)) for n, c in cards],
        )
        temps = [({"card": n}, hwmon_value(c, "temp1_input")) for n, c in cards]
        metric(
            "ipex_gpu_temperature_celsius",
            "gauge",
            "GPU temperature from hwmon.",
            [(l, v / 1000.0 if v is not None else None) for l, v in temps],
        )
        energy, power = [], []
        for n, c in cards:
            uj = hwmon_value(c, "energy1_input")
            if uj is None:
                continue
            joules = uj / 1e6
            energy.append(({"card": n}, joules))
            last = self._energy.get(n)
            if last is not None and now > last[0] and joules >= last[1]:
                power.append(({"card": n}, (joules - last[1]) / (now - last[0])))
            self._energy[n] = (now, joules)
        metric("ipex_gpu_energy_joules_total", "counter", "GPU energy used, from hwmon.", energy)
        metric("ipex_gpu_power_watts", "gauge", "GPU power over the last scrape interval.", power)

        mem = meminfo(self.procfs)
        metric("ipex_memory_total_bytes", "gauge", "System memory.", [({}, mem.get("MemTotal"))])
        metric("ipex_memory_available_bytes", "gauge", "Available system memory.", [({}, mem.get("MemAvailable"))])
        psi = pressure(self.procfs, "memory")
        metric(
            "ipex_memory_pressure_some_ratio",
            "gauge",
            "Share of the last 60 s in which some task stalled on memory (PSI avg60).",
            [({}, psi.get("some"))],
        )
        metric(
            "ipex_memory_pressure_full_ratio",
            "gauge",
            "Share of the last 60 s in which all non-idle tasks stalled on memory (PSI avg60).",
            [({}, psi.get("full"))],
        )
        sizes = [(p, filesystem(p)) for p in self.disk_paths]
        metric(
            "ipex_filesystem_size_bytes",
            "gauge",
            "Size of the file system holding the path.",
            [({"path": p}, size) for p, (size, _) in sizes],
        )
        metric(
            "ipex_filesystem_avail_bytes",
            "gauge",
            "Space available to unprivileged users on the file system holding the path.",
            [({"path": p}, avail) for p, (_, avail) in sizes],
        )

        up, latency = [], []
        if self.ollama_url:
            try:
                tags, seconds = fetch_json(self.ollama_url.rstrip("/") + "/api/tags", self.timeout)
                up.append(({"service": "ollama"}, 1.0))
                latency.append(({"service": "ollama"}, seconds))
                metric(
                    "ipex_models_loaded",
                    "gauge",
                    "Models present in Ollama.",
                    [({"service": "ollama"}, float(len(tags.get("models") or [])))],
                )
            except (OSError, ValueError, urllib.error.URLError):
                up.append(({"service": "ollama"}, 0.0))
        if self.comfyui_url:
            base = self.comfyui_url.rstrip("/")
            try:
                stats, seconds = fetch_json(base + "/system_stats", self.timeout)
                up.append(({"service": "comfyui"}, 1.0))
                latency.append(({"service": "comfyui"}, seconds))
                devices = stats.get("devices") or []
                metric(
                    "ipex_gpu_memory_total_bytes",
                    "gauge",
                    "Device memory as ComfyUI's torch sees it.",
                    [({"device": d.get("name", str(i))}, float(d.get("vram_total", 0))) for i, d in enumerate(devices)],
                )
                metric(
                    "ipex_gpu_memory_free_bytes",
                    "gauge",
                    "Free device memory as ComfyUI's torch sees it.",
                    [({"device": d.get("name", str(i))}, float(d.get("vram_free", 0))) for i, d in enumerate(devices)],
                )
                queue, _ = fetch_json(base + "/queue", self.timeout)
                metric(
                    "ipex_throughput_queue_running",
                    "gauge",
                    "ComfyUI prompts running.",
                    [({"service": "comfyui"}, float(len(queue.get("queue_running") or [])))],
                )
                metric(
                    "ipex_throughput_queue_pending",
                    "gauge",
                    "ComfyUI prompts waiting.",
                    [({"service": "comfyui"}, float(len(queue.get("queue_pending") or [])))],
                )
                history, _ = fetch_json(base + "/history", self.timeout)
                metric(
                    "ipex_throughput_prompts_completed",
                    "gauge",
                    "ComfyUI prompts in the history (ComfyUI keeps the last 10000).",
                    [({"service": "comfyui"}, float(len(history)))],
                )
            except (OSError, ValueError, urllib.error.URLError):
                up.append(({"service": "comfyui"}, 0.0))
        metric("ipex_service_up", "gauge", "1 when the service API answered.", up)
        metric(
            "ipex_api_probe_duration_seconds",
            "gauge",
            "Round trip of a cheap API call (/api/tags, /system_stats); not an inference.",
            latency,
        )
        if self.probe is not None:
            out.extend(self.probe.families())
        return out


def make_handler(collector):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            body = collector.collect().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description="Prometheus exporter for IPEX hosts")
    parser.add_argument("--listen-address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9835)
    parser.add_argument("--ollama-url")
    parser.add_argument("--comfyui-url")
    parser.add_argument("--sysfs", default="/sys")
    parser.add_argument("--procfs", default="/proc")
    parser.add_argument("--devfs", default="/dev")
    parser.add_argument(
        "--disk-path", action="append", default=[], help="report the file system holding this path (repeatable)"
    )
    parser.add_argument(
        "--ollama-probe-model",
        help="time the first token of a short generation with this (already pulled) model every --probe-interval seconds",
    )
    parser.add_argument("--probe-interval", type=float, default=60.0)
    parser.add_argument("--once", action="store_true", help="print the metrics once and exit")
    args = parser.parse_args(argv)
    if args.ollama_probe_model and not args.ollama_url:
        parser.error("--ollama-probe-model needs --ollama-url")
    if args.probe_interval <= 0:
        parser.error("--probe-interval must be positive")
    probe = FirstTokenProbe(args.ollama_url, args.ollama_probe_model) if args.ollama_probe_model else None
    collector = Collector(
        args.sysfs,
        args.procfs,
        args.ollama_url,
        args.comfyui_url,
        devfs=args.devfs,
        disk_paths=args.disk_path,
        probe=probe,
    )
    if args.once:
        if probe is not None:
            probe.run_once()
        sys.stdout.write(collector.collect())
        return 0
    if probe is not None:
        threading.Thread(target=probe.loop, args=(args.probe_interval, threading.Event()), daemon=True).start()
    server = ThreadingHTTPServer((args.listen_address, args.port), make_handler(collector))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

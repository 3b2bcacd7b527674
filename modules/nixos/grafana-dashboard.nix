# The IPEX Grafana dashboard, as Nix data (written out as JSON by monitoring.nix).
let
  panel = id: title: y: x: exprs: unit: {
    inherit id title;
    type = "timeseries";
    datasource = {
      type = "prometheus";
      uid = "ipex-prometheus";
    };
    gridPos = {
      inherit x y;
      w = 12;
      h = 8;
    };
    fieldConfig.defaults.unit = unit;
    targets = map (e: {
      expr = e.expr;
      legendFormat = e.legend;
      refId = e.ref;
    }) exprs;
  };
in
{
  uid = "ipex-overview";
  title = "IPEX Overview";
  schemaVersion = 39;
  time = {
    from = "now-6h";
    to = "now";
  };
  refresh = "30s";
  panels = [
    # The seed's panel title; the metric is the GT frequency ratio (what sysfs
    # offers without perf privileges), and the legend says so.
    (panel 1 "GPU Utilization Over Time" 0 0 [
      {
        expr = "ipex_gpu_frequency_ratio";
        legend = "{{card}} frequency / max";
        ref = "A";
      }
    ] "percentunit")
    (panel 2 "Memory Usage Patterns" 0 12 [
      {
        expr = "1 - ipex_memory_available_bytes / ipex_memory_total_bytes";
        legend = "system";
        ref = "A";
      }
      {
        expr = "1 - ipex_gpu_memory_free_bytes / ipex_gpu_memory_total_bytes";
        legend = "{{device}}";
        ref = "B";
      }
    ] "percentunit")
    (panel 3 "Inference Performance" 8 0 [
      {
        expr = "histogram_quantile(0.95, sum by (le, model) (rate(ipex_inference_probe_first_token_seconds_bucket[15m])))";
        legend = "{{model}} p95 first token";
        ref = "A";
      }
      {
        expr = "ipex_throughput_queue_pending";
        legend = "{{service}} queue";
        ref = "B";
      }
    ] "s")
    (panel 4 "System Health" 8 12 [
      {
        expr = "ipex_service_up";
        legend = "{{service}} up";
        ref = "A";
      }
      {
        expr = "ipex_gpu_temperature_celsius";
        legend = "{{card}} °C";
        ref = "B";
      }
      {
        expr = "ipex_gpu_power_watts";
        legend = "{{card}} W";
        ref = "C";
      }
    ] "short")
    (panel 5 "Model Performance Comparison" 16 0 [
      {
        expr = "rate(ipex_throughput_prompts_completed[15m])";
        legend = "ComfyUI prompts/s";
        ref = "A";
      }
      {
        expr = "ipex_models_loaded";
        legend = "Ollama models";
        ref = "B";
      }
    ] "short")
  ];
}

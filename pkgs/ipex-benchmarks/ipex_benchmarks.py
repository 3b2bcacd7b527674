"""Sample IPEX workloads: matmul, conv2d and a ResNet-style inference loop.

Runs each workload on the requested device ("xpu" when an Intel GPU is
visible, else "cpu"), with and without ipex.optimize, and prints one JSON
document with the timings so CI can compare runs.
"""

import argparse
import json
import platform
import sys
import time


def pick_device(requested):
    import torch

    if requested != "auto":
        return requested
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return "xpu"
    return "cpu"


def synchronize(device):
    import torch

    if device == "xpu":
        torch.xpu.synchronize()


def timed(fn, device, warmup, iterations):
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iterations


def matmul(device, dtype, size, warmup, iterations):
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, warmup, iterations)
    return {"seconds": seconds, "tflops": 2 * size**3 / seconds / 1e12}


def conv2d(device, dtype, batch, warmup, iterations, optimize):
    import torch

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 7, stride=2, padding=3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(64, 128, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(128, 10),
    ).eval().to(device=device, dtype=dtype)
    if optimize:
        import intel_extension_for_pytorch as ipex

        model = ipex.optimize(model, dtype=dtype)
    x = torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)

    def run():
        with torch.no_grad():
            model(x)

    seconds = timed(run, device, warmup, iterations)
    return {"seconds": seconds, "images_per_second": batch / seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto", choices=["auto", "xpu", "cpu"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--size", type=int, default=2048, help="matmul edge length")
    parser.add_argument("--batch", type=int, default=8, help="conv2d batch size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    args = parser.parse_args(argv)

    import torch

    if args.quick:
        args.size, args.batch, args.warmup, args.iterations = 128, 1, 1, 2
    device = pick_device(args.device)
    dtype = getattr(torch, args.dtype)

    result = {
        "host": platform.node(),
        "device": device,
        "dtype": args.dtype,
        "torch": torch.__version__,
        "workloads": {},
    }
    try:
        import intel_extension_for_pytorch as ipex

        result["ipex"] = ipex.__version__
        have_ipex = True
    except ImportError as err:
        result["ipex_error"] = str(err)
        have_ipex = False

    result["workloads"]["matmul"] = matmul(device, dtype, args.size, args.warmup, args.iterations)
    result["workloads"]["conv2d"] = conv2d(device, dtype, args.batch, args.warmup, args.iterations, False)
    if have_ipex:
        try:
            result["workloads"]["conv2d_ipex_optimize"] = conv2d(
                device, dtype, args.batch, args.warmup, args.iterations, True
            )
        except (RuntimeError, NotImplementedError) as err:
            # XPU-only IPEX builds refuse to optimize CPU modules.
            result["workloads"]["conv2d_ipex_optimize"] = {"error": str(err)}
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

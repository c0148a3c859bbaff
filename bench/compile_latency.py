"""Compile latency of the JIT API (libattnc.so): cold (empty cache: spec text -> PTX -> loaded
kernel) and warm (cache hit -> loaded kernel) per spec. Writes compile_times.json for bench.py.

usage: python3 bench/compile_latency.py LIBATTNC SPEC... --out DIR/compile_times.json
"""
import argparse
import ctypes
import json
import os
import tempfile
import time


class Options(ctypes.Structure):
    _fields_ = [("block_q", ctypes.c_int32), ("block_k", ctypes.c_int32),
                ("chip", ctypes.c_char_p), ("dims", ctypes.c_char_p),
                ("cache_dir", ctypes.c_char_p)]


def compile_once(lib, text, dims, cache_dir):
    kernel = ctypes.c_void_p()
    opts = Options(0, 0, b"sm_80", dims, cache_dir.encode())
    start = time.perf_counter()
    rc = lib.attnc_compile(text, len(text), None, ctypes.byref(opts), ctypes.byref(kernel))
    took = (time.perf_counter() - start) * 1e3
    if rc != 0:
        raise RuntimeError(lib.attnc_last_error().decode())
    hit = lib.attnc_kernel_from_cache(kernel)
    lib.attnc_release(kernel)
    return took, bool(hit)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("lib")
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set-d", default="128", help="head dim for specs that leave it dynamic")
    args = parser.parse_args()
    lib = ctypes.CDLL(args.lib)
    lib.attnc_last_error.restype = ctypes.c_char_p
    import torch  # a CUDA context makes the load include the driver's PTX -> SASS step
    torch.cuda.init()
    torch.empty(1, device="cuda")
    times = {}
    for path in args.specs:
        text = open(path, "rb").read()
        name = os.path.splitext(os.path.basename(path))[0]
        with tempfile.TemporaryDirectory() as cache:
            dims = None
            try:
                cold, hit0 = compile_once(lib, text, dims, cache)
            except RuntimeError as e:  # a dynamic head dim: give it one
                if "static head and value dims" not in str(e):
                    raise
                dims = f"d={args.set_d}".encode()
                cold, hit0 = compile_once(lib, text, dims, cache)
            warm = []
            for _ in range(5):
                ms, hit = compile_once(lib, text, dims, cache)
                assert hit, "second compile did not hit the cache"
                warm.append(ms)
        times[name] = {"cold_ms": round(cold, 1), "warm_ms": round(sorted(warm)[2], 2),
                       "cold_was_cached": hit0}
        print(f"{name:16s} cold {cold:8.1f} ms   warm {sorted(warm)[2]:6.2f} ms", flush=True)
    with open(args.out, "w") as f:
        json.dump(times, f, indent=1)


if __name__ == "__main__":
    main()

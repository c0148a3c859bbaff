"""JIT from Python: spec text -> PTX + manifest through libattnc.so (attnc.h, with its on-disk
kernel cache), loaded and launched by the runtime like an ahead-of-time kernel."""
import ctypes
import os
from pathlib import Path

from .runtime import Error, Kernel, library_path


class _Options(ctypes.Structure):
    _fields_ = [("block_q", ctypes.c_int32), ("block_k", ctypes.c_int32),
                ("chip", ctypes.c_char_p), ("dims", ctypes.c_char_p),
                ("cache_dir", ctypes.c_char_p)]


_jit = None


def jit_library_path() -> Path:
    """$ATTNC_JIT_LIB, else libattnc.so next to the runtime library."""
    env = os.environ.get("ATTNC_JIT_LIB")
    return Path(env) if env else library_path().with_name("libattnc.so")


def _library():
    global _jit
    if _jit is None:
        path = jit_library_path()
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise Error(f"cannot load the attnc JIT library {path}: {e} "
                        "(build it, or set ATTNC_JIT_LIB)") from None
        lib.attnc_compile.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                      ctypes.POINTER(_Options), ctypes.POINTER(ctypes.c_void_p)]
        lib.attnc_compile.restype = ctypes.c_int
        for name in ("attnc_kernel_ptx", "attnc_kernel_manifest"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.attnc_kernel_from_cache.argtypes = [ctypes.c_void_p]
        lib.attnc_release.argtypes = [ctypes.c_void_p]
        lib.attnc_last_error.restype = ctypes.c_char_p
        _jit = lib
    return _jit


def compile(spec: str, variant: str = None, *, dims: str = None, chip: str = "sm_80",
            block_q: int = 0, block_k: int = 0, cache_dir: str = None) -> Kernel:
    """Compiles one variant of `spec` (or takes it from the cache) into a Kernel.

    dims: static extents for dims the spec leaves dynamic, e.g. "d=128" (CUDA needs static head
    dims). cache_dir: None = $ATTNC_CACHE_DIR or ~/.cache/attnc, "" = no disk cache.
    The returned Kernel has `from_cache` telling whether the cache served it, and `ptx`."""
    lib = _library()
    text = spec.encode()
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    options = _Options(block_q, block_k, enc(chip), enc(dims), enc(cache_dir))
    handle = ctypes.c_void_p()
    if lib.attnc_compile(text, len(text), enc(variant), ctypes.byref(options),
                         ctypes.byref(handle)) != 0:
        raise Error(lib.attnc_last_error().decode())
    try:
        ptx = lib.attnc_kernel_ptx(handle)
        manifest = lib.attnc_kernel_manifest(handle).decode()
        from_cache = bool(lib.attnc_kernel_from_cache(handle))
    finally:
        lib.attnc_release(handle)
    kernel = Kernel(ptx, manifest)
    kernel.from_cache = from_cache
    kernel.ptx = ptx.decode()
    return kernel

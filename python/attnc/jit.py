"""JIT from Python: spec text -> PTX + manifest through libattnc.so (attnc.h, with its on-disk
kernel cache), loaded and launched by the runtime like an ahead-of-time kernel; or, with
target="cpu", compiled by the CPU back end and run in process on f32 CPU tensors."""
import ctypes
import json
import os
from pathlib import Path

from .runtime import Error, Kernel, Launch, _Tensor, library_path


class _Options(ctypes.Structure):
    _fields_ = [("block_q", ctypes.c_int32), ("block_k", ctypes.c_int32),
                ("chip", ctypes.c_char_p), ("dims", ctypes.c_char_p),
                ("cache_dir", ctypes.c_char_p), ("backward", ctypes.c_int32),
                ("target", ctypes.c_char_p), ("position_offsets", ctypes.c_int32),
                ("out_dtype", ctypes.c_char_p)]


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
        for name in ("attnc_kernel_ptx", "attnc_kernel_manifest", "attnc_kernel_grad_ptx",
                     "attnc_kernel_grad_manifest"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        for name in ("attnc_launch", "attnc_launch_grad", "attnc_combine"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.POINTER(_Tensor),
                                           ctypes.c_int32, ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_int
        lib.attnc_kernel_from_cache.argtypes = [ctypes.c_void_p]
        lib.attnc_release.argtypes = [ctypes.c_void_p]
        lib.attnc_last_error.restype = ctypes.c_char_p
        _jit = lib
    return _jit


class _Handle:
    """An attnc_kernel of libattnc.so, released when the last HostKernel using it goes."""

    def __init__(self, lib, handle):
        self.lib, self.handle = lib, handle

    def __del__(self):
        try:
            self.lib.attnc_release(self.handle)
        except Exception:
            pass


class HostKernel(Kernel):
    """A kernel of the CPU back end (target="cpu"): the same calling convention as Kernel, on
    float32 CPU tensors, run synchronously in the calling thread. Its arguments are checked by
    the same rules (and messages) as the CUDA runtime's."""

    device_type = "cpu"

    def __init__(self, handle: _Handle, manifest_text: str, grad: bool):
        self._owner, self._grad = handle, grad  # _owner releases the library's handle
        self._read_manifest(json.loads(manifest_text))

    def set_splits(self, splits: int):
        raise Error(f"kernel '{self.name}': the cpu target does not split the keys")

    @property
    def last_splits(self) -> int:
        return 1

    def plan(self, stream=None, **tensors):
        raise Error(f"kernel '{self.name}': the cpu target computes its key ranges where it "
                    "runs and has no block plan")

    def _run_combine(self, array, tensors, stream):
        lib = self._owner.lib
        if lib.attnc_combine(self._owner.handle, array, 4, None):
            raise Error(lib.attnc_last_error().decode(errors="replace"))


class _HostLaunch(Launch):
    def __call__(self, stream=None, block_plan=None):
        k = self._kernel
        if block_plan is not None:
            raise Error(f"kernel '{k.name}': the cpu target computes its key ranges where it "
                        "runs and takes no block plan")
        lib = k._owner.lib
        fn = lib.attnc_launch_grad if k._grad else lib.attnc_launch
        if fn(k._owner.handle, self._array, len(self._tensors), None):
            raise Error(k._storage_axes(lib.attnc_last_error().decode(errors="replace")))


HostKernel._launch_class = _HostLaunch


def default_chip() -> str:
    """The CUDA target when none is asked for: $ATTNC_CHIP, else "sm_90a" (wgmma) when the
    current CUDA device (through PyTorch, if loaded with CUDA) is compute capability 9.0, else
    "sm_80" (mma.sync, runs on every sm_80+ GPU)."""
    if os.environ.get("ATTNC_CHIP"):
        return os.environ["ATTNC_CHIP"]
    try:
        import torch
        if torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0):
            return "sm_90a"
    except ImportError:
        pass
    return "sm_80"


def compile(spec: str, variant: str = None, *, dims: str = None, chip: str = None,
            block_q: int = 0, block_k: int = 0, cache_dir: str = None, backward: bool = False,
            target: str = "cuda", position_offsets: bool = False, out_dtype: str = None) -> Kernel:
    """Compiles one variant of `spec` (or takes it from the cache) into a Kernel.

    dims: static extents for dims the spec leaves dynamic, e.g. "d=128" (CUDA needs static head
    dims). cache_dir: None = $ATTNC_CACHE_DIR or ~/.cache/attnc, "" = no disk cache.
    backward: also compile the variant's backward; it is the returned kernel's `grad` (a Kernel
    taking the forward's arguments, d<o>, then the gradients; see attnc.torch for autograd).
    chip: "sm_80", "sm_90a", or None for default_chip() (the current GPU's best).
    position_offsets: ring attention's blocks (attnc.ring): the kernel also takes rank-0 int32
    params q_offset and k_offset, the global positions of its first query and key, which its
    score and mask compare. out_dtype: the output's dtype instead of the spec's ("f32" for
    partial results that Kernel.combine merges).
    target: "cuda", or "cpu" for the CPU back end (a HostKernel on float32 CPU tensors; no
    cache). The returned Kernel has `from_cache` telling whether the cache served it, `ptx`,
    and `grad` (None without backward)."""
    lib = _library()
    if chip is None:
        chip = default_chip() if target == "cuda" else "sm_80"
    text = spec.encode()
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    options = _Options(block_q, block_k, enc(chip), enc(dims), enc(cache_dir), int(bool(backward)),
                       enc(target), int(bool(position_offsets)), enc(out_dtype))
    handle = ctypes.c_void_p()
    if lib.attnc_compile(text, len(text), enc(variant), ctypes.byref(options),
                         ctypes.byref(handle)) != 0:
        raise Error(lib.attnc_last_error().decode())
    if target == "cpu":
        owner = _Handle(lib, handle)
        kernel = HostKernel(owner, lib.attnc_kernel_manifest(handle).decode(), grad=False)
        grad = lib.attnc_kernel_grad_manifest(handle)
        kernel.grad = HostKernel(owner, grad.decode(), grad=True) if grad else None
        kernel.from_cache, kernel.ptx = False, ""
        return kernel
    try:
        ptx = lib.attnc_kernel_ptx(handle)
        manifest = lib.attnc_kernel_manifest(handle).decode()
        grad_ptx = lib.attnc_kernel_grad_ptx(handle)
        grad_manifest = lib.attnc_kernel_grad_manifest(handle)
        from_cache = bool(lib.attnc_kernel_from_cache(handle))
    finally:
        lib.attnc_release(handle)
    kernel = Kernel(ptx, manifest)
    kernel.from_cache = from_cache
    kernel.ptx = ptx.decode()
    kernel.grad = Kernel(grad_ptx, grad_manifest.decode()) if grad_manifest else None
    return kernel

"""ctypes binding of the attnc runtime's C ABI (runtime/attnc_runtime.h) and the Kernel class
that launches a compiled variant on PyTorch CUDA tensors passed by argument name.

torch is imported only when a kernel is called, so that `import attnc` works anywhere.
"""
import ctypes
import hashlib
import json
import os
import re
from pathlib import Path

MANIFEST_FORMAT = "attnc-kernel-manifest/1"
_DTYPE_CODES = {"f32": 0, "f16": 1, "bf16": 2, "i32": 3, "i8": 4, "f8e4m3": 5, "i4": 6}
# The torch dtypes a tensor of each manifest dtype may have; the first is what allocate_outputs
# uses. i4 comes as bytes holding two values each (low nibble first).
_TORCH_DTYPES = {"f32": ("float32",), "f16": ("float16",), "bf16": ("bfloat16",), "i32": ("int32",),
                 "i8": ("int8",), "f8e4m3": ("float8_e4m3fn",), "i4": ("uint8", "int8")}

# Where a build of the repository leaves the shared library: the standalone runtime build
# (scripts/gpu.sh) first, then the main build.
_REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = ("build-rt/libattnc_runtime.so", "build/lib/libattnc_runtime.so",
               "build/runtime/libattnc_runtime.so")
# Where `pip install .` puts it (the CMake install rules into the package, attnc/lib).
_PACKAGED = Path(__file__).resolve().parent / "lib" / "libattnc_runtime.so"


class Error(Exception):
    """A kernel could not be loaded or launched; the message says why."""


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("sizes", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64))]


def library_path() -> Path:
    """The libattnc_runtime.so to use: $ATTNC_RUNTIME_LIB, else the installed package's own
    (pip install: attnc/lib), else the first one built in the repo."""
    env = os.environ.get("ATTNC_RUNTIME_LIB")
    if env:
        if not Path(env).is_file():
            raise Error(f"ATTNC_RUNTIME_LIB={env} is not a file")
        return Path(env)
    if _PACKAGED.is_file():
        return _PACKAGED
    for candidate in _CANDIDATES:
        if (_REPO / candidate).is_file():
            return _REPO / candidate
    raise Error("cannot find libattnc_runtime.so: build it (cmake -S runtime -B build-rt -G Ninja "
                "&& ninja -C build-rt) or set ATTNC_RUNTIME_LIB; looked in "
                + ", ".join(str(_REPO / c) for c in _CANDIDATES))


_lib = None


def _library():
    global _lib
    if _lib is None:
        path = library_path()
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise Error(f"cannot load {path}: {e}") from None
        c_char_p, c_void_p, c_size_t = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t
        lib.attnc_rt_load.argtypes = [c_char_p, c_size_t, c_char_p, c_size_t, ctypes.POINTER(c_void_p)]
        lib.attnc_rt_load.restype = ctypes.c_int
        lib.attnc_rt_launch.argtypes = [c_void_p, ctypes.POINTER(_Tensor), ctypes.c_int32, c_void_p]
        lib.attnc_rt_launch.restype = ctypes.c_int
        lib.attnc_rt_manifest.argtypes = [c_void_p]
        lib.attnc_rt_manifest.restype = c_char_p
        lib.attnc_rt_release.argtypes = [c_void_p]
        lib.attnc_rt_release.restype = None
        lib.attnc_rt_last_error.argtypes = []
        lib.attnc_rt_last_error.restype = c_char_p
        lib.attnc_rt_combine.argtypes = [c_void_p, ctypes.POINTER(_Tensor), ctypes.c_int32,
                                         c_void_p]
        lib.attnc_rt_combine.restype = ctypes.c_int
        lib.attnc_rt_set_splits.argtypes = [c_void_p, ctypes.c_int32]
        lib.attnc_rt_set_splits.restype = ctypes.c_int
        lib.attnc_rt_last_splits.argtypes = [c_void_p]
        lib.attnc_rt_last_splits.restype = ctypes.c_int32
        lib.attnc_rt_plan_shape.argtypes = [c_void_p, ctypes.POINTER(_Tensor), ctypes.c_int32,
                                            ctypes.POINTER(ctypes.c_int64)]
        lib.attnc_rt_plan_shape.restype = ctypes.c_int
        for name in ("attnc_rt_compute_plan", "attnc_rt_launch_with_plan"):
            fn = getattr(lib, name)
            fn.argtypes = [c_void_p, ctypes.POINTER(_Tensor), ctypes.c_int32,
                           ctypes.POINTER(_Tensor), c_void_p]
            fn.restype = ctypes.c_int
        _lib = lib
    return _lib


def _last_error(lib) -> str:
    return (lib.attnc_rt_last_error() or b"").decode(errors="replace")


def _torch_dtypes(torch, name: str) -> list:
    """The torch dtypes accepted for manifest dtype `name` (those this torch has)."""
    return [getattr(torch, t) for t in _TORCH_DTYPES[name] if hasattr(torch, t)]


class _Arg:
    """One manifest argument: its dims in canonical (kernel) and storage (caller) order."""

    def __init__(self, entry: dict):
        self.name = entry["name"]
        self.kind = entry["kind"]
        self.dtype = entry["dtype"]
        self.dims = list(entry["dims"])
        self.storage_dims = list(entry["storage_dims"])
        # canonical axis c is storage axis perm[c]
        self.perm = [self.storage_dims.index(d) for d in self.dims]
        # values per byte along the last canonical axis, which must then be stored last (i4: 2)
        self.packed = entry.get("packed", 1)

    def signature(self) -> str:
        return f"{self.name}[{', '.join(self.storage_dims)}] {self.dtype}"


class Kernel:
    """A compiled attnc variant. Call it with torch CUDA tensors by argument name, each in the
    storage order the spec declared (`storage_dims`), e.g. `kernel(q=q, k=k, v=v, o=o, lse=lse)`.
    Launches on torch's current stream of the tensors' device unless `stream` is given."""

    device_type = "cuda"
    grad = None  # the backward Kernel (<variant>_grad), when compiled or loaded beside it

    def __init__(self, ptx: bytes, manifest_text: str):
        lib = _library()
        manifest_bytes = manifest_text.encode()
        handle = ctypes.c_void_p()
        if lib.attnc_rt_load(ptx, len(ptx), manifest_bytes, len(manifest_bytes), ctypes.byref(handle)):
            raise Error(_last_error(lib))
        self._lib, self._handle = lib, handle
        self.code_digest = hashlib.sha256(ptx).hexdigest()  # names the compiled code
        self._read_manifest(json.loads(lib.attnc_rt_manifest(handle).decode()))

    def _read_manifest(self, manifest: dict):
        self.manifest = manifest
        self.name = self.manifest["variant"]
        self._args = [_Arg(a) for a in self.manifest["args"]]
        self._by_name = {a.name: a for a in self._args}
        self._dims = {d["name"]: d for d in self.manifest["dims"]}
        for a in self._args:
            if a.packed > 1 and a.dims[-1] != a.storage_dims[-1]:
                raise Error(f"kernel '{self.name}': argument '{a.name}' packs {a.packed} {a.dtype} "
                            f"values per byte along '{a.dims[-1]}', which must be its last storage "
                            f"dim, but the storage order is [{', '.join(a.storage_dims)}]")

    def __del__(self):
        # At interpreter exit the library may already be gone; releasing is best effort.
        handle, lib = getattr(self, "_handle", None), getattr(self, "_lib", None)
        if handle and lib:
            try:
                lib.attnc_rt_release(handle)
            except Exception:
                pass
            self._handle = None

    def __repr__(self):
        return f"attnc.Kernel({self.signature})"

    def set_splits(self, splits: int):
        """Split-KV kernels: the number of KV splits of the next launches, 0 for the runtime's
        heuristic (the default). Clamped at launch to what the keys and the manifest allow."""
        if self._lib.attnc_rt_set_splits(self._handle, int(splits)):
            raise Error(_last_error(self._lib))

    @property
    def last_splits(self) -> int:
        """The KV splits of the last launch: 1 without split_kv, 0 before the first launch."""
        return int(self._lib.attnc_rt_last_splits(self._handle))

    @property
    def arg_names(self) -> list:
        return [a.name for a in self._args]

    @property
    def signature(self) -> str:
        """'alibi(q[b, h, i, d] bf16, ..., lse[b, h, i] f32)': the arguments in storage order."""
        return f"{self.name}({', '.join(a.signature() for a in self._args)})"

    def __call__(self, stream=None, block_plan=None, **tensors):
        self.prepare(**tensors)(stream, block_plan=block_plan)

    def combine(self, part_out, part_lse, out, lse, stream=None):
        """Merges partial softmax results over disjoint key sets (ring attention's blocks) with
        the kernel's combine: part_out f32 [S, b, h, i, dv] and part_lse f32 [S, b, h, i] into
        out [b, h, i, dv] (the output's dtype) and lse f32 [b, h, i], all in this canonical
        order (any strides; S >= 2); out and lse must not overlap the partial results."""
        import torch

        tensors = [part_out, part_lse, out, lse]
        for name, t in zip(("part_out", "part_lse", "out", "lse"), tensors):
            if not isinstance(t, torch.Tensor) or t.device.type != self.device_type:
                raise Error(f"kernel '{self.name}': combine argument '{name}' must be a "
                            f"{self.device_type.upper()} torch.Tensor")
        array, keep = _descriptors(torch, tensors)
        self._run_combine(array, tensors, stream)
        del keep

    def _run_combine(self, array, tensors, stream):
        import torch

        device = tensors[0].device
        with torch.cuda.device(device):
            if stream is None:
                stream = torch.cuda.current_stream(device)
            handle = (stream.cuda_stream if hasattr(stream, "cuda_stream") else int(stream)) or None
            if self._lib.attnc_rt_combine(self._handle, array, 4, handle):
                raise Error(_last_error(self._lib))

    def plan(self, stream=None, **tensors):
        """The block plan of a kernel whose mask reads params (manifest `block_plan`) for these
        arguments: an int32 tensor to pass as `block_plan=` to later calls whose mask params
        hold the same values, which then skip computing it (FlexAttention's create_block_mask)."""
        return self.prepare(**tensors).plan(stream)

    def prepare(self, **tensors) -> "Launch":
        """Checks and binds the arguments once; the Launch can then be called repeatedly."""
        import torch

        self._check_names(tensors)
        device = first = None
        for a in self._args:
            t = tensors[a.name]
            self._check_tensor(torch, a, t)
            if device is None:
                device, first = t.device, a.name
            elif t.device != device:
                raise Error(f"kernel '{self.name}': argument '{a.name}' is on {t.device}, "
                            f"but '{first}' is on {device}")
        return self._launch_class(self, [tensors[a.name] for a in self._args], device)

    def dim_sizes(self, **tensors) -> dict:
        """Extents of the dims, read from the given tensors (storage order) by name, completed
        with static extents and derived dims: what allocate_outputs shapes its tensors with.
        A packed (i4) tensor's last axis counts its bytes times the values per byte."""
        sizes = {}
        for name, t in tensors.items():
            a = self._by_name.get(name)
            if a is not None and t.dim() == len(a.storage_dims):
                shape = list(t.shape)
                if shape and a.packed > 1:
                    shape[-1] *= a.packed
                sizes.update(zip(a.storage_dims, shape))
        for name, d in self._dims.items():
            if name not in sizes and d.get("static") is not None:
                sizes[name] = d["static"]
            derived = d.get("derived")
            if name not in sizes and derived and derived["source"] in sizes:
                sizes[name] = sizes[derived["source"]] // derived["divisor"]
        return sizes

    def allocate_outputs(self, **inputs) -> dict:
        """Uninitialised output tensors (kind output / lse), storage order, on the inputs' device."""
        import torch

        sizes = self.dim_sizes(**inputs)
        device = next(iter(inputs.values())).device
        out = {}
        for a in self._args:
            if a.kind in ("output", "lse"):
                missing = [d for d in a.storage_dims if d not in sizes]
                if missing:
                    raise Error(f"kernel '{self.name}': cannot size '{a.name}': no input has "
                                f"dim {', '.join(missing)}")
                shape = [sizes[d] for d in a.storage_dims]
                dtypes = _torch_dtypes(torch, a.dtype)
                if not dtypes:
                    raise Error(f"kernel '{self.name}': this torch has no dtype for {a.dtype} "
                                f"('{a.name}')")
                out[a.name] = torch.empty(shape, dtype=dtypes[0], device=device)
        return out

    def _check_names(self, tensors, names=None, takes=None):
        """Every name in `names` (default: all arguments) given, no other: else attnc.Error
        saying which are missing and which unknown, and what the kernel `takes`."""
        names = [a.name for a in self._args] if names is None else names
        missing = [n for n in names if n not in tensors]
        unknown = sorted(set(tensors) - set(names))
        if missing or unknown:
            what = (f"missing {', '.join(missing)}" if missing else "") + \
                   ("; " if missing and unknown else "") + \
                   (f"unknown {', '.join(unknown)}" if unknown else "")
            raise Error(f"kernel '{self.name}': {what}; it takes {takes or self.signature}")

    def _check_tensor(self, torch, a, t):
        where = f"kernel '{self.name}': argument '{a.name}'"
        if not isinstance(t, torch.Tensor):
            raise Error(f"{where}: expected a torch.Tensor, got {type(t).__name__}")
        if t.device.type != self.device_type:
            raise Error(f"{where}: expected a {self.device_type.upper()} tensor, got one on "
                        f"{t.device}")
        want = _torch_dtypes(torch, a.dtype)
        if t.dtype not in want:
            names = " or ".join(str(w) for w in want) or "none in this torch"
            raise Error(f"{where}: expected dtype {a.dtype} ({names}), got {t.dtype}")
        if t.dim() != len(a.storage_dims):
            raise Error(f"{where}: expected {len(a.storage_dims)} dims [{', '.join(a.storage_dims)}], "
                        f"got shape {tuple(t.shape)}")

    _AXIS = re.compile(r"argument '(\w+)' axis (\d+)")

    def _storage_axes(self, message: str) -> str:
        """The runtime counts axes in canonical order; the caller's tensors are in storage order."""
        def renumber(m):
            a = self._by_name.get(m.group(1))
            axis = int(m.group(2))
            if a is None or axis >= len(a.perm):
                return m.group(0)
            return f"argument '{a.name}' axis {a.perm[axis]}"
        return self._AXIS.sub(renumber, message)


def _descriptors(torch, tensors):
    """C descriptors of torch tensors as they are (their own axis order): the array and the
    int64 arrays it points into, which the caller keeps alive while it is used."""
    codes = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.int32: 3}
    array = (_Tensor * len(tensors))()
    keep = []
    for slot, t in zip(array, tensors):
        sizes = (ctypes.c_int64 * max(1, t.dim()))(*t.shape)
        strides = (ctypes.c_int64 * max(1, t.dim()))(*t.stride())
        keep += [sizes, strides]
        slot.data = t.data_ptr() or None
        slot.dtype = codes.get(t.dtype, -1)
        slot.rank = t.dim()
        slot.sizes = ctypes.cast(sizes, ctypes.POINTER(ctypes.c_int64))
        slot.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))
    return array, keep


class Launch:
    """A kernel with bound arguments: sizes and strides permuted to the canonical order once.
    Holds references to the tensors, so their memory stays alive while it exists."""

    def __init__(self, kernel: Kernel, tensors: list, device):
        self._kernel, self._tensors, self._device = kernel, tensors, device
        self._keep = []  # the int64 arrays the descriptors point into
        self._array = (_Tensor * len(tensors))()
        for slot, a, t in zip(self._array, kernel._args, tensors):
            sizes = (ctypes.c_int64 * max(1, len(a.dims)))(*[t.size(p) for p in a.perm])
            strides = (ctypes.c_int64 * max(1, len(a.dims)))(*[t.stride(p) for p in a.perm])
            self._keep += [sizes, strides]
            slot.data = t.data_ptr() or None
            slot.dtype = _DTYPE_CODES[a.dtype]
            slot.rank = len(a.dims)
            slot.sizes = ctypes.cast(sizes, ctypes.POINTER(ctypes.c_int64))
            slot.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))

    def _stream(self, stream):
        import torch
        if stream is None:
            stream = torch.cuda.current_stream(self._device)
        return (stream.cuda_stream if hasattr(stream, "cuda_stream") else int(stream)) or None

    @staticmethod
    def _plan_arg(plan):
        """A block plan tensor as the C ABI's descriptor (kept alive by the returned tuple)."""
        sizes = (ctypes.c_int64 * 4)(*plan.shape) if plan.dim() == 4 else (ctypes.c_int64 * 4)()
        strides = (ctypes.c_int64 * 4)(*plan.stride()) if plan.dim() == 4 else (ctypes.c_int64 * 4)()
        code = {"torch.int32": _DTYPE_CODES["i32"]}.get(str(plan.dtype), -1)
        arg = _Tensor(plan.data_ptr() or None, code, plan.dim(),
                      ctypes.cast(sizes, ctypes.POINTER(ctypes.c_int64)),
                      ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64)))
        return arg, sizes, strides

    def __call__(self, stream=None, block_plan=None):
        import torch

        k = self._kernel
        with torch.cuda.device(self._device):
            handle = self._stream(stream)
            if block_plan is None:
                failed = k._lib.attnc_rt_launch(k._handle, self._array, len(self._tensors), handle)
            else:
                plan = self._plan_arg(block_plan)
                failed = k._lib.attnc_rt_launch_with_plan(k._handle, self._array, len(self._tensors),
                                                          ctypes.byref(plan[0]), handle)
            if failed:
                raise Error(k._storage_axes(_last_error(k._lib)))

    def plan(self, stream=None):
        """The block plan for the bound arguments (see Kernel.plan)."""
        import torch

        k = self._kernel
        shape = (ctypes.c_int64 * 4)()
        if k._lib.attnc_rt_plan_shape(k._handle, self._array, len(self._tensors), shape):
            raise Error(k._storage_axes(_last_error(k._lib)))
        out = torch.empty(tuple(shape), dtype=torch.int32, device=self._device)
        with torch.cuda.device(self._device):
            plan = self._plan_arg(out)
            if k._lib.attnc_rt_compute_plan(k._handle, self._array, len(self._tensors),
                                            ctypes.byref(plan[0]), self._stream(stream)):
                raise Error(k._storage_axes(_last_error(k._lib)))
        return out


Kernel._launch_class = Launch


def load_kernel(ptx_path, manifest_path) -> Kernel:
    """Loads one compiled variant from its PTX and its JSON manifest."""
    ptx_path, manifest_path = Path(ptx_path), Path(manifest_path)
    _library()  # its errors are not about these files
    try:
        ptx, text = ptx_path.read_bytes(), manifest_path.read_text()
    except OSError as e:
        raise Error(f"cannot read kernel files: {e}") from None
    try:
        return Kernel(ptx, text)
    except Error as e:
        raise Error(f"{manifest_path}: {e}") from None


def load_dir(directory, on_error=None) -> dict:
    """{variant: Kernel} for every manifest (*.json of the manifest format) in `directory`,
    with its PTX named by the manifest's `ptx` field. Other JSON files are skipped. A kernel
    that fails to load raises attnc.Error, or is skipped after on_error(path, error) if given."""
    directory = Path(directory)
    if not directory.is_dir():
        raise Error(f"{directory} is not a directory")
    kernels = {}
    for path in sorted(directory.glob("*.json")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            continue
        ptx = directory / manifest.get("ptx", f"{manifest.get('variant', path.stem)}.ptx")
        try:
            kernel = load_kernel(ptx, path)
        except Error as e:
            if on_error is None:
                raise
            on_error(path, e)
            continue
        kernels[kernel.name] = kernel
    for name, kernel in kernels.items():  # a variant's backward, when it is here too
        kernel.grad = kernels.get(name + "_grad")
    return kernels

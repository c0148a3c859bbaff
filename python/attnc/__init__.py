"""attnc: run attention kernels compiled by attnc (PTX + JSON manifest, docs/manifest.md) on
PyTorch CUDA tensors, through the runtime's C ABI (libattnc_runtime.so, loaded with ctypes).

    import attnc
    kernels = attnc.load_dir("out/")                  # {variant: Kernel}
    gqa = kernels["gqa"]
    outs = gqa.allocate_outputs(q=q, k=k, v=v)        # {"o": ..., "lse": ...}
    gqa(q=q, k=k, v=v, **outs)                        # tensors in the spec's storage order

Every failure raises attnc.Error with a message naming the argument and the axis.
"""
__version__ = "0.1.0"  # pyproject.toml's; tests/install/check_pip.sh checks they agree

from .runtime import (MANIFEST_FORMAT, Error, Kernel, Launch, library_path, load_dir,
                      load_kernel)

from .jit import compile, jit_library_path  # noqa: E402  (needs .runtime first)
from . import ring  # noqa: E402  (attnc.ring.compile: ring attention over torch.distributed)

__all__ = ["__version__", "MANIFEST_FORMAT", "Error", "Kernel", "Launch", "compile", "jit_library_path",
           "library_path", "load_dir", "load_kernel", "ring"]

"""attnc kernels as PyTorch operators with autograd.

    import attnc, attnc.torch
    kern = attnc.torch.function(attnc.compile(spec, dims="d=128", backward=True))
    o = kern(q=q, k=k, v=v, slope=slope)        # tensors in the spec's storage order
    o.sum().backward()                           # q.grad, k.grad, v.grad, slope.grad

Each compiled kernel becomes a `torch.library` custom op, `attnc::<variant>_<digest>` (the
digest names the compiled code), with a fake (meta) implementation that sizes its outputs from
the manifest's dims, so `torch.compile(fullgraph=True)` traces through it and CUDA graphs can
capture it; its backward is a second op over the variant's `<variant>_grad` kernel (attnc's
recomputation backward: only o and lse are saved). Kernels loaded ahead of time work the same:
`attnc.torch.function(attnc.load_dir(dir)["alibi"])` once `alibi_grad` is in that directory.

The forward op returns every output of the kernel (o, and lse for softmax variants); the
function returns o (and lse with return_lse=True; lse is not differentiable). Gradients flow to
q, k, v and to the float params the score reads; int params (document ids, lengths) get none.
"""
import hashlib
import json
import threading

import torch

from .runtime import Error

_LIBRARY = torch.library.Library("attnc", "FRAGMENT")
_OPS = {}  # digest -> _Ops, one registration per compiled kernel
_LOCK = threading.Lock()


def _digest(kernel) -> str:
    """Names the compiled code: the manifests and PTX of the kernel and its backward."""
    h = hashlib.sha256(kernel.device_type.encode())
    for k in (kernel, getattr(kernel, "grad", None)):
        if k is not None:
            h.update(json.dumps(k.manifest, sort_keys=True).encode())
            h.update(getattr(k, "code_digest", "").encode())
    return h.hexdigest()[:16]


def _outputs(kernel):
    return [a for a in kernel._args if a.kind in ("output", "lse")]


def _inputs(kernel):
    return [a for a in kernel._args if a.kind in ("input", "param")]


def _fill(kernel, tensors):
    """Allocates the kernel's outputs for `tensors` (by name), launches it, returns them."""
    out = kernel.allocate_outputs(**tensors)
    kernel(**tensors, **out)
    return [out[a.name] for a in _outputs(kernel)]


class _Ops:
    """The custom ops of one compiled kernel: the forward and, if compiled, its backward."""

    def __init__(self, kernel, digest):
        if any(a.kind == "state" for a in kernel._args):
            raise Error(f"kernel '{kernel.name}': a recurrence's state is read and written in "
                        "place; attnc.torch wraps attention kernels (call the Kernel directly)")
        self.kernel, self.grad = kernel, getattr(kernel, "grad", None)
        dispatch = "CPU" if kernel.device_type == "cpu" else "CUDA"
        self.inputs = [a.name for a in _inputs(kernel)]
        self.outputs = [a.name for a in _outputs(kernel)]
        name = f"{kernel.name}_{digest}"
        self.forward = self._define(name, kernel, dispatch)
        if self.grad is not None:
            self.grad_inputs = [a.name for a in _inputs(self.grad)]
            self.grad_outputs = [a.name for a in _outputs(self.grad)]
            self.backward = self._define(name + "_grad", self.grad, dispatch)
            torch.library.register_autograd(f"attnc::{name}", self._backward,
                                            setup_context=self._setup_context, lib=_LIBRARY)

    @staticmethod
    def _define(name, kernel, dispatch):
        ins, outs = _inputs(kernel), _outputs(kernel)
        single = len(outs) == 1  # a schema's "(Tensor)" is one Tensor, not a tuple
        schema = (f"{name}({', '.join('Tensor ' + a.name for a in ins)}) -> "
                  + ("Tensor" if single else f"({', '.join('Tensor' for _ in outs)})"))
        _LIBRARY.define(schema)
        names = [a.name for a in ins]

        def impl(*args):
            # Launch layouts: a unit stride along the row (an autograd dout is often expanded).
            tensors = {n: t.contiguous() for n, t in zip(names, args)}
            results = _fill(kernel, tensors)
            return results[0] if single else tuple(results)

        def fake(*args):
            out = kernel.allocate_outputs(**dict(zip(names, args)))
            return out[outs[0].name] if single else tuple(out[a.name] for a in outs)

        _LIBRARY.impl(name, impl, dispatch)
        torch.library.register_fake(f"attnc::{name}", fake, lib=_LIBRARY)
        op = getattr(torch.ops.attnc, name).default
        return (lambda *args: (op(*args),)) if single else op

    def _setup_context(self, ctx, inputs, output):
        output = output if isinstance(output, tuple) else (output,)
        ctx.save_for_backward(*inputs, *output)
        if len(output) > 1:  # lse: the backward reads it; nothing differentiates it
            ctx.mark_non_differentiable(*output[1:])

    def _backward(self, ctx, *grads):
        saved = dict(zip(self.inputs + self.outputs, ctx.saved_tensors))
        out_name = self.outputs[0]
        saved["d" + out_name] = grads[0]
        results = dict(zip(self.grad_outputs, self.backward(*[saved[n] for n in self.grad_inputs])))
        answer = []
        for name in self.inputs:
            g = results.get("d" + name)
            x = saved[name]
            answer.append(None if g is None else g.to(x.dtype))
        return tuple(answer)


class Function:
    """A compiled attnc kernel as a differentiable torch function (see the module doc)."""

    def __init__(self, kernel, ops, autocast):
        self.kernel, self._ops, self.autocast = kernel, ops, autocast
        self.op = ops.forward
        self.op_name = f"attnc::{kernel.name}_{_digest(kernel)}"
        self._dtypes = {a.name: a.dtype for a in _inputs(kernel)}

    @property
    def trainable(self) -> bool:
        return self._ops.grad is not None

    def __call__(self, return_lse: bool = False, **tensors):
        names = self._ops.inputs
        self.kernel._check_names(tensors, names, takes=", ".join(names))
        args = [tensors[n] for n in names]
        first = args[0]
        if self.autocast:  # float tensors to the kernel's dtypes, results back to q's dtype
            want = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
            args = [t.to(want[self._dtypes[n]]) if t.is_floating_point() and
                    self._dtypes[n] in want else t for n, t in zip(names, args)]
        outs = self.op(*args)
        o = outs[0].to(first.dtype) if self.autocast and first.is_floating_point() else outs[0]
        if return_lse:
            return o, (outs[1] if len(outs) > 1 else None)
        return o

    def __repr__(self):
        return f"attnc.torch.Function({self.kernel.signature}, op={self.op_name})"


def function(kernel, *, autocast: bool = False) -> Function:
    """Wraps a compiled kernel (attnc.compile(..., backward=True), or an AOT Kernel whose
    `grad` is set, as attnc.load_dir does when `<variant>_grad` is beside it) as a torch
    function with autograd. autocast: convert float inputs to the kernel's dtypes and the output
    back to q's dtype (e.g. float64 tensors on an f32 cpu kernel for gradcheck); otherwise a
    tensor of another dtype is an error."""
    digest = _digest(kernel)
    with _LOCK:
        ops = _OPS.get(digest)
        if ops is None:
            ops = _OPS[digest] = _Ops(kernel, digest)
    return Function(kernel, ops, autocast)


_CACHE = {}


def attention(spec: str, variant: str = None, *, dims: str = None, **tensors):
    """Compiles `spec` (cached, forward and backward) for the tensors' device and runs it:
    `attnc.torch.attention(spec, q=q, k=k, v=v, slope=slope)` returns o, differentiable."""
    from .jit import compile as jit_compile

    device = next(iter(tensors.values())).device.type
    target = "cpu" if device == "cpu" else "cuda"
    key = (spec, variant, dims, target)
    fn = _CACHE.get(key)
    if fn is None:
        kernel = jit_compile(spec, variant, dims=dims, backward=True, target=target)
        fn = _CACHE[key] = function(kernel)
    return fn(**tensors)

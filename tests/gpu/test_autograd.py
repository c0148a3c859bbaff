"""PyTorch autograd through attnc's CUDA kernels (attnc.torch): the forward and backward kernels
compiled ahead of time (`attnc compile --backward --emit=ptx`, loaded by attnc.load_dir, which
pairs <variant> with <variant>_grad) as torch.library custom ops.

- every trainable kernel: o and the gradients of q, k, v and the float params through
  `o = fn(**inputs); (o * dout).sum().backward()` against torch.autograd of the float64 reference;
- torch.compile(fullgraph=True) (inductor) and CUDA graph capture of forward + backward;
- "done when" of the backward issue: a two-layer model with ALiBi + causal attention trains on a
  toy task through attnc, and its loss curve follows the same model on a float32 torch
  attention from the same initial weights and batches.

Kernels come from $ATTNC_GRAD_KERNEL_DIR (default .device/kernels-grad).
"""
import math
import os
import zlib
from pathlib import Path

import pytest

import harness

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

import attnc  # noqa: E402
import attnc.torch  # noqa: E402
from test_backward import reference_grads, rel  # noqa: E402
from toy_model import Model, torch_alibi, train_side_by_side  # noqa: E402

GRAD_DIR = Path(os.environ.get("ATTNC_GRAD_KERNEL_DIR", harness.ROOT / ".device" / "kernels-grad"))


@pytest.fixture(scope="module")
def grad_kernels():
    if not GRAD_DIR.exists():
        pytest.skip(f"no backward kernels compiled ({GRAD_DIR})")
    return attnc.load_dir(GRAD_DIR)


def trainable():
    found = harness.manifests(GRAD_DIR) if GRAD_DIR.exists() else {}
    return sorted(v for v in found if not v.endswith("_grad") and v + "_grad" in found)


@pytest.mark.parametrize("trained", trainable())
def test_autograd_matches_the_reference(grad_kernels, trained):
    variant = trained
    kernel = grad_kernels[variant]
    fn = attnc.torch.function(kernel)
    assert fn.trainable
    _, reference = harness.load(GRAD_DIR, variant)
    sizes = harness.dim_sizes(kernel, 130, 131)
    inputs = harness.make_inputs(kernel, sizes, seed=zlib.crc32(variant.encode()))
    leaves = {n: (t.clone().requires_grad_(True) if t.is_floating_point() else t)
              for n, t in inputs.items()}
    o = fn(**leaves)
    out_name, _ = harness.output_names(kernel)
    dout = torch.randn(o.shape, device="cuda", generator=torch.Generator("cuda").manual_seed(5))
    dout = dout.to(o.dtype)
    o.backward(dout)
    mapped = "dy_width" in grad_kernels[variant + "_grad"].manifest["backward"]
    want = reference_grads(reference, inputs, kernel, dout, out_name, o.detach(),
                           d_from_out=not mapped)
    tol = 0.1 if harness.routed_mix(GRAD_DIR, variant) else 3e-2  # as test_backward.py
    for name, w in want.items():
        g = leaves[name].grad
        assert g is not None, f"{variant}: no gradient for {name}"
        assert g.dtype == inputs[name].dtype and g.shape == inputs[name].shape
        err = rel(g, w)
        harness.REPORT.append(f"autograd {variant}: d{name} rel {err:.2e}")
        assert err <= tol and not torch.isnan(g).any(), f"{variant}: d{name} rel {err:.3e}"


def alibi_inputs(kernel, b=2, s=200, seed=0):
    sizes = harness.dim_sizes(kernel, s, s, batch=b)
    inputs = harness.make_inputs(kernel, sizes, seed=seed)
    inputs["slope"] = -torch.rand_like(inputs["slope"])
    return {n: t.requires_grad_(True) for n, t in inputs.items()}


def grads_of(fn, inputs, loss):
    for t in inputs.values():
        t.grad = None
    loss(fn, inputs).backward()
    return {n: t.grad.clone() for n, t in inputs.items()}


def square_loss(fn, inputs):
    return (fn(**inputs).float() ** 2).sum()


def test_torch_compile_fullgraph(grad_kernels):
    fn = attnc.torch.function(grad_kernels["alibi"])
    inputs = alibi_inputs(grad_kernels["alibi"])
    eager = grads_of(fn, inputs, square_loss)
    compiled = torch.compile(lambda f, x: square_loss(f, x), fullgraph=True)
    traced = grads_of(fn, inputs, compiled)
    for n in eager:  # the same grad_kernels: equal up to the order of the param gradient's atomics
        assert rel(traced[n], eager[n].double()) < 1e-5, n


def test_cuda_graph_capture_of_forward_and_backward(grad_kernels):
    fn = attnc.torch.function(grad_kernels["alibi"])
    static = alibi_inputs(grad_kernels["alibi"], seed=1)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: the runtime's workspace reaches its size here
        for _ in range(2):
            grads_of(fn, static, square_loss)
    torch.cuda.current_stream().wait_stream(side)
    for t in static.values():
        t.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = square_loss(fn, static)
        loss.backward()
    fresh = alibi_inputs(grad_kernels["alibi"], seed=2)
    with torch.no_grad():
        for n, t in fresh.items():
            static[n].copy_(t)
    graph.replay()
    torch.cuda.synchronize()
    want = grads_of(fn, fresh, square_loss)
    for n in want:
        assert rel(static[n].grad, want[n].double()) < 1e-5, n


def test_a_two_layer_model_trains_like_the_float32_reference(grad_kernels):
    """The toy task: token t's label is the token three places back (needs attention to a
    relative position, which ALiBi's causal scores favour). Same init, same batches."""
    kernel = grad_kernels["alibi"]
    assert [a["storage_dims"] for a in kernel.manifest["args"][:4]] == \
        [["b", "h", "i", "d"], ["b", "h", "j", "d"], ["b", "h", "j", "dv"], ["h"]]
    head_dim = next(d["static"] for d in kernel.manifest["dims"] if d["role"] == "head_dim")
    fn = attnc.torch.function(kernel)

    def attnc_attend(q, k, v, slope):  # the kernel's [b, h, s, d] bf16 storage
        args = {n: t.transpose(1, 2).to(torch.bfloat16) for n, t in (("q", q), ("k", k), ("v", v))}
        return fn(**args, slope=slope).transpose(1, 2).float()

    vocab, heads, steps = 16, 2, 300
    torch.manual_seed(0)
    ours = Model(vocab, heads * head_dim, heads, attnc_attend).cuda()
    ref = Model(vocab, heads * head_dim, heads, torch_alibi).cuda()
    ref.load_state_dict(ours.state_dict())
    ours_c, ref_c = train_side_by_side((ours, ref), vocab, steps, "cuda")
    windows = [(float(ours_c[i:i + 20].mean()), float(ref_c[i:i + 20].mean()))
               for i in range(0, steps, 20)]
    harness.REPORT.append("training loss (attnc, f32 torch) per 20 steps: " +
                          ", ".join(f"{a:.3f}/{b:.3f}" for a, b in windows))
    # (on the CPU target in f32 the two curves agree to 4 decimals; bf16 grad_kernels drift a little
    # where the loss falls fastest)
    assert ref_c[-20:].mean() < 0.25 * math.log(vocab), "the reference did not learn the task"
    assert ours_c[-20:].mean() < 0.25 * math.log(vocab), windows
    for a, b in windows:
        assert abs(a - b) <= 0.1 + 0.15 * b, windows
    assert all(t.grad is not None for t in (ours.blocks[0].slope, ours.blocks[1].slope))

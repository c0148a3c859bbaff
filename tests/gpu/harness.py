"""Shared by the GPU tests and sanitize_one.py: find the compiled kernels and their float64
references, draw inputs for a shape, run a kernel with NaN-poisoned outputs and compare.

Kernels come from $ATTNC_KERNEL_DIR (default .device/kernels: DIR/<variant>.{ptx,json,ref.py},
written by `attnc compile --emit=ptx` and `attnc --emit=torch`), plus the hand-written fixture
in fixture/ (built with nvcc when there is one), which test the runtime on their own.
"""
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
FIXTURE_DIR = Path(__file__).resolve().parent / "fixture"
FIXTURES = ("fixture_gqa", "fixture_causal")  # both in fixture/fixtures.cu
MANIFEST_FORMAT = "attnc-kernel-manifest/1"

# (q_len, kv_len): ragged, not tile multiples, q_len != kv_len, one key, rows with no key
# (fixture: q_len >= kv_len + 48), and one exact tile multiple.
SHAPES = [(1, 1), (77, 65), (130, 131), (300, 500), (300, 65), (128, 128)]
SMALL = (77, 65)
REPORT = []  # one line per checked run: the errors the test session prints at its end


def kernel_dir() -> Path:
    return Path(os.environ.get("ATTNC_KERNEL_DIR", ROOT / ".device" / "kernels"))


def manifests(directory: Path) -> dict:
    """{variant: manifest path} in `directory` (skips other JSON, e.g. compile_times.json)."""
    out = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(m, dict) and m.get("format") == MANIFEST_FORMAT:
            out[m.get("variant", path.stem)] = path
    return out


def compiled_variants() -> list:
    return list(manifests(kernel_dir()))


def load(directory: Path, variant: str):
    """(Kernel, reference or None) of `variant` in `directory`."""
    import attnc
    path = manifests(directory)[variant]
    ptx = path.parent / json.loads(path.read_text()).get("ptx", f"{variant}.ptx")
    return attnc.load_kernel(ptx, path), load_reference(directory, variant)


def nvcc() -> str:
    found = shutil.which("nvcc")
    return found or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else "")


def build_fixtures(out_dir: Path) -> Path:
    """Compiles fixtures.cu to one PTX (so its kernels also share a module in the runtime's
    cache) in out_dir, next to the fixtures' manifests and references."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [nvcc(), "-ptx", "-arch=compute_80", "-o", str(out_dir / "fixtures.ptx"),
           str(FIXTURE_DIR / "fixtures.cu")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    for name in FIXTURES:
        for suffix in (".json", ".ref.py"):
            shutil.copy(FIXTURE_DIR / f"{name}{suffix}", out_dir / f"{name}{suffix}")
    return out_dir


def routed_mix(directory: Path, variant: str) -> bool:
    """Whether the variant's mix of several scores takes a max or min of rows (its `_mix` in
    DIR/<variant>.ref.py calls _max or _min): each element's gradient then goes to one row, and
    rows that tie within the 16-bit rounding of P route one way in the kernel and another in
    the float64 reference."""
    path = Path(directory) / f"{variant}.ref.py"
    text = path.read_text() if path.exists() else ""
    mix = text.split("def _mix(", 1)[1].split("\ndef ", 1)[0] if "def _mix(" in text else ""
    return "_max(" in mix or "_min(" in mix


def load_reference(directory: Path, variant: str):
    """reference(tensors) -> (o, lse | None) from DIR/<variant>.ref.py, or None if absent."""
    path = Path(directory) / f"{variant}.ref.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"attnc_ref_{variant}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference


def dim_sizes(kernel, q_len: int, kv_len: int, batch: int = 2, head_dim: int = 64) -> dict:
    """Extents by role; static extents from the manifest; derived dims (kv heads, q/k head
    groups) and aliases (`j : kv_len = i`) from their source."""
    dims = kernel.manifest["dims"]
    group = 1
    for d in dims:
        if d.get("derived") and d["role"] in ("kv_head", "qk_head"):
            group = d["derived"]["divisor"]
    by_role = {"batch": batch, "q_head": 2 * group, "kv_head": 2, "q_seq": q_len, "kv_seq": kv_len,
               "head_dim": head_dim, "value_dim": head_dim}
    sizes = {}
    for d in dims:
        if d.get("static") is not None:
            sizes[d["name"]] = d["static"]
        elif not d.get("derived") and not d.get("alias"):
            sizes[d["name"]] = by_role.get(d["role"], 16)
    for d in dims:
        if d["name"] not in sizes and d.get("alias"):
            sizes[d["name"]] = sizes[d["alias"]]
        elif d["name"] not in sizes:
            sizes[d["name"]] = sizes[d["derived"]["source"]] // d["derived"]["divisor"]
    paged = kernel.manifest.get("paged")
    if paged:  # whole pages per sequence, one spare page in the pool
        page = paged["page_size"]
        table = next(a for a in kernel.manifest["args"] if a["name"] == paged["block_table"])
        names = {d["role"]: d["name"] for d in dims}
        per_seq = -(-kv_len // page)
        sizes[table["dims"][1]] = per_seq
        sizes[names["kv_seq"]] = per_seq * page
        sizes[names["kv_page"]] = sizes[names["batch"]] * per_seq + 1
    return sizes


def torch_dtype(name: str):
    import torch
    return {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "i32": torch.int32,
            "i8": torch.int8, "f8e4m3": torch.float8_e4m3fn}[name]


def make_inputs(kernel, sizes: dict, seed: int = 0, device: str = "cuda") -> dict:
    """Random inputs and params in storage order: randn for floats; i32 params are small ids
    when indexed by a sequence dim (document ids), else a position in [0, kv_len]."""
    import torch
    gen = torch.Generator(device=device).manual_seed(seed)
    roles = {d["name"]: d["role"] for d in kernel.manifest["dims"]}
    kv_len = next((sizes[n] for n, r in roles.items() if r == "kv_seq"), 16)
    out = {}
    paged = kernel.manifest.get("paged")
    # Dequantisation scales: positive, sized so that integer values land in about [-1, 1].
    scales = {a["scale"]: a["dtype"] for a in kernel.manifest["args"] if a.get("scale")}
    int_range = {"i8": 127, "i4": 7}
    for a in kernel.manifest["args"]:
        if a["kind"] == "state":  # a recurrence's initial state (f32, overwritten in place)
            shape = [sizes[n] for n in a["storage_dims"]]
            out[a["name"]] = torch.randn(shape, generator=gen, device=device)
            continue
        if a["kind"] not in ("input", "param"):
            continue
        shape = [sizes[n] for n in a["storage_dims"]]
        if a.get("packed", 1) > 1:  # i4: the last axis holds two values per byte
            shape[-1] //= a["packed"]
        if paged and a["name"] == paged["block_table"]:  # distinct pages, shuffled
            pages = next(sizes[d["name"]] for d in kernel.manifest["dims"] if d["role"] == "kv_page")
            perm = torch.randperm(pages, generator=gen, device=device)
            out[a["name"]] = perm[:shape[0] * shape[1]].view(shape).to(torch.int32)
        elif a["name"] in scales:
            u = torch.rand(shape, generator=gen, device=device) * 2 - 1
            out[a["name"]] = ((1.25 + 0.75 * u) / int_range.get(scales[a["name"]], 1)).to(
                torch_dtype(a["dtype"]))
        elif a["dtype"] == "i8":
            out[a["name"]] = torch.randint(-127, 128, shape, generator=gen, device=device,
                                           dtype=torch.int8)
        elif a["dtype"] == "i4":  # any byte: two signed nibbles
            out[a["name"]] = torch.randint(0, 256, shape, generator=gen, device=device,
                                           dtype=torch.uint8)
        elif a["dtype"] == "f8e4m3":
            out[a["name"]] = torch.randn(shape, generator=gen, device=device).to(torch.float8_e4m3fn)
        elif a["dtype"] == "i32":
            seq = any(roles[n] in ("q_seq", "kv_seq") for n in a["dims"])
            high = 3 if seq else kv_len + 1
            out[a["name"]] = torch.randint(0, high, shape, generator=gen, device=device, dtype=torch.int32)
        else:
            out[a["name"]] = torch.randn(shape, generator=gen, device=device).to(torch_dtype(a["dtype"]))
    return out


NEW_DOCUMENT = (0.0, 0.02, 0.3, 1.0)  # per batch row, as HostRun's RunConfig::sortedIds


def sort_ids(kernel, inputs: dict, seed: int = 0) -> dict:
    """Integer params whose last storage dim is a sequence dim (document ids) replaced by
    ascending ids: a new document starts at each position with probability 0, 0.02, 0.3 or 1
    by batch row (one document; long, short and one-token documents)."""
    import torch
    seqs = {d["name"] for d in kernel.manifest["dims"] if d["role"] in ("q_seq", "kv_seq")}
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = dict(inputs)
    for a in kernel.manifest["args"]:
        if (a["kind"] != "param" or a["dtype"] != "i32" or not a["storage_dims"]
                or a["storage_dims"][-1] not in seqs):
            continue
        t = inputs[a["name"]]
        rows = t.reshape(-1, t.shape[-1]).shape[0]
        p = torch.tensor([NEW_DOCUMENT[r % 4] for r in range(rows)]).unsqueeze(1)
        starts = (torch.rand(rows, t.shape[-1], generator=gen) < p).to(torch.int32)
        if t.shape[-1]:
            starts[:, 0] = 0
        out[a["name"]] = starts.cumsum(1).to(torch.int32).reshape(t.shape).to(t.device)
    return out


def output_names(kernel):
    kinds = {a["kind"]: a["name"] for a in kernel.manifest["args"]}
    return kinds.get("output"), kinds.get("lse")


def tolerance(kernel) -> float:
    """bf16/f16 inputs: 2e-2 (P is rounded to 16 bits for the P.V product); f32: 1e-3."""
    dtypes = {a["dtype"] for a in kernel.manifest["args"] if a["kind"] == "input"}
    return 2e-2 if dtypes & {"bf16", "f16"} else 1e-3


def run(kernel, inputs: dict) -> dict:
    """Launches on NaN-poisoned outputs and waits; returns the outputs."""
    import torch
    outs = kernel.allocate_outputs(**inputs)
    for t in outs.values():
        t.fill_(math.nan)
    # A state is updated in place: the kernel gets a copy, `inputs` keeps the initial state.
    states = {a["name"]: inputs[a["name"]].clone() for a in kernel.manifest["args"]
              if a["kind"] == "state"}
    kernel(**{**inputs, **states}, **outs)
    torch.cuda.synchronize()
    return {**outs, **states}


def compare(kernel, reference, inputs: dict, outs: dict) -> dict:
    """{'rel': ||o - ref|| / ||ref||, 'lse_rel', 'problems': [...]}; NaN never passes."""
    import torch
    o_name, lse_name = output_names(kernel)
    refs = reference(dict(inputs))
    ref_o, ref_lse = refs[0], refs[1]
    o = outs[o_name].double()
    problems = []
    nans = int(torch.isnan(o).sum())
    if nans:
        problems.append(f"{nans} of {o.numel()} output elements are NaN (unwritten or wrong)")
    ref_o = ref_o.double().to(o.device)
    norm = float(ref_o.norm())
    rel = float((o - ref_o).norm()) / (norm if norm > 0 else 1.0)
    if not rel <= tolerance(kernel):
        problems.append(f"relative error {rel:.3e} > {tolerance(kernel):.0e}")
    result = {"rel": rel, "lse_rel": None, "problems": problems}
    state = next((a["name"] for a in kernel.manifest["args"] if a["kind"] == "state"), None)
    if state is not None:  # the final state against the reference's (f32 accumulation)
        got, want = outs[state].double(), refs[2].double().to(o.device)
        state_rel = float((got - want).norm()) / max(float(want.norm()), 1e-30)
        result["state_rel"] = state_rel
        if not state_rel <= tolerance(kernel):
            problems.append(f"final state relative error {state_rel:.3e} > {tolerance(kernel):.0e}")
    # Several scores: one lse argument per score (`lse`, then `lse_<score>`), the reference's
    # stacked [score, b, h, i].
    lse_names = [a["name"] for a in kernel.manifest["args"] if a["kind"] == "lse"]
    if len(lse_names) > 1 and ref_lse is not None:
        ref_lse = ref_lse.double().to(o.device)
        if ref_lse.shape[0] != len(lse_names):
            problems.append(f"{len(lse_names)} lse outputs, the reference has {ref_lse.shape[0]}")
            return result
        for n, name in enumerate(lse_names):
            check_lse(kernel, outs[name].double(), ref_lse[n], result, problems, name)
        return result
    if lse_name and ref_lse is not None:
        check_lse(kernel, outs[lse_name].double(), ref_lse.double().to(o.device), result,
                  problems, "lse")
    return result


def check_lse(kernel, lse, ref_lse, result, problems, name):
    """One lse output against the reference's: -inf on the same rows, finite rows close."""
    import torch
    ref_inf, got_inf = torch.isneginf(ref_lse), torch.isneginf(lse)
    if torch.isnan(lse).any():
        problems.append(f"{int(torch.isnan(lse).sum())} {name} entries are NaN")
    if not torch.equal(ref_inf, got_inf):
        problems.append(f"{name} is -inf on {int(got_inf.sum())} rows, the reference on "
                        f"{int(ref_inf.sum())}")
    finite = ~ref_inf & ~got_inf & ~torch.isnan(lse)
    if finite.any():
        ref_f = ref_lse[finite]
        lse_rel = float((lse[finite] - ref_f).norm()) / max(float(ref_f.norm()), 1e-30)
        result["lse_rel"] = max(lse_rel, result["lse_rel"] or 0.0)
        # Quantised k/v are dequantised into f16/bf16 for the tensor cores: one more
        # rounding (2^-9 relative for bf16) in every score.
        lse_tol = 4e-3 if any(a.get("scale") for a in kernel.manifest["args"]) else 1e-3
        if not lse_rel <= lse_tol:
            problems.append(f"{name} relative error {lse_rel:.3e} > {lse_tol:.0e}")

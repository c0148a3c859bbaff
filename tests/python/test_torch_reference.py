"""The emitted float64 torch reference (`attnc --emit=torch`, emitTorchReference) against the
C++ float64 interpreter (referenceForward), for every spec in specs/, the specs of the AST lit
tests and the edge-case specs in tests/python/specs/, at several ragged shapes.

The interpreter's numbers come from tests/python/ref_dump.cpp: taken from $ATTNC_REF_DUMP when
set (CTest passes the CMake-built attnc-ref-dump), else built here with $CXX (default g++) from
the front-end sources into a cache directory ($ATTNC_TEST_CACHE, default ~/.cache/attnc), keyed
by a hash of the sources.

Run with pytest, or as a script (CTest): `python3 test_torch_reference.py` exits 77 (skipped)
when torch or pytest is missing. ATTNC_TORCH_DEVICE=cuda runs the torch side on a GPU;
ATTNC_TORCH_LARGE=1 adds an 8192 x 8192 causal run (chunked) checked row by row.
"""
import ast
import hashlib
import importlib.util
import json
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path

if __name__ == "__main__":
    import script_main  # skipped (77) without the modules the tests need
    script_main.run(__file__)

import pytest

torch = pytest.importorskip("torch")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FRONTEND = REPO / "compiler" / "frontend"
FRONTEND_SOURCES = ["Diagnostics", "DumpAST", "Lexer", "Parser", "Reference", "Sema",
                    "TorchReference"]
TOLERANCE = 1e-12
# Where the emitted reference runs (the interpreter's inputs are moved there): cpu, cuda, ...
DEVICE = os.environ.get("ATTNC_TORCH_DEVICE", "cpu")

# Spec files: the library, the AST lit tests (plain specs with comments), and edge cases.
SPEC_FILES = (sorted((REPO / "specs").glob("*.attn"))
              + sorted((REPO / "tests" / "lit" / "frontend" / "ast").glob("*.attn"))
              + sorted((HERE / "specs").glob("*.attn")))

# Sizes of the dynamic dims by role (static and derived dims keep theirs), and the range of the
# i32 params' values. q_head is a multiple of 4 for the GQA specs (hk = h / 4), of 8 where
# q and k are shared by groups of 8 heads (Mamba-2's g = h / 8) and the shape reaches them.
SHAPES = {
    "one_key": ("batch=1,q_head=8,q_seq=1,kv_seq=1,head_dim=8", "0,3"),
    "ragged": ("batch=2,q_head=8,q_seq=13,kv_seq=29,head_dim=24", "0,3"),
    "tall": ("batch=1,q_head=8,q_seq=67,kv_seq=33,head_dim=16,none=4", "-2,40"),
}
# Past the 256-key window of sliding_window.attn; costly for the interpreter, so only here.
LONG_SHAPE = ("batch=1,q_head=4,q_seq=300,kv_seq=290,head_dim=8", "0,3")
LONG_SPECS = {"sliding_window.attn", "causal.attn"}

TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
                "i32": torch.int32,
                "i8": torch.int8, "f8e4m3": torch.float8_e4m3fn, "i4": torch.uint8}


def pack_i4(x):
    """Signed 4-bit values (float64, in [-8, 7]) -> bytes, two per byte along the last axis, low
    nibble first: the storage of an i4 tensor."""
    n = x.to(torch.int64) & 15
    return (n[..., 0::2] | (n[..., 1::2] << 4)).to(torch.uint8)


def variant_names(path):
    """Variant names of a spec file, in order (the test's own parse; ref_dump lists them too)."""
    text = re.sub(r"#[^\n]*", "", path.read_text())
    return re.findall(r"(?m)^\s*variant\s+([A-Za-z_][A-Za-z0-9_]*)", text)


def spec_id(path):
    return str(path.relative_to(REPO))


CASES = []
for _path in SPEC_FILES:
    for _variant in variant_names(_path):
        for _shape in SHAPES:
            CASES.append(pytest.param(_path, _variant, _shape,
                                      id=f"{spec_id(_path)}:{_variant}:{_shape}"))
        if _path.name in LONG_SPECS:
            CASES.append(pytest.param(_path, _variant, "long",
                                      id=f"{spec_id(_path)}:{_variant}:long"))


# ---- the interpreter's side -------------------------------------------------------------------


def _build_ref_dump():
    sources = [HERE / "ref_dump.cpp"] + [FRONTEND / f"{name}.cpp" for name in FRONTEND_SOURCES]
    headers = sorted(FRONTEND.glob("*.h"))
    digest = hashlib.sha256()
    for path in sources + headers:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    cache = Path(os.environ.get("ATTNC_TEST_CACHE", Path.home() / ".cache" / "attnc"))
    exe = cache / f"ref_dump-{digest.hexdigest()[:16]}"
    if exe.exists():
        return exe
    cache.mkdir(parents=True, exist_ok=True)
    cxx = os.environ.get("CXX", "g++")
    tmp = exe.with_name(exe.name + f".tmp{os.getpid()}")
    command = [cxx, "-std=c++17", "-O2", f"-I{REPO}", "-o", str(tmp)] + [str(s) for s in sources]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip(f"no C++ compiler '{cxx}' to build ref_dump (set ATTNC_REF_DUMP)")
    except subprocess.CalledProcessError as failure:
        pytest.fail(f"building ref_dump failed:\n{' '.join(command)}\n{failure.stderr}")
    os.replace(tmp, exe)
    return exe


@pytest.fixture(scope="session")
def ref_dump():
    given = os.environ.get("ATTNC_REF_DUMP")
    if given:
        if not Path(given).is_file():
            pytest.fail(f"ATTNC_REF_DUMP={given} does not exist")
        return Path(given)
    return _build_ref_dump()


def run_ref_dump(exe, args):
    result = subprocess.run([str(exe)] + [str(a) for a in args], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, f"ref_dump {' '.join(map(str, args))} failed:\n{result.stderr}"
    return result.stdout


def read_raw(path, dtype, shape):
    data = bytearray(Path(path).read_bytes())
    return torch.frombuffer(data, dtype=dtype).reshape(shape).clone()


class Dump:
    """One run of the interpreter: its index and tensors (inputs in storage order, the output in
    canonical [b, h, i, dv] order, lse [b, h, i])."""

    def __init__(self, out_dir):
        self.index = json.loads((Path(out_dir) / "index.json").read_text())
        self.tensors = {}
        for name, entry in self.index["tensors"].items():
            dtype = torch.float64 if entry["dtype"] == "float64" else torch.int32
            self.tensors[name] = read_raw(Path(out_dir) / entry["file"], dtype, entry["shape"])

    def inputs(self, as_declared=True):
        """Every input and param, in its declared torch dtype (exact: the values were rounded
        to it) or in float64 / int64."""
        out = {}
        for name in self.index["inputs"] + self.index["params"]:
            x = self.tensors[name]
            declared = self.index["tensors"][name]["declared"]
            if declared == "i4":  # packed bytes either way: i4 has no wider storage
                out[name] = pack_i4(x)
            elif as_declared:
                out[name] = x.to(TORCH_DTYPES[declared])
            else:
                out[name] = x.to(torch.int64 if declared == "i32" else torch.float64)
        return out


def interpret(exe, spec, variant, tmp_path, shape, seed=1, extra=()):
    role_sizes, int_range = shape
    out = tmp_path / f"dump-{variant}-{seed}"
    out.mkdir()
    run_ref_dump(exe, [spec, f"--variant={variant}", f"--role-sizes={role_sizes}",
                       f"--int-range={int_range}", f"--seed={seed}", f"--out={out}", *extra])
    return Dump(out)


# ---- the emitted module -----------------------------------------------------------------------

_MODULES = {}


def emitted_module(exe, spec, variant):
    """The emitted reference of `variant`, imported from a file (so tracebacks show its lines)."""
    key = (spec, variant)
    if key not in _MODULES:
        directory = Path(tempfile.mkdtemp(prefix="attnc-torch-ref-"))
        path = directory / f"{variant}_reference.py"
        # The spec path relative to the repository, as the module's comments will quote it.
        run_ref_dump(exe, [spec_id(spec), f"--variant={variant}", f"--emit-torch={path}"])
        module_spec = importlib.util.spec_from_file_location(f"attnc_ref_{variant}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        module.__text__ = path.read_text()
        _MODULES[key] = module
    return _MODULES[key]


def sizes_in_no_tensor(module, dump):
    """Sizes of the dims that no input or param has: the only ones reference() must be given."""
    seen = {d for name in module.INPUTS + module.PARAMS for d in module.STORAGE[name]}
    return {d: n for d, n in dump.index["sizes"].items() if d not in seen}


# ---- comparison -------------------------------------------------------------------------------


def assert_matches(got, want, what):
    """Same shape, same NaN / +inf / -inf positions, and max |got - want| / max |want| over the
    finite entries at most TOLERANCE."""
    assert got is not None, f"{what}: missing"
    assert got.dtype == torch.float64, f"{what}: dtype {got.dtype}"
    assert tuple(got.shape) == tuple(want.shape), f"{what}: shape {tuple(got.shape)} != " \
                                                  f"{tuple(want.shape)}"
    got, want = got.cpu(), want.cpu()
    for name, test in [("NaN", torch.isnan), ("+inf", torch.isposinf), ("-inf", torch.isneginf)]:
        mismatch = test(got) != test(want)
        assert not mismatch.any(), \
            f"{what}: {name} differs at {mismatch.nonzero()[:5].tolist()} " \
            f"(got {got[mismatch][:5].tolist()}, want {want[mismatch][:5].tolist()})"
    finite = torch.isfinite(want)
    if not finite.any():
        return
    scale = want[finite].abs().max().item()
    error = (got[finite] - want[finite]).abs().max().item()
    relative = error / scale if scale > 0 else error
    assert relative <= TOLERANCE, f"{what}: max relative error {relative:.3e} " \
                                  f"(max abs error {error:.3e}, scale {scale:.3e})"


def check_against(module, dump, t, sizes, what):
    t = {name: x.to(DEVICE) for name, x in t.items()}
    result = module.reference(t, sizes)
    assert len(result) == (3 if module.STATE else 2), f"{what}: {len(result)} results"
    o, lse = result[:2]
    assert o.device == t[module.Q].device, f"{what}: o on {o.device}"
    index = dump.index
    out = index["output"]
    storage = module.STORAGE[out]
    canonical = index["tensors"][out]["dims"]
    assert list(o.shape) == [index["sizes"][d] for d in storage], f"{what}: o is not in storage order"
    assert o.is_contiguous()
    assert_matches(o.permute([storage.index(d) for d in canonical]), dump.tensors[out],
                   f"{what}: {out}")
    if index["lse"] is None:
        assert lse is None, f"{what}: lse should be None for norm {module.NORM}"
    else:
        assert_matches(lse, dump.tensors[index["lse"]], f"{what}: lse")
    if module.STATE:  # the final state, against the interpreter's recurrent form
        final = index["final_state"]
        storage = module.STORAGE[module.STATE]
        canonical = index["tensors"][final]["dims"]
        assert_matches(result[2].permute([storage.index(d) for d in canonical]),
                       dump.tensors[final], f"{what}: final state")
    return o, lse


# ---- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, variant, shape", CASES)
def test_matches_interpreter(ref_dump, tmp_path, spec, variant, shape):
    module = emitted_module(ref_dump, spec, variant)
    # The interpreter reads k and v unpaged. A paged reference sees them as a pool of one page
    # per sequence (a page of all kv_len slots, table[b] = [b]), which gathers them back.
    extra = ()
    if module.PAGED:
        pages_dim = module.STORAGE[module.PAGED["block_table"]][1]
        extra = (f"--sizes={pages_dim}=1",)
    dump = interpret(ref_dump, spec, variant, tmp_path,
                     LONG_SHAPE if shape == "long" else SHAPES[shape], extra=extra)
    if module.PAGED:
        table = dump.tensors[module.PAGED["block_table"]]
        table.copy_(torch.arange(table.shape[0], dtype=table.dtype).view(-1, 1))
    sizes = sizes_in_no_tensor(module, dump)
    # Inputs in their declared dtypes (bf16, f16, i32 ...), all of q_seq in one chunk.
    o, lse = check_against(module, dump, dump.inputs(as_declared=True), sizes, "declared dtypes")
    # float64 / int64 inputs, a few q rows per chunk: the same numbers.
    sz = dump.index["sizes"]
    saved = module.CHUNK_ELEMENTS
    module.CHUNK_ELEMENTS = 3 * sz[module_dim(module, "batch")] * sz[module_dim(module, "q_head")] \
        * sz[module_dim(module, "kv_seq")]
    try:
        o2, lse2 = check_against(module, dump, dump.inputs(as_declared=False), sizes, "chunked")
    finally:
        module.CHUNK_ELEMENTS = saved
    assert_matches(o2, o, "chunked vs whole o")
    if lse is not None:
        assert_matches(lse2, lse, "chunked vs whole lse")


def module_dim(module, role):
    return next(name for name, r in module.DIMS.items() if r == role)


def test_variant_names_match_ref_dump(ref_dump):
    for path in SPEC_FILES:
        listed = run_ref_dump(ref_dump, [path, "--list-variants"]).split()
        assert listed == variant_names(path), spec_id(path)


def raw_bytes(x):
    """The bytes of a tensor, contiguous, in the machine's (little-endian) order."""
    return bytes(x.contiguous().view(torch.uint8).flatten().tolist())


def test_inputs_read_from_files(ref_dump, tmp_path):
    """ref_dump --inputs: values made here (extreme and zero int params, floats that f32 cannot
    hold) are rounded to the declared dtypes by the interpreter; the torch reference gets the
    rounded ones back from the dump."""
    spec = HERE / "specs" / "int_semantics.attn"
    module = emitted_module(ref_dump, spec, "int_semantics")
    sizes = {"b": 2, "h": 3, "i": 11, "j": 9, "d": 5, "dv": 5}
    generator = torch.Generator().manual_seed(7)
    given = tmp_path / "given"
    given.mkdir()
    for name in module.INPUTS + module.PARAMS:
        shape = [sizes[d] for d in module.STORAGE[name]]
        if module.DTYPES[name] == "i32":
            x = torch.randint(-6, 7, shape, generator=generator, dtype=torch.int32)
            x.view(-1)[:3] = torch.tensor([2**31 - 1, -2**31, 0], dtype=torch.int32)
        else:
            x = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
            x.view(-1)[0] = 0.1
        (given / f"{name}.bin").write_bytes(raw_bytes(x))
    size_list = ",".join(f"{d}={n}" for d, n in sizes.items() if d != "dv")
    out = tmp_path / "out"
    out.mkdir()
    run_ref_dump(ref_dump, [spec, f"--sizes={size_list}", f"--inputs={given}", f"--out={out}"])
    dump = Dump(out)
    assert dump.tensors["q"].view(-1)[0].item() == torch.tensor(0.1, dtype=torch.float32).item()
    assert dump.tensors["a"].view(-1)[:3].tolist() == [2**31 - 1, -2**31, 0]
    check_against(module, dump, dump.inputs(), {}, "read inputs")


def test_strided_inputs(ref_dump, tmp_path):
    """Non-contiguous tensors and mixed dtypes are read by value, whatever their strides."""
    spec = HERE / "specs" / "layouts.attn"
    module = emitted_module(ref_dump, spec, "layouts")
    dump = interpret(ref_dump, spec, "layouts", tmp_path, SHAPES["ragged"])
    t = {}
    for name, x in dump.inputs().items():
        t[name] = torch.stack([x, x], dim=-1)[..., 0]  # same values, every other element
        assert not t[name].is_contiguous()
    t["kb"] = t["kb"].to(torch.float64)
    check_against(module, dump, t, {}, "strided")


def test_shape_errors(ref_dump, tmp_path):
    module = emitted_module(ref_dump, REPO / "specs" / "gqa.attn", "gqa")
    dump = interpret(ref_dump, REPO / "specs" / "gqa.attn", "gqa", tmp_path, SHAPES["ragged"])
    t = dump.inputs()
    with pytest.raises(ValueError, match="'k' has shape"):
        module.reference({**t, "k": t["k"][:, :, :1]})
    with pytest.raises(ValueError, match="missing tensor 'v'"):
        module.reference({"q": t["q"], "k": t["k"]})
    with pytest.raises(ValueError, match=r"'q' has shape \[2, 13, 8, 128\], expected \[2, 3, 8, 128\]"):
        module.reference(t, {"q_len": 3})
    with pytest.raises(ValueError, match="unknown dim 'q_lenn'"):
        module.reference(t, {"q_lenn": 13})
    with pytest.raises(ValueError, match="does not divide"):
        module.reference({**t, "q": t["q"][:, :, :6]})
    spec = HERE / "specs" / "int_score.attn"
    scored = emitted_module(ref_dump, spec, "int_score")
    dump = interpret(ref_dump, spec, "int_score", tmp_path, SHAPES["ragged"])
    with pytest.raises(ValueError, match="missing size for dim 'y'"):
        scored.reference(dump.inputs())


def without_comments(text):
    """`text` with its '#' comments blanked (line numbers kept)."""
    return re.sub(r"#[^\n]*", "", text)


def test_module_text(ref_dump):
    """Readable and self-contained: torch and math only, one statement per line, lines of at most
    100 characters, comments naming the spec file and line of the score and the mask."""
    for path in SPEC_FILES:
        text = without_comments(path.read_text())
        starts = [m.start() for m in re.finditer(r"\bvariant\b", text)] + [len(text)]
        for number, variant in enumerate(variant_names(path)):
            module = emitted_module(ref_dump, path, variant)
            source = module.__text__
            tree = ast.parse(source)
            imports = {alias.name for node in ast.walk(tree)
                       if isinstance(node, (ast.Import, ast.ImportFrom))
                       for alias in node.names}
            assert imports == {"math", "torch"}, (spec_id(path), imports)
            statement_lines = [node.lineno for node in ast.walk(tree)
                               if isinstance(node, ast.stmt)]
            assert len(statement_lines) == len(set(statement_lines)), "two statements on a line"
            for line_number, line in enumerate(source.splitlines(), 1):
                assert len(line) <= 100, f"{variant} line {line_number}: {len(line)} characters"
            assert module.VARIANT == variant
            body_start, body_end = starts[number], starts[number + 1]
            body = text[body_start:body_end]
            line_of = lambda offset: text[:body_start + offset].count("\n") + 1  # noqa: E731
            score = re.search(r"\bscore\b", body)
            assert f"{spec_id(path)}:{line_of(score.start())}: score " in source, variant
            mask = re.search(r"\bmask\b", body)
            if mask:
                assert f"{spec_id(path)}:{line_of(mask.start())}: mask " in source, variant
            else:
                assert "no mask" in source


@pytest.mark.skipif(os.environ.get("ATTNC_TORCH_LARGE") != "1",
                    reason="set ATTNC_TORCH_LARGE=1 for the 8192 x 8192 run")
def test_large_causal(ref_dump):
    """8192 queries x 8192 keys in chunks of CHUNK_ELEMENTS; sampled rows recomputed directly."""
    spec = REPO / "specs" / "causal.attn"
    module = emitted_module(ref_dump, spec, "causal")
    generator = torch.Generator().manual_seed(3)
    b, h, n, d = 1, 2, 8192, 64
    t = {name: torch.randn(b, h, n, d, generator=generator).to(torch.bfloat16).to(DEVICE)
         for name in ("q", "k", "v")}
    if DEVICE.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    o, lse = module.reference(t)
    if DEVICE.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
        print(f"peak GPU memory {peak / 2**30:.2f} GiB")
    q, k, v = (t[name].to(torch.float64) for name in ("q", "k", "v"))
    for i in [0, 1, 4095, 4096, 8191]:
        s = q[:, :, i:i + 1] @ k[:, :, :i + 1].transpose(-1, -2) / math.sqrt(d)  # [b, h, 1, i + 1]
        want_lse = torch.logsumexp(s, dim=-1)[:, :, 0]
        want_o = (torch.softmax(s, dim=-1) @ v[:, :, :i + 1])[:, :, 0]
        assert_matches(o[:, :, i].cpu(), want_o.cpu(), f"row {i}: o")
        assert_matches(lse[:, :, i].cpu(), want_lse.cpu(), f"row {i}: lse")

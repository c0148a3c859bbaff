"""The runtime's CUDA paths that the unit tests (no GPU) cannot reach, on the hand-written
fixtures: JIT errors with the driver's log, arch checks, unload and reload, other threads, and
that the comparison itself catches wrong or unwritten outputs."""
import json
import math
import threading

import pytest

import harness

torch = pytest.importorskip("torch")
import attnc  # noqa: E402


def _manifest(fixture_dir, name="fixture_causal", **changes):
    m = json.loads((fixture_dir / f"{name}.json").read_text())
    m.update(changes)
    return json.dumps(m)


def _ptx(fixture_dir):
    return (fixture_dir / "fixtures.ptx").read_bytes()


def _case(kernel, seed=0):
    inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, *harness.SMALL), seed=seed)
    return inputs, harness.run(kernel, inputs)


def test_bad_ptx_reports_the_jit_log(fixture_dir):
    torch.zeros(1, device="cuda")  # a current context: the PTX is compiled at load
    ptx = _ptx(fixture_dir).replace(b"ld.param.u64", b"ld.param.u65", 1)
    with pytest.raises(attnc.Error) as info:
        attnc.Kernel(ptx, _manifest(fixture_dir))
    message = str(info.value)
    print(message)
    assert message.startswith("kernel 'fixture_causal': cuModuleLoadDataEx failed: ")
    assert "JIT log:" in message and "ptxas" in message


def test_missing_entry_is_a_load_error(fixture_dir):
    with pytest.raises(attnc.Error, match=r"the PTX has no '\.entry fixture_missing'"):
        attnc.Kernel(_ptx(fixture_dir), _manifest(fixture_dir, entry="fixture_missing"))


def test_newer_arch_is_refused(fixture_dir):
    major, minor = torch.cuda.get_device_capability()
    newer = f"sm_{major + 1}{minor}a"
    torch.zeros(1, device="cuda")
    with pytest.raises(attnc.Error) as info:
        attnc.Kernel(_ptx(fixture_dir), _manifest(fixture_dir, arch=newer))
    message = str(info.value)
    print(message)
    assert f"compiled for {newer}, needs sm_{major + 1}{minor} exactly, but device " in message
    assert f"is sm_{major}{minor}" in message


def test_too_much_shared_memory_is_refused(fixture_dir):
    torch.zeros(1, device="cuda")
    with pytest.raises(attnc.Error, match=r"needs 4000000 bytes of shared memory per block, but device"):
        attnc.Kernel(_ptx(fixture_dir), _manifest(fixture_dir, dynamic_shared_memory=4000000))


def test_release_and_reload(fixture_dir):
    # The two fixtures share one module (same PTX): releasing one keeps it for the other;
    # releasing both unloads it, and loading again JIT-compiles it anew.
    def check(loaded, seed):
        kernel, reference = loaded
        inputs, outs = _case(kernel, seed)
        assert not harness.compare(kernel, reference, inputs, outs)["problems"]

    gqa, causal = harness.load(fixture_dir, "fixture_gqa"), harness.load(fixture_dir, "fixture_causal")
    check(gqa, 1)
    check(causal, 2)
    del gqa
    check(causal, 3)
    del causal
    check(harness.load(fixture_dir, "fixture_gqa"), 4)


def test_launch_from_another_thread(fixture_dir):
    kernel, reference = harness.load(fixture_dir, "fixture_gqa")
    inputs = harness.make_inputs(kernel, harness.dim_sizes(kernel, *harness.SMALL), seed=5)
    result = {}

    def work():
        try:
            result["outs"] = harness.run(kernel, inputs)
        except Exception as e:  # reported by the assertion below
            result["error"] = e

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "error" not in result, result.get("error")
    assert not harness.compare(kernel, reference, inputs, result["outs"])["problems"]


def test_comparison_catches_wrong_and_unwritten_outputs(fixture_dir):
    kernel, reference = harness.load(fixture_dir, "fixture_gqa")
    inputs, outs = _case(kernel)
    assert not harness.compare(kernel, reference, inputs, outs)["problems"]

    def off_by_ten_percent(tensors):
        o, lse = reference(tensors)
        return o * 1.1, lse
    wrong = harness.compare(kernel, off_by_ten_percent, inputs, outs)["problems"]
    assert any("relative error" in p for p in wrong), wrong

    unwritten = {n: t.clone() for n, t in outs.items()}
    o_name, lse_name = harness.output_names(kernel)
    unwritten[o_name][0, 0] = math.nan
    unwritten[lse_name][0, 0, 0] = math.nan
    problems = harness.compare(kernel, reference, inputs, unwritten)["problems"]
    assert any("output elements are NaN" in p for p in problems), problems
    assert any("lse entries are NaN" in p for p in problems), problems

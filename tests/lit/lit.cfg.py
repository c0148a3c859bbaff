# lit configuration of attnc: FileCheck tests of the front end, the dialect and each pass.
import os
import shutil

import lit.formats

config.name = "attnc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".attn", ".test"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attnc_obj_root, "tests", "lit")
config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
config.environment["PATH"] = os.pathsep.join(
    [config.attnc_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
config.substitutions.append(("%specs", os.path.join(config.attnc_src_root, "specs")))

# GPU tests (issue: GPU back end) need a device; without one they are reported UNSUPPORTED.
if shutil.which("nvidia-smi") and os.system("nvidia-smi -L > /dev/null 2>&1") == 0:
    config.available_features.add("gpu")
if shutil.which("ptxas"):
    config.available_features.add("ptxas")

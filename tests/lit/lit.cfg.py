# lit configuration for ffc's FileCheck tests. Loaded through the lit.site.cfg.py that CMake writes
# into the build directory (tests/lit/), which says where the ffc binary and LLVM's tools are.
#
# Substitutions:
#   %ffc          the ffc driver of this build
#   %examples     examples/ of the source tree (the models)
#   %strategies   strategies/ of the source tree
#   %inputs       tests/lit/Inputs (small models and helpers shared by tests)
#   %python       the Python 3 interpreter
#   %protoc       protoc, where found (feature `protoc`)
# plus lit's own: %s (this test), %S (its directory), %t (a temporary path), %p.
import os

import lit.formats

config.name = "ffc"
config.test_format = lit.formats.ShTest(execute_external=False)
# Tests are .test scripts, .ff models and .pbtxt strategies whose RUN lines sit in `#` comments.
config.suffixes = [".test", ".ff", ".pbtxt"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py.in"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.ffc_obj_root, "tests", "lit")

config.substitutions.append(("%ffc", config.ffc_binary))
config.substitutions.append(("%examples", os.path.join(config.ffc_src_root, "examples")))
config.substitutions.append(("%strategies", os.path.join(config.ffc_src_root, "strategies")))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))
config.substitutions.append(("%python", config.python_executable))
if config.protoc and os.path.exists(config.protoc):
    config.available_features.add("protoc")
    config.substitutions.append(("%protoc", config.protoc))

# FileCheck, not, count and split-file come from LLVM's tools directory.
config.environment["PATH"] = os.pathsep.join([config.llvm_tools_dir, config.environment.get("PATH", "")])
# Messages must not depend on the user's locale.
config.environment["LC_ALL"] = "C"

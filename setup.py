"""Build of orpflow's compiled core: every Cython compiler directive lives here, nowhere else.

Switches (environment):
  ORPFLOW_CYTHON_DEBUG=1  bounds/wraparound checks on, line tracing (coverage, profilers), -O0 -g
  ORPFLOW_ANNOTATE=1      write the `cython -a` HTML (build/cython-*/orpflow/_core/*.html;
                          yellow = Python on the path)
  ORPFLOW_SANITIZE=thread   ThreadSanitizer build (-fsanitize=thread -O1 -g)
  ORPFLOW_SANITIZE=address  AddressSanitizer + UndefinedBehaviorSanitizer build
                          (-fsanitize=address,undefined -O1 -g); both need the runtime preloaded
                          into an uninstrumented CPython: see docs/sanitizers.md

The default build is portable (no -march=native): wheels need that, and valgrind rejects
host-specific instructions.
"""
import os
import shutil
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

DEBUG = os.environ.get("ORPFLOW_CYTHON_DEBUG") == "1"
ANNOTATE = os.environ.get("ORPFLOW_ANNOTATE") == "1"
SANITIZE = os.environ.get("ORPFLOW_SANITIZE", "")
if SANITIZE not in ("", "thread", "address"):
    raise SystemExit(f"ORPFLOW_SANITIZE must be 'thread' or 'address', not {SANITIZE!r}")
if SANITIZE and os.name == "nt":
    raise SystemExit("ORPFLOW_SANITIZE needs gcc or clang (not MSVC)")
MODE = ("debug" if DEBUG else "release") + (f"-{SANITIZE}" if SANITIZE else "")
MODE_MARKER = Path("build") / "orpflow-build-mode"


class BuildExt(build_ext):
    """Recompile everything when the build mode changes: build_ext decides by file times,
    and a debug .so is newer than the release sources it should be replaced by."""

    def run(self):
        previous = MODE_MARKER.read_text() if MODE_MARKER.exists() else None
        if previous != MODE:
            self.force = True
        # Cython runs here, when extensions are built, not when setup.py is read: an sdist
        # (and pip's metadata step) never cythonizes. The extensions keep their identity
        # (build_ext has set them up, in private attributes): what Cython changed (the sources
        # become the generated C, depends gains the C headers) is copied onto them.
        generated = {ext.name: ext for ext in cythonize(
            self.extensions,
            compiler_directives=directives,
            annotate=ANNOTATE,
            force=ANNOTATE,      # annotation HTML is only written when Cython actually runs
            include_path=["."],
            # one C tree per mode: Cython regenerates by file time only, so switching the debug
            # directives must not reuse C generated under the other mode
            build_dir=f"build/cython-{MODE}",
        )}
        for ext in self.extensions:
            ext.__dict__.update((k, v) for k, v in vars(generated[ext.name]).items() if not k.startswith("_"))
        super().run()
        MODE_MARKER.parent.mkdir(parents=True, exist_ok=True)
        MODE_MARKER.write_text(MODE)


# examples/ files the package carries as orpflow/examples/ (orpflow.sample_path(),
# orpflow.example_config(), `orpflow init`): one copy in the repository, copied at build time in
# the same layout, so paper.toml's relative data path holds in both places.
PACKAGED_EXAMPLES = ["paper.toml", "live.toml", "data/binance_spot_btcusdt_sample.gz", "data/README.md"]


class BuildPy(build_py):
    """build_py, plus PACKAGED_EXAMPLES into the built package. An in-place (editable) build
    skips them: orpflow/bundled.py reads the checkout's examples/ there."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for rel in PACKAGED_EXAMPLES:
            src = Path("examples") / rel
            if not src.is_file():      # an sdist without examples/ would build a wheel without them
                raise SystemExit(f"examples/{rel} is missing: the wheel carries it (setup.py PACKAGED_EXAMPLES)")
            dst = Path(self.build_lib) / "orpflow" / "examples" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


COMPONENTS = ["types", "ring", "snapshot", "levels", "book", "convert", "binance_json", "features", "signals", "model",
              "model_signal", "risk", "latency", "resting", "venue", "broker", "strategy", "engine", "loop",
              "signal_strategy"]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "binding": True,     # introspectable signatures: stubtest checks the .pyi against them
    "profile": False,
    "linetrace": DEBUG,
}

macros = []
if DEBUG:
    macros += [("CYTHON_TRACE_NOGIL", "1"), ("ORP_DEBUG", "1")]

if os.name == "nt":
    compile_args = ["/O2"] if not DEBUG else ["/Od", "/Zi"]
else:
    compile_args = ["-O3"] if not DEBUG else ["-O0", "-g"]
    # no FMA contraction: the compiled features must round exactly as the Python twin does
    compile_args += ["-fno-strict-aliasing", "-ffp-contract=off"]
link_args = []
if SANITIZE:
    # -O1 keeps reports readable; frame pointers give whole stacks. UBSan aborts on its first
    # report, so a run with reports cannot pass by accident.
    flags = {"thread": ["-fsanitize=thread"],
             "address": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]}[SANITIZE]
    flags += ["-g", "-fno-omit-frame-pointer"]
    compile_args = [a for a in compile_args if not a.startswith("-O")] + ["-O1"] + flags
    link_args = flags

extensions = [
    Extension(
        f"orpflow._core.{name}",
        [f"orpflow/_core/{name}.pyx"],
        include_dirs=["orpflow/_core"],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in COMPONENTS
]

setup(cmdclass={"build_ext": BuildExt, "build_py": BuildPy}, ext_modules=extensions)

"""llama.cpp's source for a same-call comparison on the GPU machine, small enough to travel.

Usage: python3 tools/llama_src.py OUT.tgz [--sdist FILE] [--version 0.3.36]

Takes the `llama-cpp-python` source distribution from the package index (or --sdist, an
already downloaded one), keeps its `vendor/llama.cpp` tree minus what a CUDA/HIP build of
`llama-bench`, `llama-batched-bench` and `llama-perplexity` does not need (documentation,
models, tests, examples, the other GPU back ends, the other tools), and writes it as OUT.tgz
with the top folder `llama.cpp/` (about 6 MB instead of 77). Its `tools/CMakeLists.txt` is
replaced by one that adds only those three tools. Build there with:

    cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF
    cmake --build build -j --target llama-bench llama-batched-bench llama-perplexity

llama.cpp is used as an instrument (its numbers beside ours), never as code of ours.
"""

import argparse
import glob
import io
import os
import subprocess
import sys
import tarfile
import tempfile

# Folders of vendor/llama.cpp a build of the three tools does not read.
DROP = (
    "docs/", "models/", "media/", "gguf-py/", "tests/", "examples/", "benches/", "scripts/",
    "conversion/", ".github/", "grammars/", "skills/", "ci/", "pocs/", "app/",
    "ggml/src/ggml-cann/", "ggml/src/ggml-et/", "ggml/src/ggml-hexagon/", "ggml/src/ggml-metal/",
    "ggml/src/ggml-opencl/", "ggml/src/ggml-openvino/", "ggml/src/ggml-sycl/",
    "ggml/src/ggml-virtgpu/", "ggml/src/ggml-vulkan/", "ggml/src/ggml-webgpu/",
    "ggml/src/ggml-zdnn/", "ggml/src/ggml-zendnn/", "ggml/src/ggml-rpc/",
)
KEEP_TOOLS = ("batched-bench", "llama-bench", "perplexity")
TOOLS_CMAKE = (
    "# The tools a same-call comparison runs (written by rocmforge's tools/llama_src.py).\n"
    "find_package(Threads REQUIRED)\n"
    "llama_add_compile_flags()\n"
    + "".join(f"add_subdirectory({t})\n" for t in KEEP_TOOLS)
)


def kept(rel):
    """Whether the file at `rel` (relative to vendor/llama.cpp) goes into the archive."""
    if any(rel.startswith(d) for d in DROP):
        return False
    if rel.startswith("tools/") and rel != "tools/CMakeLists.txt":
        return rel.split("/")[1] in KEEP_TOOLS
    return True


def download(version, into):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "-d", into, f"llama-cpp-python=={version}"],
        check=True)
    found = glob.glob(os.path.join(into, "llama_cpp_python-*.tar.gz"))
    if not found:
        raise SystemExit(f"pip downloaded no llama_cpp_python sdist into {into}")
    return found[0]


def prune(sdist, out):
    """Writes the kept part of the sdist's vendor/llama.cpp to `out`; returns (files, bytes)."""
    files = 0
    with tarfile.open(sdist, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        prefix = None
        for m in src:
            parts = m.name.split("/")
            if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"]:
                continue
            prefix = "/".join(parts[:3]) + "/"
            rel = m.name[len(prefix):]
            if not rel or not kept(rel) or not (m.isfile() or m.isdir()):
                continue
            m2 = tarfile.TarInfo("llama.cpp/" + rel)
            m2.mode, m2.mtime = m.mode, m.mtime
            if m.isdir():
                m2.type = tarfile.DIRTYPE
                dst.addfile(m2)
                continue
            data = TOOLS_CMAKE.encode() if rel == "tools/CMakeLists.txt" else src.extractfile(m).read()
            m2.size = len(data)
            dst.addfile(m2, io.BytesIO(data))
            files += 1
        if prefix is None:
            raise SystemExit(f"{sdist} holds no vendor/llama.cpp tree")
    return files, os.path.getsize(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--sdist", help="an llama_cpp_python-*.tar.gz already downloaded")
    ap.add_argument("--version", default="0.3.36")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download(args.version, tmp)
        files, size = prune(sdist, args.out)
    print(f"llama_src: {files} files, {size / 1e6:.1f} MB -> {args.out}")


if __name__ == "__main__":
    main()

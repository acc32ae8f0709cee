"""Building the libtorch plugin against another libtorch directory (make TORCH_DIR=...), and choosing a
plugin at run time with JACLIP_TORCH_PLUGIN.

A CUDA PyTorch's site-packages/torch has the same layout (include/, lib/) as Debian's python3-torch
package, which stands in for it here, so the Makefile path for another libtorch is exercised on every
run even without a GPU.
"""
import os
import subprocess

import pytest

from conftest import ROOT, TINY_MODEL

TORCH_DIR = "/usr/lib/python3/dist-packages/torch"


def test_plugin_built_against_torch_dir_loads_a_model(tmp_path):
    if not os.path.exists(os.path.join(TORCH_DIR, "lib", "libtorch_cpu.so")):
        pytest.skip(f"{TORCH_DIR}/lib/libtorch_cpu.so is missing (python3-torch not installed)")
    build = tmp_path / "build"
    r = subprocess.run(["make", "-C", ROOT, f"BUILD={build}", f"TORCH_DIR={TORCH_DIR}",
                        f"{build}/libjaclip-torch.so.1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    plugin = build / "libjaclip-torch.so.1"
    deps = subprocess.run(["readelf", "-d", str(plugin)], capture_output=True, text=True).stdout
    assert f"[{TORCH_DIR}/lib]" in deps, "the plugin should carry an rpath to TORCH_DIR/lib"
    # The default build's classify example, told to use the new plugin.
    env = dict(os.environ, JACLIP_TORCH_PLUGIN=str(plugin))
    out = subprocess.run([os.path.join(ROOT, "build", "examples", "classify"), TINY_MODEL,
                          os.path.join(ROOT, "data", "dog.jpeg"), "犬", "猫"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "犬" in out.stdout and "猫" in out.stdout


def test_missing_plugin_is_a_clear_error(tmp_path):
    env = dict(os.environ, JACLIP_TORCH_PLUGIN=str(tmp_path / "nope.so"))
    out = subprocess.run([os.path.join(ROOT, "build", "examples", "classify"), TINY_MODEL,
                          os.path.join(ROOT, "data", "dog.jpeg"), "犬"], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert "libtorch plugin" in out.stderr and "nope.so" in out.stderr

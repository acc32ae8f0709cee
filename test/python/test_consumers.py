"""Consumers of libjaclip: (a) C, C++, Python and Ruby give the same feature bytes for the same image
and texts, and the examples (search.c, classify.cpp/.py/.rb) run with the documented output; (b) an
installed copy (`make install PREFIX=tmp`) serves programs built only with pkg-config and both bindings."""
import math
import os
import shutil
import subprocess

import pytest

from conftest import LIBRARY, PROJECT_DATA, PYTHON, ROOT, TINY_MODEL

BUILD = os.path.join(ROOT, "build")
DOG = os.path.join(PROJECT_DATA, "dog.jpeg")
RUBY = os.environ.get("RUBY", "ruby")
CC = os.environ.get("CC", "cc")
CXX = os.environ.get("CXX", "g++")
TEXTS = ["犬", "猫が座っている", "吾輩は猫である。名前はまだ無い。", ""]
LABELS = ["犬", "猫", "象", "自動車"]
TEMPLATES = ["--template", "{}の写真", "--template", "{}"]


def run(cmd, env=None, check=True, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def env_for(library=LIBRARY, **extra):
    env = dict(os.environ, JACLIP_LIBRARY=library, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    env.update(extra)
    return env


def compile_c(src, out, flags):
    run([CC, "-std=c99", "-D_DEFAULT_SOURCE", "-O1", "-Wall", "-Wextra", "-Werror", src, "-o", out] + flags)
    return out


def compile_cxx(src, out, flags):
    run([CXX, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", src, "-o", out] + flags)
    return out


BUILD_FLAGS = ["-I" + os.path.join(ROOT, "include"), "-L" + BUILD, "-ljaclip", "-Wl,-rpath," + BUILD]


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    d = tmp_path_factory.mktemp("bins")
    c = os.path.join(ROOT, "test", "consumers")
    return {
        "features_c": compile_c(os.path.join(c, "features.c"), str(d / "features_c"), BUILD_FLAGS),
        "features_cpp": compile_cxx(os.path.join(c, "features.cpp"), str(d / "features_cpp"), BUILD_FLAGS),
        "search": compile_c(os.path.join(ROOT, "examples", "search.c"), str(d / "search"), BUILD_FLAGS),
        "classify_cpp": compile_cxx(os.path.join(ROOT, "examples", "classify.cpp"), str(d / "classify_cpp"),
                                    BUILD_FLAGS),
        "index_cpp": compile_cxx(os.path.join(c, "index.cpp"), str(d / "index_cpp"), BUILD_FLAGS),
    }


def test_cpp_index_wrapper(bins, tmp_path):
    # jaclip::Index: rows a, b, c (unit after normalising); b removed in memory, a removed from the file
    # after d was appended, then compacted: c and d remain; the query (0, 0, .6, .8) scores d 0.8, c 0.6.
    out = subprocess.run([bins["index_cpp"], str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "removed 1", "removed from file 1", "size 2 dim 4 fingerprint cloob-4-0123456789abcdef",
        "row 0 c.jpg", "row 1 d.jpg", "hit d.jpg 0.8000", "hit c.jpg 0.6000",
        "error JACLIP_ERROR_INVALID_ARGUMENT: invalid argument"]


def features_commands(bins):
    c = os.path.join(ROOT, "test", "consumers")
    return {
        "c": [bins["features_c"]],
        "c++": [bins["features_cpp"]],
        "python": [PYTHON, os.path.join(c, "features.py")],
        "ruby": [RUBY, "-I" + os.path.join(ROOT, "bindings", "ruby", "lib"), os.path.join(c, "features.rb")],
    }


def read_features(outdir):
    with open(os.path.join(outdir, "image.f32"), "rb") as f:
        image = f.read()
    with open(os.path.join(outdir, "text.f32"), "rb") as f:
        text = f.read()
    return image, text


# ---- (a) the same bytes from every language ------------------------------------------------------

def test_c_cpp_python_ruby_give_identical_feature_bytes(bins, tmp_path):
    results = {}
    for lang, cmd in features_commands(bins).items():
        out = tmp_path / lang
        out.mkdir()
        run(cmd + [TINY_MODEL, DOG, str(out)] + TEXTS, env=env_for())
        results[lang] = read_features(out)
    image, text = results["c"]
    assert len(image) == 32 * 4 and len(text) == len(TEXTS) * 32 * 4
    assert any(image) and any(text)
    for lang, (other_image, other_text) in results.items():
        assert other_image == image, f"{lang} image features differ from C's"
        assert other_text == text, f"{lang} text features differ from C's"


def classify_commands(bins):
    return {
        "c++": [bins["classify_cpp"]],
        "python": [PYTHON, os.path.join(ROOT, "examples", "classify.py")],
        "ruby": [RUBY, "-I" + os.path.join(ROOT, "bindings", "ruby", "lib"), os.path.join(ROOT, "examples", "classify.rb")],
    }


def parse_classify(stdout):
    rows = []
    for line in stdout.splitlines():
        prob, label = line.split("\t")
        rows.append((float(prob), label))
    return rows


@pytest.mark.parametrize("extra", [[], TEMPLATES, TEMPLATES + ["--scale", "7.5"]])
def test_classify_examples_agree_and_print_ranked_probabilities(bins, extra):
    outputs = {lang: run(cmd + [TINY_MODEL, DOG] + LABELS + extra, env=env_for()).stdout
               for lang, cmd in classify_commands(bins).items()}
    assert outputs["python"] == outputs["c++"] == outputs["ruby"]
    rows = parse_classify(outputs["c++"])
    assert sorted(label for _, label in rows) == sorted(LABELS)
    probs = [p for p, _ in rows]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-6)


def test_classify_examples_report_errors(bins, tmp_path):
    for lang, cmd in classify_commands(bins).items():
        out = run(cmd + [TINY_MODEL, str(tmp_path / "missing.jpg"), "犬"], env=env_for(), check=False)
        assert out.returncode == 1, lang
        assert "missing.jpg" in out.stderr and "JACLIP_ERROR_IO" in out.stderr, lang
        assert out.stdout == ""
        usage = run(cmd + [TINY_MODEL], env=env_for(), check=False)
        assert usage.returncode == 2 and "usage" in usage.stderr, lang


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from PIL import Image
    d = tmp_path_factory.mktemp("images")
    shutil.copy(DOG, d / "dog.jpeg")
    Image.new("RGB", (320, 200), (200, 40, 30)).save(d / "red.png")
    Image.linear_gradient("L").save(d / "gradient.PNG")
    Image.new("RGB", (50, 80), (0, 0, 250)).save(d / "blue.jpg")
    (d / "notes.txt").write_text("not an image")
    return d


def test_search_example_ranks_the_folder(bins, image_dir):
    out = run([bins["search"], TINY_MODEL, str(image_dir), "犬の写真"], env=env_for()).stdout
    lines = [line.split("\t") for line in out.splitlines()]
    assert [int(rank) for rank, _, _ in lines] == [1, 2, 3, 4]
    assert sorted(os.path.basename(p) for _, _, p in lines) == ["blue.jpg", "dog.jpeg", "gradient.PNG", "red.png"]
    scores = [float(s) for _, s, _ in lines]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    # The same ranking and scores through the Python binding.
    code = f"""
import jaclip, os
paths = sorted(os.path.join({str(image_dir)!r}, n) for n in os.listdir({str(image_dir)!r}) if not n.endswith(".txt"))
with jaclip.Model({TINY_MODEL!r}) as m:
    sims = jaclip.similarity(m.encode_texts(["犬の写真"]), m.encode_images(paths))[0]
    idx, val = jaclip.topk([sims.tolist()], len(paths))
for r, (i, s) in enumerate(zip(idx[0].tolist(), val[0].tolist()), 1):
    print(f"{{r}}\\t{{s:.6f}}\\t{{paths[i]}}")
"""
    assert run([PYTHON, "-c", code], env=env_for()).stdout == out
    top2 = run([bins["search"], TINY_MODEL, str(image_dir), "犬の写真", "2"], env=env_for()).stdout
    assert top2.splitlines() == out.splitlines()[:2]


def test_search_example_errors(bins, image_dir, tmp_path):
    empty = run([bins["search"], TINY_MODEL, str(tmp_path), "犬"], env=env_for(), check=False)
    assert empty.returncode == 1 and "no .jpg" in empty.stderr
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    broken = run([bins["search"], TINY_MODEL, str(tmp_path), "犬"], env=env_for(), check=False)
    assert broken.returncode == 1 and "broken.png" in broken.stderr and "IMAGE_DECODE" in broken.stderr
    bad_text = run([bins["search"], TINY_MODEL, str(image_dir), "\udcff"], env=env_for(), check=False)
    assert bad_text.returncode == 1 and "UTF8" in bad_text.stderr
    usage = run([bins["search"], TINY_MODEL], env=env_for(), check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr


# ---- (b) an installed copy -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("prefix")
    run(["make", "--no-print-directory", "-C", ROOT, "install", f"PREFIX={prefix}"])
    return prefix


def pkg_env(prefix, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("JACLIP_LIBRARY", "PYTHONPATH")}
    env.update(PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"), **extra)
    return env


def test_installed_library_has_the_soname_and_exports_only_jaclip(installed):
    lib = str(installed / "lib" / "libjaclip.so.1")
    assert os.path.islink(lib) and os.path.exists(installed / "include" / "jaclip.h")
    assert os.path.exists(installed / "include" / "jaclip.hpp")
    assert os.path.exists(installed / "lib" / "libjaclip-torch.so.1")
    dynamic = run(["readelf", "-d", lib]).stdout
    assert "Library soname: [libjaclip.so.1]" in dynamic
    symbols = [line.split() for line in run(["nm", "-D", "--defined-only", lib]).stdout.splitlines()]
    # The only non-function entry is the version node of lib/jaclip.map.
    names = [s[-1] for s in symbols if s[1] != "A"]
    assert len(names) > 60 and all(n.startswith("jaclip_") for n in names), [n for n in names if not n.startswith("jaclip_")]
    assert [s[-1] for s in symbols if s[1] == "A"] in ([], ["JACLIP_1"])


def test_programs_built_only_with_pkg_config_run_against_the_install(installed, bins, tmp_path):
    env = pkg_env(installed)
    flags = run(["pkg-config", "--cflags", "--libs", "jaclip"], env=env).stdout.split()
    assert f"-I{installed}/include" in flags and f"-L{installed}/lib" in flags
    c = os.path.join(ROOT, "test", "consumers")
    # Compiled in an empty folder with nothing but pkg-config's flags (no -I of the source tree).
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(os.path.join(c, "features.c"), work)
    shutil.copy(os.path.join(c, "features.cpp"), work)
    progs = [compile_c(str(work / "features.c"), str(work / "c"), flags),
             compile_cxx(str(work / "features.cpp"), str(work / "cpp"), flags)]
    run_env = dict(env, LD_LIBRARY_PATH=str(installed / "lib"))
    reference = tmp_path / "reference"
    reference.mkdir()
    run([bins["features_c"], TINY_MODEL, DOG, str(reference)] + TEXTS, env=env_for())
    for prog in progs:
        ldd = run(["ldd", prog], env=run_env).stdout
        assert f"libjaclip.so.1 => {installed}/lib/libjaclip.so.1" in ldd
        out = tmp_path / os.path.basename(prog)
        out.mkdir()
        run([prog, TINY_MODEL, DOG, str(out)] + TEXTS, env=run_env)
        assert read_features(out) == read_features(reference)


def test_static_library_with_pkg_config_static(installed, bins, tmp_path):
    """libjaclip.a plus `pkg-config --static --libs`: no libjaclip.so at run time; the libtorch plugin is
    found where make install put it."""
    env = pkg_env(installed)
    flags = run(["pkg-config", "--static", "--cflags", "--libs", "jaclip"], env=env).stdout.split()
    flags = [f for f in flags if f != "-ljaclip"]
    prog = compile_c(os.path.join(ROOT, "test", "consumers", "features.c"), str(tmp_path / "static"),
                     [str(installed / "lib" / "libjaclip.a")] + flags)
    assert "libjaclip.so" not in run(["ldd", prog]).stdout
    out, reference = tmp_path / "out", tmp_path / "reference"
    out.mkdir()
    reference.mkdir()
    run([bins["features_c"], TINY_MODEL, DOG, str(reference)] + TEXTS, env=env_for())
    run([prog, TINY_MODEL, DOG, str(out)] + TEXTS, env=env)
    assert read_features(out) == read_features(reference)


@pytest.mark.parametrize("how", ["pkg-config", "JACLIP_LIBRARY"])
def test_bindings_load_the_installed_library(installed, how):
    libdir = str(installed / "lib")
    env = pkg_env(installed) if how == "pkg-config" else pkg_env(installed, JACLIP_LIBRARY=libdir)
    py = run([PYTHON, "-c", f"import jaclip; print(jaclip.library_path()); "
                            f"print(jaclip.Model({TINY_MODEL!r}).encode_texts(['犬']).shape)"],
             env=dict(env, PYTHONPATH=os.path.join(ROOT, "bindings", "python")))
    path, shape = py.stdout.splitlines()
    assert path.startswith(libdir) and shape == "(1, 32)"
    rb = run([RUBY, "-I" + os.path.join(ROOT, "bindings", "ruby", "lib"), "-rjaclip", "-e",
              f"puts Jaclip.library_path; Jaclip::Model.open({TINY_MODEL!r}) {{ |m| p m.encode_texts(['犬'])[0].size }}"],
             env=env)
    path, dim = rb.stdout.splitlines()
    assert path.startswith(libdir) and dim == "32"


def test_install_to_another_prefix_needs_only_pkg_config_path(installed, tmp_path):
    """Issue 28: outside the dynamic linker's folders jaclip.pc carries an rpath, so a program built with
    pkg-config runs with no LD_LIBRARY_PATH; the installed command carries its own; the bindings are
    installed where PYTHONPATH / RUBYLIB name them (README, Install)."""
    env = {k: v for k, v in pkg_env(installed).items() if k != "LD_LIBRARY_PATH"}
    flags = run(["pkg-config", "--cflags", "--libs", "jaclip"], env=env).stdout.split()
    assert f"-Wl,-rpath,{installed}/lib" in flags
    prog = compile_c(os.path.join(ROOT, "test", "consumers", "features.c"), str(tmp_path / "c"), flags)
    (tmp_path / "out").mkdir()
    run([prog, TINY_MODEL, DOG, str(tmp_path / "out")] + TEXTS, env=env)
    info = run([str(installed / "bin" / "jaclip"), "info", TINY_MODEL], env=env).stdout
    assert "32" in info
    site = [p for p in (installed / "lib").glob("python3.*/site-packages")]
    assert len(site) == 1 and (site[0] / "jaclip" / "_version.py").exists()
    py = run([PYTHON, "-c", "import jaclip; print(jaclip.__file__); print(jaclip.library_path())"],
             env=dict(env, PYTHONPATH=str(site[0])), cwd=str(tmp_path)).stdout.splitlines()
    assert py[0].startswith(str(site[0])) and py[1].startswith(str(installed / "lib"))
    rb = run([RUBY, "-rjaclip", "-e", "puts $LOADED_FEATURES.grep(/jaclip.rb/).first, Jaclip.library_path"],
             env=dict(env, RUBYLIB=str(installed / "lib" / "ruby" / "site_ruby")), cwd=str(tmp_path)).stdout.splitlines()
    assert rb[0].startswith(str(installed)) and rb[1].startswith(str(installed / "lib"))


def test_install_runs_ldconfig_only_into_the_linkers_folders_without_destdir():
    def dry(*args):
        return run(["make", "--no-print-directory", "-s", "-n", "-C", ROOT, "install", *args]).stdout
    assert "ldconfig" in dry("PREFIX=/usr/local") and "id -u" in dry("PREFIX=/usr/local")
    assert "ldconfig" not in dry("PREFIX=/opt/jaclip")
    assert "ldconfig" not in dry("PREFIX=/usr/local", "DESTDIR=/tmp/staged")

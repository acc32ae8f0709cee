"""tools/valgrind-probe, which decides whether the memcheck steps run under valgrind or ASan
(mk/81-memcheck.mk). Its logic is tested with stub valgrinds (the CPU cannot be chosen); the real
valgrind must then agree with what this CPU's CPUID says about RDTSCP."""
import ctypes.util
import os
import shutil
import subprocess
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = os.path.join(ROOT, "tools", "valgrind-probe")

# What valgrind 3.19 prints when it refuses RDTSCP (seen on a Zen 5 VM, abridged).
REFUSAL = textwrap.dedent("""\
    vex amd64->IR: unhandled instruction bytes: 0xF 0x1 0xF9 0x89 0xCE 0x48 0x8D 0x3D 0xBB 0xE
    vex amd64->IR:   REX=0 REX.W=0 REX.R=0 REX.X=0 REX.B=0
    ==7== valgrind: Unrecognised instruction at address 0x22903522.
    ==7==    at 0x22903522: hwy::platform::TimerResolution() (in /usr/lib/x86_64-linux-gnu/libhwy.so.1.0.3)
    ==7==    by 0x22903A1B: ??? (in /usr/lib/x86_64-linux-gnu/libhwy.so.1.0.3)
    ==7== Process terminating with default action of signal 4 (SIGILL)
    """)


def run_probe(args, valgrind=None, timeout=300):
    env = dict(os.environ)
    if valgrind:
        env["VALGRIND"] = valgrind
    return subprocess.run([PROBE] + args, env=env, capture_output=True, text=True, timeout=timeout)


def write_script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def compile_c(tmp_path, name, source, *libs):
    cc = shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler to build the probe's subjects")
    src = tmp_path / (name + ".c")
    src.write_text(source)
    exe = tmp_path / name
    subprocess.run([cc, "-O1", "-o", str(exe), str(src), *libs], check=True, timeout=120)
    return str(exe)


def test_refused_instruction_means_cannot_run(tmp_path):
    log = tmp_path / "refusal.txt"
    log.write_text(REFUSAL)
    stub = write_script(tmp_path / "valgrind", f'cat "{log}" >&2\nexit 132\n')
    r = run_probe(["/bin/true"], valgrind=stub)
    assert r.returncode == 1, r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    assert "cannot run true" in lines[0] and "RDTSCP" in lines[0]
    assert "hwy::platform::TimerResolution()" in lines[0]


def test_other_refused_bytes_are_named(tmp_path):
    log = tmp_path / "avx512.txt"
    log.write_text("vex amd64->IR: unhandled instruction bytes: 0x62 0xF1 0x7C 0x48\n"
                   "==9== valgrind: Unrecognised instruction at address 0x1000.\n"
                   "==9==    at 0x1000: kernel (in /lib/libx.so)\n")
    stub = write_script(tmp_path / "valgrind", f'cat "{log}" >&2\nexit 132\n')
    r = run_probe(["/bin/true"], valgrind=stub)
    assert r.returncode == 1
    assert "0x62 0xF1 0x7C" in r.stdout and "kernel (in /lib/libx.so)" in r.stdout


def test_a_valgrind_that_runs_the_program_means_can_run(tmp_path):
    # Drops valgrind's options and runs the program, as valgrind does when it can.
    stub = write_script(tmp_path / "valgrind", 'while [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n')
    r = run_probe(["/bin/true"], valgrind=stub)
    assert (r.returncode, r.stdout.strip()) == (0, "valgrind can run true")
    # Memcheck's own findings (its error exit code) are not the probe's business.
    stub = write_script(tmp_path / "valgrind99", 'echo "==1== Invalid read of size 4" >&2\nexit 99\n')
    assert run_probe(["/bin/true"], valgrind=stub).returncode == 0


def test_cannot_judge_a_failing_program_or_without_valgrind(tmp_path):
    stub = write_script(tmp_path / "valgrind", "exit 0\n")
    r = run_probe(["/bin/false"], valgrind=stub)
    assert r.returncode == 2 and "fails without valgrind" in r.stdout
    r = run_probe(["/bin/true"], valgrind=str(tmp_path / "no-such-valgrind"))
    assert r.returncode == 2 and "no valgrind" in r.stdout
    assert run_probe([]).returncode == 2


def cpu_has_rdtscp():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return "rdtscp" in line.split()
    pytest.skip("/proc/cpuinfo has no flags line")


RDTSCP_SOURCE = """
int main(void) {
    unsigned lo, hi, aux;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    return (int)(aux & 0);
}
"""

LOAD_SOURCE = """
#include <dlfcn.h>
int main(int argc, char **argv) { return dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) ? 0 : 3; }
"""


@pytest.fixture
def real_valgrind():
    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed (tools/setup-deps installs it)")


def test_real_valgrind_follows_cpuid_on_rdtscp(tmp_path, real_valgrind):
    if os.uname().machine != "x86_64":
        pytest.skip("RDTSCP is an x86-64 instruction")
    exe = compile_c(tmp_path, "rdtscp", RDTSCP_SOURCE)
    r = run_probe([exe])
    expected = 0 if cpu_has_rdtscp() else 1
    assert r.returncode == expected, r.stdout
    if expected:
        assert "RDTSCP" in r.stdout
    # A program without it runs everywhere.
    plain = compile_c(tmp_path, "plain", "int main(void) { return 0; }\n")
    assert run_probe([plain]).returncode == 0


def test_real_valgrind_on_a_program_that_loads_libhwy(tmp_path, real_valgrind):
    # libtorch loads libhwy through OpenCV and libjxl; its static initialiser executes RDTSCP.
    if not ctypes.util.find_library("hwy"):
        pytest.skip("libhwy is not installed here (it comes with libtorch's dependencies)")
    exe = compile_c(tmp_path, "load", LOAD_SOURCE, "-ldl")
    r = run_probe([exe, "libhwy.so.1"])
    assert r.returncode == (0 if cpu_has_rdtscp() else 1), r.stdout

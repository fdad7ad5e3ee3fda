"""waveforge._openblas: AVX-512 OpenBLAS kernels on AMD CPUs that OpenBLAS's dispatch does not know."""

from waveforge._openblas import choose_core

AVX512 = "fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl"


def _cpuinfo(tmp_path, vendor: str, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 26\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return str(path)


def test_sets_skylakex_on_avx512_amd(tmp_path):
    env = {}
    assert choose_core(env, _cpuinfo(tmp_path, "AuthenticAMD", AVX512)) == "SkylakeX"
    assert env == {"OPENBLAS_CORETYPE": "SkylakeX"}


def test_leaves_a_users_choice_alone(tmp_path):
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    assert choose_core(env, _cpuinfo(tmp_path, "AuthenticAMD", AVX512)) is None
    assert env == {"OPENBLAS_CORETYPE": "Haswell"}


def test_no_change_without_every_avx512_subset_or_on_intel(tmp_path):
    for vendor, flags in [("AuthenticAMD", "avx2 avx512f avx512cd"), ("GenuineIntel", AVX512)]:
        env = {}
        assert choose_core(env, _cpuinfo(tmp_path, vendor, flags)) is None
        assert env == {}


def test_no_cpuinfo(tmp_path):
    env = {}
    assert choose_core(env, str(tmp_path / "missing")) is None and env == {}

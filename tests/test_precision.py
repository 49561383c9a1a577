"""`--precision auto`: bfloat16 where the hardware runs it natively, float32
elsewhere, and one line when bfloat16 is asked for where it is emulated."""

import pytest

from keras_ann import precision

# The real one, uncached (conftest.py replaces it in every test).
DESCRIBE = precision.describe_hardware.__wrapped__


def _cpu(monkeypatch, flags, name="Intel(R) Xeon(R) Platinum 8375C"):
    monkeypatch.setattr(precision, "describe_hardware", DESCRIBE)
    monkeypatch.setattr(precision, "_gpu", lambda: None)
    monkeypatch.setattr(precision, "_cpu", lambda: (name, set(flags)))


ICE_LAKE = {"avx2", "fma", "avx512f", "avx512_vnni"}  # model 106: no AVX512_BF16, no AMX
SAPPHIRE_RAPIDS = ICE_LAKE | {"avx512_bf16", "amx_tile", "amx_bf16"}
ZEN4 = ICE_LAKE | {"avx512_bf16"}


@pytest.mark.parametrize("flags, chosen", [(ICE_LAKE, "float32"), (SAPPHIRE_RAPIDS, "mixed_bfloat16"),
                                           (ZEN4, "mixed_bfloat16"), ({"fp", "asimd", "bf16"}, "mixed_bfloat16"),
                                           (set(), "float32")])  # fmt: skip
def test_auto_is_bfloat16_exactly_where_the_cpu_has_bfloat16_units(monkeypatch, flags, chosen):
    _cpu(monkeypatch, flags)
    lines = []
    assert precision.resolve_precision("auto", log=lines.append) == chosen
    assert lines == [lines[0]] and f"auto -> {chosen}" in lines[0] and "Xeon" in lines[0]


@pytest.mark.parametrize("capability, chosen", [((9, 0), "mixed_bfloat16"), ((8, 0), "mixed_bfloat16"),
                                                ((7, 5), "mixed_float16"), ((6, 1), "float32")])  # fmt: skip
def test_auto_on_a_gpu_follows_its_compute_capability(monkeypatch, capability, chosen):
    _cpu(monkeypatch, ICE_LAKE)
    monkeypatch.setattr(precision, "_gpu", lambda: ("NVIDIA GPU", capability))
    assert precision.resolve_precision("auto") == chosen


def test_bfloat16_asked_for_where_it_is_emulated_says_so_in_one_line(monkeypatch):
    _cpu(monkeypatch, ICE_LAKE)
    lines = []
    assert precision.resolve_precision("mixed_bfloat16", log=lines.append) == "mixed_bfloat16"
    assert len(lines) == 1 and "emulated" in lines[0] and "slower than float32" in lines[0]
    lines.clear()
    _cpu(monkeypatch, SAPPHIRE_RAPIDS)
    precision.resolve_precision("mixed_bfloat16", log=lines.append)
    assert lines == []  # native: nothing to say


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="`precision` must be one of .*'mixed_bfloat16'.*got 'bf16'"):
        precision.resolve_precision("bf16")


def test_the_command_line_takes_auto_by_default_and_refuses_others():
    from keras_ann import cli

    parser = cli.build_parser()
    for command in (["train", "x"], ["benchmark", "resnet18_d8"]):
        assert parser.parse_args(command).precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "x", "--precision", "bf16"])


def test_this_machine_is_described_with_its_cpu_model():
    hardware = DESCRIBE()
    assert hardware.device in ("cpu", "gpu") and hardware.name

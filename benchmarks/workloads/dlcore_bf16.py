"""dlcore under Keras's ``mixed_bfloat16`` dtype policy: float32 variables, bfloat16 compute (the
AVX512_BF16 tiles where the CPU has them, a portable fallback otherwise), float32 losses; the same
models, data and steps as ``dlcore_``, training and inference, set before the model is built."""
from . import dlcore_

REQUIRES = ("dlcore",)
NAME = "dlcore_bf16"
POLICY = "mixed_bfloat16"


def setup(threads):
    import dlcore as dl
    from dlcore.kernels import gemm

    info = dlcore_.setup(threads)
    dl.mixed_precision.set_global_policy(POLICY)
    info["dtype_policy"] = POLICY
    info["bf16_instructions"] = gemm.bf16_isa()
    return info


def supports(spec):
    if spec["kind"] not in ("train", "infer"):
        return "the bf16 variant runs the training and inference workloads"
    if spec["model_spec"]["kind"] in ("lstm", "gru"):
        return "recurrent layers compute in float32 on rounded inputs under mixed_bfloat16 (README: precision)"
    return dlcore_.supports(spec)


build = dlcore_.build
count_params = dlcore_.count_params


def cold_start(payload):
    raise RuntimeError("the bf16 variant measures steady-state steps only")


def train_memory(payload):
    raise RuntimeError("the bf16 variant measures steady-state steps only")

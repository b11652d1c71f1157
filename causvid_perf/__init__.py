"""causvid-perf: a performance regression suite for CausVid / Wan 2.1 video samplers."""

import logging

__version__ = "0.1.0"

# torchao (the optional `quant` extra) is imported by transformers and diffusers whenever it is
# installed, and its import logs notices about CUDA kernels a CPU build cannot load and about
# deprecated registrations: noise on every command's stderr that says nothing about the run.
for _name in ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer"):
    logging.getLogger(_name).setLevel(logging.ERROR)

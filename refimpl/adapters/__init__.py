"""Adapters: low-rank and other structured updates of frozen weights (parameter-efficient fine-tuning).

Ops in this family (one file per paper):

* ``lora_linear`` — the LoRA-style linear layer, *PiSSA: Principal Singular Values and
  Singular Vectors Adaptation of Large Language Models* (also used by CorDA and others)
* ``pissa_init`` — *PiSSA: Principal Singular Values and Singular Vectors Adaptation of
  Large Language Models*
"""

from .lora import lora_linear
from .pissa import pissa_init

__all__ = ["lora_linear", "pissa_init"]

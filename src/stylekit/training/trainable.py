"""One trained network and everything that steps it: the module, its DDP
wrapper under torchrun, its optimiser and gradient scaler, and the state a
checkpoint holds. A task with several networks (a GAN's generator and
discriminator, each with its own optimiser and learning rate) keeps one
``Trainable`` per network and puts their ``state_dict()`` in its own.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from .. import distributed


class Trainable:
    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, ctx: distributed.Context,
                 scale_gradients: bool = False):
        """``scale_gradients``: fp16 autocast on a GPU needs a gradient scaler; otherwise it is a no-op."""
        self.module = module
        # the module to run the loss through: DDP all-reduces its gradients across processes
        self.net = DDP(module) if ctx.distributed else module
        self.optimizer = optimizer
        self.scaler = torch.amp.GradScaler(enabled=scale_gradients)

    def step(self, loss: torch.Tensor) -> None:
        """Backward ``loss`` (through :attr:`net`) and take one optimiser step."""
        self.backward(loss)
        self.apply()

    def backward(self, loss: torch.Tensor) -> None:
        """Fresh gradients of ``loss`` (scaled, and all-reduced under DDP) in the
        module's ``.grad``, for a caller that inspects them before :meth:`apply`."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()

    def apply(self) -> None:
        """The optimiser step on the gradients :meth:`backward` left."""
        self.scaler.step(self.optimizer)
        self.scaler.update()

    @contextlib.contextmanager
    def frozen(self):
        """Parameters need no gradient inside: another network's loss runs through
        :attr:`module` (not :attr:`net`, so DDP expects no gradients either)."""
        flags = [p.requires_grad for p in self.module.parameters()]
        for p in self.module.parameters():
            p.requires_grad_(False)
        try:
            yield self.module
        finally:
            for p, flag in zip(self.module.parameters(), flags):
                p.requires_grad_(flag)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])

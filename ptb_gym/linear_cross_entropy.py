"""The LM head and its cross-entropy in one pass, for the `train` tool's own loop (`ptb_gym.training`).

A 262k-token vocabulary (Gemma 3) makes the logits most of a small model's training step, in time and memory:
16 x 1,024 tokens of fp32 logits are 16 GiB. Here they are made a chunk of rows at a time and each chunk's
gradients are computed at once, so the full logits are never held and never recomputed for the backward pass
(checkpointing each chunk's loss did: a third more of the head's work). Liger-Kernel's fused linear
cross-entropy does the same in Triton; this is plain PyTorch, so it runs wherever the model does.
"""

from __future__ import annotations

import functools

import torch


def _chunk(rows, weight, target, softcap):
    """One chunk's summed log-likelihood of its targets and the gradient of its loss in the logits."""
    raw = rows @ weight.T  # bf16 under autocast: the products in bf16, the softmax below in fp32
    logits = raw
    if softcap:
        capped = torch.tanh(raw.float() / softcap)
        logits = capped * softcap
    # One fused pass (a logsumexp took five, 15% of a Gemma-3-270M step's GPU time on an H100).
    log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
    picked = log_probs.gather(1, target[:, None]).squeeze(1)
    rows_taken = torch.arange(len(target), device=raw.device)
    if softcap:
        grad = log_probs.exp_()
        grad[rows_taken, target] -= 1
        grad = grad.mul_(1 - capped.square_()).to(raw.dtype)  # d(softcap * tanh(x / softcap)) / dx
    else:  # the softmax written over the products, and the targets' entries in fp32 before rounding
        grad = torch.exp(log_probs, out=raw)
        grad[rows_taken, target] = (picked.exp() - 1).to(raw.dtype)
    return picked.sum(), grad


@functools.cache
def _compiled_chunk():
    """`_chunk` through torch.compile, compiled once per process (chunks' rows vary: dynamic shapes)."""
    return torch.compile(_chunk, dynamic=True)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap, chunk_rows, compile):
        chunk = _compiled_chunk() if compile else _chunk
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        total = torch.zeros((), device=hidden.device, dtype=torch.float32)
        for start in range(0, len(targets), chunk_rows):
            rows = hidden[start: start + chunk_rows]
            picked, grad = chunk(rows, weight, targets[start: start + chunk_rows], softcap)
            total -= picked
            grad_hidden[start: start + chunk_rows] = grad @ weight
            grad_weight += grad.T @ rows
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_total, grad_weight * grad_total, None, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None,
                         chunk_rows: int, compile: bool = False) -> torch.Tensor:
    """The summed cross-entropy of `hidden @ weight.T` against `targets` (rows, no ignored ones), with Gemma's
    final logit soft-capping where `softcap` is set, `chunk_rows` rows at a time; differentiable in `hidden` and
    `weight`. With `compile`, each chunk's softmax and gradient are fused by torch.compile into a few kernels."""
    return _LinearCrossEntropy.apply(hidden, weight, targets, softcap, chunk_rows, compile)

"""The paper's GAN losses on logits (BCE-with-logits is numerically safe under bf16/fp16 autocast)."""
import torch
import torch.nn.functional as F


def d_loss_real(logits_real: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """D's loss on real images: -log D(x); a target below 1 is one-sided label smoothing (Salimans et al. 2016)."""
    return F.binary_cross_entropy_with_logits(logits_real.float(), torch.full_like(logits_real, target, dtype=torch.float32))


def d_loss_fake(logits_fake: torch.Tensor) -> torch.Tensor:
    """D's loss on generated images: -log(1 - D(G(z)))."""
    return F.binary_cross_entropy_with_logits(logits_fake.float(), torch.zeros_like(logits_fake, dtype=torch.float32))


def g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z)) (section 3 of Goodfellow et al.; what the paper trains with)."""
    return F.binary_cross_entropy_with_logits(logits_fake.float(), torch.ones_like(logits_fake, dtype=torch.float32))


def r1_penalty(logits_real: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the mean over the batch of |grad_x D(x)|^2 on real images, kept in the graph so
    D learns to flatten itself around the data instead of memorising it (``x_real`` must require grad)."""
    grad, = torch.autograd.grad(logits_real.float().sum(), x_real, create_graph=True)
    return grad.float().square().sum(dim=list(range(1, grad.dim()))).mean()

"""Knowledge distillation (Hinton et al. 2015) across label spaces.

Source and target label spaces differ (8 vs 2 classes), so the teacher's soft labels cannot supervise the
target's own head. The target carries an auxiliary head with the teacher's class count, trained to match
the teacher's temperature-softened outputs on *target* images; the shared trunk is where the knowledge
lands. Loss = CE(main head, y) + λ·T²·KL(softmax(teacher/T) ‖ softmax(aux/T)); only the main head is
ever evaluated.
"""

from __future__ import annotations

from collections.abc import Generator

import torch
import torch.nn.functional as F

from crossgen.nets import MLP
from crossgen.techniques.base import AnyFitRequest, Context, Outcome, mlp_outcome, new_mlp
from crossgen.techniques.none import fit_source_mlp, fit_target_mlp


def distill(ctx: Context) -> Generator[AnyFitRequest, list[float], Outcome]:
    cfg = ctx.config.distill
    t = cfg.temperature
    history: dict[str, list[float]] = {}
    teacher = new_mlp(ctx, "source")
    yield from fit_source_mlp(ctx, teacher, history)
    with ctx.timer("teacher_outputs"), torch.no_grad():
        teacher.eval()
        soft = F.log_softmax(teacher(ctx.target.train.x) / t, dim=-1)  # frozen teacher: computed once

    student = new_mlp(ctx, "target", aux_classes=ctx.source.n_classes)

    def loss_fn(net: MLP, xb: torch.Tensor, yb: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        logits, aux = net.forward_with_aux(xb)
        kd = F.kl_div(F.log_softmax(aux / t, dim=-1), soft[idx], log_target=True, reduction="batchmean")
        return F.cross_entropy(logits, yb) + cfg.lam * t * t * kd

    yield from fit_target_mlp(ctx, student, ctx.target, history, loss_fn=loss_fn)
    return mlp_outcome(student, history)

"""Weight EMA: an exponential moving average of a model's weights, as timm's ``ModelEmaV2``/``V3``
keep it (``train.ema_decay``, ``train.ema_warmup``).

Hand-written rather than torch's ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
use_buffers=True)``, which lacks four things this one needs: a decay that warms up with the
update count (``get_ema_multi_avg_fn`` has a fixed one); integer buffers copied
(it averages ``num_batches_tracked`` and truncates: 10 after 20 steps at 0.9, 1 at 0.9998); an
average that starts from the initial weights (its first update copies the model instead); and
the checkpoints' layout, ``model_ema`` a plain state dict of the model with ``ema_updates``
(its state dict prefixes ``module.`` and counts the first copy in ``n_averaged``). Given our
own averaging function, a priming update and that key mapping, it computes the same average to
the bit; what it would still do for us is one ``deepcopy`` and one loop."""
import copy

import torch


class ModelEma:
    """A copy of ``model`` (``module``, in eval mode, on the model's device) whose floating-point
    parameters and buffers (BatchNorm's running statistics) follow ``model``'s as
    ``ema = decay * ema + (1 - decay) * value`` at every ``update``; integer buffers
    (``num_batches_tracked``) are copied.

    With ``warmup`` the decay of the update after ``n`` others is ``min(decay, (1 + n) / (10 + n))``:
    the first updates move the average most of the way to the weights, which a short run needs
    (with 0.9998 and no warmup, half of the initial weights are still there after 3,500 steps).
    The update count is part of the state (``updates``), so a resumed run warms up as the
    uninterrupted one did."""

    def __init__(self, model, decay, warmup=False):
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0

    def current_decay(self):
        """The decay the next ``update`` applies."""
        if self.warmup:
            return min(self.decay, (1 + self.updates) / (10 + self.updates))
        return self.decay

    @torch.no_grad()
    def update(self, model):
        weight = 1.0 - self.current_decay()
        averaged, values = [], []
        for ema_value, value in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema_value.is_floating_point():
                averaged.append(ema_value)
                values.append(value)
            else:
                ema_value.copy_(value)
        # ema + weight * (value - ema), one fused kernel over all tensors (as timm's ModelEmaV3)
        torch._foreach_lerp_(averaged, values, weight)
        self.updates += 1

    def state_dict(self):
        """The averaged weights: a state dict of the model (what ``model_ema`` holds)."""
        return self.module.state_dict()

    def load_state_dict(self, state, updates):
        """Restore the averaged weights ``state`` and the number of ``updates`` made so far."""
        self.module.load_state_dict(state)
        self.updates = int(updates)

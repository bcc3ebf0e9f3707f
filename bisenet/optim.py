"""Parameter groups and the optimiser of the BiSeNet recipe."""
import torch


def param_groups(model, base_lr, weight_decay, head_lr_multiplier):
    """Four groups: {backbone, head} x {decay, no decay}.

    Modules named in ``model.head_modules`` train at ``head_lr_multiplier`` x LR; 1-D parameters
    (BN weights and biases, conv biases) get no weight decay.
    """
    heads = tuple(getattr(model, "head_modules", ()))
    groups = {
        (False, True): {"params": [], "lr": base_lr, "weight_decay": weight_decay, "name": "backbone"},
        (False, False): {"params": [], "lr": base_lr, "weight_decay": 0.0, "name": "backbone_no_decay"},
        (True, True): {"params": [], "lr": base_lr * head_lr_multiplier, "weight_decay": weight_decay, "name": "head"},
        (True, False): {"params": [], "lr": base_lr * head_lr_multiplier, "weight_decay": 0.0, "name": "head_no_decay"},
    }
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_head = name.split(".", 1)[0] in heads
        groups[(is_head, param.ndim > 1)]["params"].append(param)
    return [g for g in groups.values() if g["params"]]


def build_optimizer(model, train_cfg):
    groups = param_groups(model, train_cfg.base_lr, train_cfg.weight_decay, train_cfg.head_lr_multiplier)
    return torch.optim.SGD(groups, lr=train_cfg.base_lr, momentum=train_cfg.momentum,
                           weight_decay=train_cfg.weight_decay)

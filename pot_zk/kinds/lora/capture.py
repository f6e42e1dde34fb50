"""Capturing LoRA training steps from a model (:mod:`pot_zk.kinds.lora.detect` recognises them).

Supported LoRA models: an ``nn.Sequential`` of linear layers with ``nn.ReLU`` between them
(the shape :func:`pot_zk.kinds.mlp.architecture_of` accepts), where some linear layers are
recognised LoRA modules (:class:`pot_zk.kinds.lora.step.LoraLinear`, or peft ``lora.Linear`` inside a
``PeftModel``/``LoraModel``), all with one rank and alpha; the mean squared error or softmax
cross-entropy (class labels); plain ``torch.optim.SGD``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.base import copy_tensor
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.losses import check_labels, loss_for_targets, loss_value
from pot_zk.kinds.lora.detect import DetectedTraining, LoraLayerView, detect_training, unwrap_peft
from pot_zk.kinds.lora.step import LoraArchitecture, LoraTrainingStep, validate_lora_step
from pot_zk.kinds.mlp import architecture_of, check_sgd_optimizer


def lora_architecture_of(model: nn.Module, detected: DetectedTraining) -> tuple[LoraArchitecture, dict[int, LoraLayerView], nn.Sequential]:
    """The LoRA architecture of a detected LoRA model, its views by layer number, and the
    base MLP (the frozen linears in an nn.Sequential)."""
    inner = unwrap_peft(model)
    by_module = {id(view.module): view for view in detected.lora_layers}
    if not isinstance(inner, nn.Sequential):
        raise InvalidModelStateError(
            f"unsupported LoRA model type {type(inner).__name__}", expected="nn.Sequential of (LoRA) linear layers and ReLU", actual=type(inner).__name__
        )
    base_modules, views = [], {}
    for index, module in enumerate(inner):
        view = by_module.get(id(module))
        if view is not None:
            views[index // 2] = view
            module = view.base
        base_modules.append(module)
    if len(views) != len(detected.lora_layers):
        placed = {v.name for v in views.values()}
        raise InvalidModelStateError(
            "LoRA modules must be direct elements of the nn.Sequential",
            expected="LoRA linear layers in the Sequential",
            actual=sorted(v.name for v in detected.lora_layers if v.name not in placed),
        )
    base = architecture_of(nn.Sequential(*base_modules))
    ranks = sorted({(v.rank, v.alpha) for v in views.values()})
    if len(ranks) != 1:
        raise InvalidModelStateError(
            "all LoRA layers must share one rank and alpha", expected="one (rank, alpha)", actual={v.name: [v.rank, v.alpha] for v in views.values()}
        )
    rank, alpha = ranks[0]
    architecture = LoraArchitecture(base=base, adapted=tuple(sorted(views)), rank=rank, alpha=alpha)
    return architecture, views, nn.Sequential(*base_modules)


def _adapters(architecture: LoraArchitecture, views: dict[int, LoraLayerView]) -> dict[str, torch.Tensor]:
    out = {}
    for layer in architecture.adapted:
        out[f"{2 * layer}.lora_A"] = views[layer].lora_A
        out[f"{2 * layer}.lora_B"] = views[layer].lora_B
    return out


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The adapters of a LoRA model (pot-zk's layers or peft's) by canonical name
    (``"{i}.lora_A"``, ``"{i}.lora_B"``, i the Sequential index)."""
    architecture, views, _ = lora_architecture_of(model, detect_training(model))
    return _adapters(architecture, views)


def capture_lora_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor
) -> LoraTrainingStep:
    """Run one SGD step on the adapters of a LoRA model and capture it for proving: cross-entropy
    for integer class labels, else the mean squared error. Dtypes are checked before the step
    runs (:mod:`pot_zk.kinds.dtypes`)."""
    detected = detect_training(model)
    if detected.kind != "lora":
        raise InvalidModelStateError(
            "the model has no recognised LoRA modules; capture it with capture_sgd_step", expected="lora", actual=detected.kind
        )
    architecture, views, base_model = lora_architecture_of(model, detected)
    learning_rate = check_sgd_optimizer(optimizer)
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    missing = [name for name in detected.trainable if id(named[name]) not in optimized]
    if missing:
        raise InvalidModelStateError(f"the optimizer does not update the adapters {missing}", expected="all adapters", actual=missing, keys=missing)
    base_state = base_model.state_dict()
    architecture = _with_loss(architecture, targets)
    check_batch_dtype(inputs, targets, weights_dtype({"base": base_state, "adapters": _adapters(architecture, views)}))
    base = {key: copy_tensor(value) for key, value in base_state.items()}
    before = {key: copy_tensor(value) for key, value in _adapters(architecture, views).items()}
    optimizer.zero_grad()
    loss = loss_value(architecture.base.loss, model(inputs), targets)
    loss.backward()
    optimizer.step()
    step = LoraTrainingStep(
        architecture=architecture,
        learning_rate=learning_rate,
        base=base,
        adapters_before=before,
        adapters_after={key: copy_tensor(value) for key, value in _adapters(architecture, views).items()},
        inputs=copy_tensor(inputs),
        targets=copy_tensor(targets),
        loss=float(loss.detach()),
    )
    validate_lora_step(step)
    return step


def _with_loss(architecture: LoraArchitecture, targets: torch.Tensor) -> LoraArchitecture:
    """The architecture with the loss its targets train with: cross-entropy for class labels
    (checked to be in range), else the mean squared error (:func:`~pot_zk.kinds.losses.loss_for_targets`)."""
    loss = loss_for_targets(targets)
    if loss == "cross_entropy":
        check_labels(targets, architecture.base.dims[-1])
    return replace(architecture, base=replace(architecture.base, loss=loss))


def lora_step_from_models(
    model_before: nn.Module, model_after: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, learning_rate: float
) -> LoraTrainingStep:
    """The LoRA step that took ``model_before`` to ``model_after`` on ``(inputs, targets)``: one
    LoRA architecture, one frozen base (unchanged), the adapters before and after."""
    architecture, views, base_model = lora_architecture_of(model_before, detect_training(model_before))
    architecture_after, views_after, base_after = lora_architecture_of(model_after, detect_training(model_after))
    if architecture_after != architecture:
        raise InvalidModelStateError(
            "model_before and model_after have different LoRA architectures", expected=architecture.to_dict(), actual=architecture_after.to_dict()
        )
    base_state, after_state = base_model.state_dict(), base_after.state_dict()
    before, after = _adapters(architecture, views), _adapters(architecture, views_after)
    architecture = _with_loss(architecture, torch.as_tensor(targets))
    check_batch_dtype(inputs, targets, weights_dtype({"base": base_state, "adapters_before": before, "adapters_after": after}))
    changed = sorted(key for key, value in base_state.items() if not torch.equal(value, after_state[key]))
    if changed:
        raise InvalidModelStateError(
            f"the frozen base changed between model_before and model_after: {changed}", expected="an unchanged base", actual=changed, keys=changed
        )
    step = LoraTrainingStep(
        architecture=architecture,
        learning_rate=float(learning_rate),
        base={key: copy_tensor(value) for key, value in base_state.items()},
        adapters_before={key: copy_tensor(value) for key, value in before.items()},
        adapters_after={key: copy_tensor(value) for key, value in after.items()},
        inputs=copy_tensor(inputs),
        targets=copy_tensor(targets),
    )
    validate_lora_step(step)
    return step

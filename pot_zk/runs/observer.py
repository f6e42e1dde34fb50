"""Observing the optimizer steps of a training loop pot-zk does not own (``pot_zk.track``,
``proven_training``).

torch's optimizer hooks frame the loop's own ``optimizer.step()``:

* before it (``register_step_pre_hook``): a batch must have been declared for the step
  (:meth:`StepObserver.declare`), the optimizer's learning rate must be the one the run
  declares for this step and its other settings those it started with; the model and the
  optimizer are copied (the *shadow*: W_t and the optimizer's state, e.g. a velocity);
* after it (``register_step_post_hook``): the declared step is taken on the shadow by the
  step kind's own capture (:func:`pot_zk.kinds.registry.capture_step`: ``zero_grad``, the
  declared loss on the declared batch, ``backward``, the same optimizer's ``step``), and the
  loop's update must be that step: every parameter and every tensor of the optimizer's state
  within float rounding of the shadow's; and the shadow's step must be the kind's float64
  reference computed from its W_t and batch without the model's modules
  (:func:`reference_difference`: a model object computing another function than the declared
  MLP agrees with its own copy, not with the reference). A step that is not is undone (model and optimizer
  put back to their state before it) and refused with a
  :class:`~pot_zk.exceptions.StepMismatchError` naming what differs: the learning rate,
  settings, an update scaled by a factor (clipped, scaled or accumulated gradients), an update
  in another direction (another loss or batch), a frozen parameter or the optimizer's state.

The declared step (its W_t, batch, W_t+1 as the kind captured them) goes to ``on_step``. The
observer asks a step kind for nothing but its capture and its reference, so every registered
kind is observed the same way; the cost is a copy of the model and two more forward and
backward passes per step (one in float64).
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError, StepMismatchError, WitnessBuilderError
from pot_zk.kinds.base import EXACT_STATE, BatchStep
from pot_zk.kinds.registry import capture_step, kind_of

RELATIVE_TOLERANCE = 1e-4
"""How far the loop's update may be from the declared one, relative to the update's size
(float32 rounding of the same arithmetic in another order stays near 1e-6)."""
ABSOLUTE_TOLERANCE = 1e-6
"""... plus this much relative to the weights' size (float32 rounds a weight to ~6e-8 of it)."""
IGNORED_SETTINGS = ("params", "lr", "initial_lr")
"""Optimizer group keys that are not settings (``initial_lr``: added by LR schedulers)."""


@dataclass(frozen=True)
class DeclaredBatch:
    """A batch the loop declared for its next step, and where it sits in the declared data."""

    inputs: torch.Tensor
    targets: torch.Tensor
    batch_index: int | None = None
    """Its position among the declared batches (``proven_training``), None when batches stream."""
    samples: tuple[int, ...] | None = None
    """Its samples' positions in a declared data set (``track(dataset=...)``)."""


@dataclass(frozen=True)
class Declaration:
    """What every step of the run must be: its kind in words, its learning rate for each step,
    the optimizer settings it started with."""

    what: str
    """e.g. ``SGD step (cross_entropy loss)``."""
    learning_rate: Callable[[int], float]
    settings: tuple[dict[str, Any], ...]


def optimizer_settings(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], ...]:
    """Each parameter group's settings but its learning rate."""
    return tuple({key: value for key, value in group.items() if key not in IGNORED_SETTINGS} for group in optimizer.param_groups)


def shadow(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Copies of ``model`` and ``optimizer`` (groups, settings and state), the copy optimizing
    the copy's parameters; hooks registered on ``optimizer`` are not copied."""
    model_copy = copy.deepcopy(model)
    mapping = {id(p): q for p, q in zip(model.parameters(), model_copy.parameters())}
    outside = [i for group in optimizer.param_groups for i, p in enumerate(group["params"]) if id(p) not in mapping]
    if outside:
        raise InvalidModelStateError("the optimizer updates parameters that are not the model's", expected="the model's parameters", actual=outside)
    groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": [mapping[id(p)] for p in group["params"]]} for group in optimizer.param_groups]
    accepted = inspect.signature(type(optimizer).__init__).parameters
    # the defaults the constructor takes (torch's AdamW keeps ``decoupled_weight_decay`` among its
    # defaults but does not take it); each group carries its own settings anyway
    optimizer_copy = type(optimizer)(groups, **{key: value for key, value in optimizer.defaults.items() if key in accepted})
    for parameter, state in _state_copy(optimizer).items():
        optimizer_copy.state[mapping[id(parameter)]] = state
    return model_copy, optimizer_copy


def _state_copy(optimizer: torch.optim.Optimizer) -> dict[Any, dict[str, Any]]:
    """The optimizer's per-parameter state as it is (load_state_dict would cast a float64 state,
    pot-zk's exact moments, to the parameter's dtype)."""
    return {
        parameter: {key: value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value) for key, value in state.items()}
        for parameter, state in optimizer.state.items()
    }


def _restore_state(optimizer: torch.optim.Optimizer, saved: dict[Any, dict[str, Any]]) -> None:
    for parameter in list(optimizer.state):
        if parameter not in saved:
            del optimizer.state[parameter]
    for parameter, state in saved.items():
        optimizer.state[parameter] = state


class StepObserver:
    """Hooks on ``optimizer`` that check and hand over each step the loop takes (module docstring).
    ``number()`` is the number of the next step; :meth:`close` removes the hooks."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        on_step: Callable[[BatchStep, DeclaredBatch], None],
        number: Callable[[], int],
        on_refused: Callable[[InvalidModelStateError | WitnessBuilderError], None] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.on_step = on_step
        self.number = number
        self.on_refused = on_refused
        """Told of every refusal before it is raised (the audit trail's ``step.refused``): a loop
        may catch one and go on (review27: such a refusal left no trace)."""
        self.declaration: Declaration | None = None
        self.pending: DeclaredBatch | None = None
        self._shadow: tuple[nn.Module, torch.optim.Optimizer] | None = None
        self._before: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._handles = [
            optimizer.register_step_pre_hook(self._reported(self._before_step)),
            optimizer.register_step_post_hook(self._reported(self._after_step)),
            optimizer.register_load_state_dict_pre_hook(self._before_load),
            optimizer.register_load_state_dict_post_hook(self._after_load),
        ]
        self._loaded: list[dict[str, torch.Tensor] | None] = []

    def _reported(self, hook: Callable[..., None]) -> Callable[..., None]:
        """``hook`` telling :attr:`on_refused` of a refusal it raises."""

        def reported(*args: Any, **kwargs: Any) -> None:
            try:
                hook(*args, **kwargs)
            except (InvalidModelStateError, WitnessBuilderError) as refused:
                if self.on_refused is not None:
                    self.on_refused(refused)
                raise

        return reported

    def declare(self, batch: DeclaredBatch) -> None:
        """The batch of the next ``optimizer.step()``."""
        self._reported(self._declare)(batch)

    def _declare(self, batch: DeclaredBatch) -> None:
        if self.pending is not None:
            self._refuse(
                "batch",
                "a batch is already declared for this step and no optimizer.step() took it "
                "(one batch per step: gradients accumulated over several batches are not a step pot-zk proves; a batch your loop "
                "skips must be skipped before run.batch)",
            )
        self.pending = batch

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _refuse(self, differs: str, detail: str, **context: Any) -> None:
        what = self.declaration.what if self.declaration is not None else "step"
        number = self.number()
        raise StepMismatchError(f"step {number}: the observed update is not the declared {what}: {detail}", step=number, differs=differs, **context)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if len(args) > 1 or kwargs.get("closure") is not None:  # args[0] is the optimizer itself
            self._refuse("closure", "optimizer.step() was given a closure; pot-zk observes steps without one")
        if self.pending is None:
            self._refuse("batch", "optimizer.step() without a declared batch: call run.batch(x, y) before the step")
        if torch.is_inference_mode_enabled():
            self.pending = None
            self._refuse("inference-mode", "optimizer.step() under torch.inference_mode(): the declared step is taken on a copy with autograd; step outside it")
        assert self.declaration is not None
        self._check_settings(self.declaration)
        self._before = (copy.deepcopy(self.model.state_dict()), _state_copy(optimizer))
        self._shadow = shadow(self.model, optimizer)

    def _check_settings(self, declaration: Declaration) -> None:
        declared = declaration.learning_rate(self.number())
        if not declared > 0:  # a schedule that reaches 0 (cosine without eta_min): refused before the step, not after it
            self.pending = None
            self._refuse("learning_rate", f"learning rate {declared:g} at this step: a step at rate 0 trains nothing, and no statement proves one "
                         "(a schedule that reaches 0: give it a floor, e.g. eta_min > 0, or stop before it)", expected="> 0", actual=declared)
        for group in self.optimizer.param_groups:
            if float(group["lr"]) != declared:
                self.pending = None
                found, number = float(group["lr"]), self.number()
                hint = (  # a review: a scheduler stepped in the wrong place got no hint
                    ": the declared rate of the next step (scheduler.step() called before optimizer.step()?)" if found == declaration.learning_rate(number + 1)
                    else ": the rate of the step before (a scheduler stepped once per epoch, or not handed to track(..., scheduler=...)?)"
                    if number > 0 and found == declaration.learning_rate(number - 1) else ""
                )
                self._refuse("learning_rate", f"learning rate {found:g}, declared {declared:g}{hint}", expected=declared, actual=found)
        for found, started in zip(optimizer_settings(self.optimizer), declaration.settings):
            changed = {key: (found.get(key), started.get(key)) for key in set(found) | set(started) if found.get(key) != started.get(key)}
            if changed:
                self.pending = None
                said = ", ".join(f"{key} {now!r}, declared {then!r}" for key, (now, then) in sorted(changed.items()))
                self._refuse("settings", f"optimizer settings changed: {said}", expected=started, actual=found)

    def _before_load(self, optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
        """The exact statement's float64 state (:data:`~pot_zk.kinds.base.EXACT_STATE`) of a state
        dict being loaded, in torch's parameter order, before torch casts it to the parameters' dtype
        (a review: an Adam checkpoint round trip mid-run was refused as a changed state)."""
        state = state_dict.get("state", {})
        self._loaded = [
            {key: value.clone() for key, value in state.get(index, {}).items() if key.startswith(EXACT_STATE) and torch.is_tensor(value)} or None
            for group in state_dict.get("param_groups", []) for index in group["params"]
        ]

    def _after_load(self, optimizer: torch.optim.Optimizer) -> None:
        parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        for parameter, exact in zip(parameters, self._loaded):
            if exact is not None and parameter in optimizer.state:
                optimizer.state[parameter].update(exact)
        self._loaded = []

    def _after_step(self, optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        batch, (model_copy, optimizer_copy), before = self.pending, self._shadow, self._before
        assert batch is not None and before is not None
        self.pending, self._shadow, self._before = None, None, None
        try:
            with torch.enable_grad():  # the loop may call optimizer.step() under no_grad
                declared = capture_step(model_copy, optimizer_copy, batch.inputs, batch.targets)
            problem = _difference(self.model, optimizer, model_copy, optimizer_copy, before[0])
            if problem is None:
                words = reference_difference(declared, self.model)
                problem = None if words is None else ("model", words)
            if problem is not None:
                self._refuse(problem[0], problem[1])
            self.on_step(declared, batch)
        except (InvalidModelStateError, WitnessBuilderError) as refused:  # a review: a refusal raised after the step (capture, the state chain) left it applied
            self.model.load_state_dict(before[0])
            _restore_state(optimizer, before[1])
            if isinstance(refused, StepMismatchError):
                raise
            if isinstance(refused, WitnessBuilderError):  # review27: out of the statement's range (weights, batch, state): undone too, and named
                context = {k: v for k, v in refused.context.items() if k not in ("step",)}
                raise WitnessBuilderError(f"step {self.number()}: {refused.message} (the step is undone)", step=self.number(), **context) from refused
            self._refuse("state", refused.message, **{k: v for k, v in refused.context.items() if k not in ("step", "differs")})


def reference_difference(step: BatchStep, model: nn.Module) -> str | None:
    """Words for where ``step`` (the declared step as ``model``, the loop's, took it on a copy)
    is not the step its kind computes from the step's own W_t, state and batch with tensor
    arithmetic only (:meth:`~pot_zk.kinds.base.StepKind.reference_after`), within float32
    rounding; None when it is. The shadow is a copy of the loop's own model, so a module
    computing another function (an instance's own forward, a patched function, a global module
    hook) agrees with it; the reference does not (under an exact statement the loop's step would
    otherwise be replaced by the declared MLP's without a word). A float16 / bfloat16 model is
    not compared (its rounding exceeds the tolerance; an exact statement refuses it at every
    step, a float one checks its own tolerance on the committed values)."""
    if any(parameter.dtype not in (torch.float32, torch.float64) for parameter in model.parameters()):
        return None
    kind = kind_of(step)
    named = {tensor.name: tensor.values for tensor in kind.encode(step)}
    expected = kind.reference_after(step)
    for before, after in kind.chained_inputs:
        if after not in expected:
            continue
        start, found, wanted = (t.reshape(-1).to(torch.float64) for t in (named[before], named[after], expected[after]))
        allowed = RELATIVE_TOLERANCE * float((wanted - start).abs().max()) + ABSOLUTE_TOLERANCE * max(1.0, float(start.abs().max()))
        largest = float((found - wanted).abs().max())
        if not largest <= allowed:
            return (
                f"the model does not compute the declared MLP: its {after.replace('_', ' ')} is up to {largest:.3g} from the step "
                f"recomputed from W_t and the batch without the model's modules ({allowed:.3g} allowed): a module with its own "
                "forward, a hook or a patched function?"
            )
    return None


def _difference(
    model: nn.Module, optimizer: torch.optim.Optimizer, model_copy: nn.Module, optimizer_copy: torch.optim.Optimizer, before: dict[str, torch.Tensor]
) -> tuple[str, str] | None:
    """What differs between the loop's state after its step and the declared step's (the
    shadow's), as (``differs``, words); None when they agree within float rounding."""
    observed = dict(model.named_parameters())
    declared = dict(model_copy.named_parameters())
    frozen = [name for name, p in observed.items() if not p.requires_grad and not torch.equal(p.detach(), before[name])]
    if frozen:
        return "frozen", f"frozen parameters changed: {frozen[:5]}"
    trained = [name for name, p in observed.items() if p.requires_grad]
    u_observed = torch.cat([(before[n].double() - observed[n].detach().double()).reshape(-1) for n in trained])
    u_declared = torch.cat([(before[n].double() - declared[n].detach().double()).reshape(-1) for n in trained])
    if not bool(torch.isfinite(u_observed).all()):  # review27: NaN compared as "within tolerance" and the exact step replaced it
        bad = [n for n in trained if not bool(torch.isfinite(observed[n].detach()).all())]
        return "not-finite", (f"the step left weights that are not finite (NaN or inf) in {bad[:5]}: a NaN or infinite loss or gradient "
                              "(clip_grad_norm_ turns an infinite gradient into NaN); the declared step is finite")
    weights = max(1.0, float(torch.cat([before[n].double().reshape(-1).abs() for n in trained]).max()))
    allowed = RELATIVE_TOLERANCE * float(u_declared.abs().max()) + ABSOLUTE_TOLERANCE * weights
    if not float((u_observed - u_declared).abs().max()) <= allowed:  # not <=: a NaN is a difference
        return _update_difference(u_observed, u_declared, allowed, trained, observed)
    for (name, parameter), copy_parameter in zip(observed.items(), declared.values()):
        found, wanted = optimizer.state.get(parameter, {}), optimizer_copy.state.get(copy_parameter, {})
        for key in sorted(set(found) | set(wanted)):
            a, b = found.get(key), wanted.get(key)
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape:
                scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
                if b.numel() and float((a.double() - b.double()).abs().max()) <= RELATIVE_TOLERANCE * scale:
                    continue
            elif not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor) and a == b:
                continue
            return "optimizer-state", f"the optimizer's {key} of {name} is not the declared step's"
    return None


def _update_difference(u_observed: torch.Tensor, u_declared: torch.Tensor, allowed: float, names: list[str], parameters: dict) -> tuple[str, str]:
    """Is the loop's update a multiple of the declared one (gradients scaled) or another direction?"""
    norm = float(u_declared.dot(u_declared))
    factor = float(u_observed.dot(u_declared)) / norm if norm > 0 else math.inf
    if norm > 0 and float((u_observed - factor * u_declared).abs().max()) <= allowed:
        if abs(factor) < 0.05:  # a review: zero_grad() between backward() and step() was taken for clipping
            hint = "no gradient reached the step (optimizer.zero_grad() called after backward()?), or gradients scaled to 0"
        elif factor < 0:  # review27: a negated loss was called clipping
            hint = "it goes the other way (a negated loss: gradient ascent, or an optimizer with maximize=True)"
        elif factor > 1.5 and abs(factor - round(factor)) < 0.05:
            hint = (f"gradients accumulated over {round(factor)} backward() calls (optimizer.zero_grad() missing?), a loss with "
                    "reduction='sum' (the declared loss is the batch mean), or a loss scaled up")
        elif factor < 1:
            hint = "gradients clipped or scaled down (clip_grad_norm_?), or a loss with another reduction"
        else:
            hint = "gradients scaled up, or a loss with another reduction"
        return "gradient-scale", f"the update is {factor:.4g} times the declared one: {hint}"
    position = int((u_observed - u_declared).abs().argmax())
    for name in names:
        size = parameters[name].numel()
        if position < size:
            where = f"{name}[{', '.join(str(int(i)) for i in torch.unravel_index(torch.tensor(position), parameters[name].shape))}]"
            break
        position -= size
    largest = float((u_observed - u_declared).abs().max())
    return "update", (
        f"the update differs from the declared one by up to {largest:.3g} (at {where}): another loss, another batch, gradients "
        "left from an earlier backward() (optimizer.zero_grad() missing?) or changed between backward() and optimizer.step()"
    )

"""The structured-config schema of every pot-zk Hydra app: one dataclass per group, one root.

Registered in Hydra's ConfigStore as ``pot_zk_schema``; ``conf/config.yaml`` lists it first in
its defaults, so every option YAML and every command-line override is validated against
these types at compose time (unknown keys and wrong types fail). A name that selects an
implementation (``handler.name``, ``policy.name``, ``executor.name``, ``data.name``,
``data.part``, ``model.kind``, ``prover.backend``) is a string looked up in that part's registry
by :func:`pot_zk.config.build.build`: an unknown name is a ConfigurationError there, naming the
valid ones. To add a group, write its dataclass here, add one field to :class:`PotZkConfig`,
and add ``conf/<group>/*.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from pot_zk.data.catalog import DataSettings


@dataclass
class ProvingConfig:
    enabled: bool = True
    mode: str = "custom"
    """Name of the mode preset that set this run up (recorded in the manifest and the audit trail): one of
    :data:`pot_zk.bundle.layout.MODES`."""


@dataclass
class ProverConfig:
    backend: str = MISSING
    """The prover backend (:data:`pot_zk.backends.registry.BACKENDS`): its circuits,
    commitments, keys and proof type (e.g. ``ezkl``: ``zk-halo2``)."""
    binary: str = MISSING
    """Program name (looked up in search_paths, the interpreter's directory, PATH) or absolute path."""
    search_paths: List[str] = field(default_factory=list)
    timeout_s: float = 1800.0
    args: List[str] = field(default_factory=list)
    """Extra command-line arguments passed to the program."""
    certificates: List[str] = field(default_factory=lambda: ["reexec"])
    """The non-ZK certificates that can stand in for the backend's proofs, in the order the
    ``fallback`` handler tries them (its default ``handler.fallback_chain``)."""


@dataclass
class RetryConfig:
    max_retries: int = 0
    """Retries after the first attempt: attempts = max_retries + 1."""
    max_attempts: Optional[int] = None
    """Attempts in total, the first included. When set it takes precedence over max_retries."""
    initial_delay_s: float = 1.0
    multiplier: float = 2.0
    max_delay_s: float = 60.0
    jitter_s: float = 0.0


@dataclass
class HandlerConfig:
    name: str = MISSING
    """A failure handler of :data:`pot_zk.proving.handlers.HANDLERS`."""
    park_dir: str = "${run_dir}/pending"
    """Where the ``retry`` handler parks failed jobs for ``pot-zk prove-pending``."""
    fallback_chain: List[str] = field(default_factory=lambda: "${prover.certificates}")  # type: ignore[assignment]
    """Strategy names the ``fallback`` handler tries, in order (default: the backend's certificates)."""


@dataclass
class AuditConfig:
    file_name: str = "audit.jsonl"


@dataclass
class ConsoleConfig:
    records: bool = False
    """Print every audit record on the terminal (``pot-zk train -v`` sets it). False: the
    terminal shows the progress bars, warnings, errors and the summary; the audit file has
    every record either way."""


@dataclass
class ModelConfig:
    kind: str = "sgd"
    """The step kind (:mod:`pot_zk.kinds.registry`). ``sgd``: nn.Sequential of Linear layers
    with ReLU between them, all trained (see docs/proofs.md); ``lora``: that MLP frozen, LoRA
    adapters trained (see docs/lora.md)."""
    dims: List[int] = MISSING
    """Layer widths, inputs first: [16, 8, 10] is 16 -> 8 -> ReLU -> 10."""
    loss: str = "mse"
    """``mse`` (float targets) or ``cross_entropy`` (softmax cross-entropy on integer class
    labels; kind=sgd only)."""
    lora_layers: List[int] = field(default_factory=lambda: [0])
    """kind=lora: the layers (0 = first Linear) that get adapters."""
    lora_rank: int = 2
    lora_alpha: float = 4.0
    base_run: Optional[str] = None
    """kind=lora: the run directory whose final model is the frozen base."""


@dataclass
class DataConfig:
    name: str = MISSING
    """A data set of :data:`pot_zk.data.datasets.DATASETS`."""
    num_samples: int = 256
    """Synthetic data only: how many samples to make."""
    seed: int = DataSettings.seed
    """Synthetic data: the seed it is made from. Every set: the seed of the held-out choice
    (verify fails another than this default unless the auditor accepts it: ``holdout_seed``)."""
    holdout: float = DataSettings.holdout
    """Share of the declared samples held out (never trained on; the initial, epoch-end and
    final models are scored on them). 0 holds none out (another share: ``holdout_fraction``)."""
    part: str = "all"
    """``base``: the first half of the samples, ``adapt``: the second half (train a base
    model on one and adapt it with LoRA on the other), ``all``: every sample."""


@dataclass
class PolicyConfig:
    name: str = MISSING
    """A policy of :data:`pot_zk.proving.policy.POLICIES`."""
    k: int = 1
    """every_k: prove steps 0, k, 2k, ..."""
    fraction: float = 1.0
    """sample: probability that a step is proven."""
    seed: int = 0


@dataclass
class ExecutorConfig:
    name: str = MISSING
    """An executor of :data:`pot_zk.proving.executors.EXECUTORS`."""
    workers: Optional[int] = None
    """process, dask: how many prover programs run at once (dask: also the LocalCluster's worker
    processes); None: one per core this process may use."""
    scheduler_address: Optional[str] = None
    """dask: the scheduler to connect to, e.g. ``tcp://10.0.0.5:8786``; None starts a LocalCluster."""


@dataclass
class LoggerConfig:
    name: str = "none"
    """A scalar logger of :data:`pot_zk.core.scalars.SCALAR_LOGGERS`: ``none`` or ``tensorboard``."""
    log_dir: str = "${run_dir}/tensorboard"
    """Where ``tensorboard`` writes its event files."""


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 0.05
    seed: int = 0
    max_steps: Optional[int] = None
    """Stop after this many steps in total (None: run every epoch)."""
    progress: bool = True
    record_loss: bool = True
    """Write each step's training loss on its (private) batch into commitments.jsonl and the
    audit trail, which an export hands to the auditor; ``false``: the records carry no loss
    (verify does not read it; the trainer's own logger and progress bar still show it)."""


@dataclass
class OptimizerConfig:
    """The torch optimizer (:mod:`pot_zk.kinds.optimizer`; the learning rate is
    ``train.learning_rate``). Which step kind it makes is the kinds' to say
    (:func:`pot_zk.kinds.registry.kind_for`): plain SGD ``sgd`` (or ``lora``) steps, SGD with
    momentum ``momentum`` steps, Adam and AdamW ``adamw`` steps."""

    name: str = "sgd"
    """``sgd`` (torch.optim.SGD), ``adam`` (torch.optim.Adam: weight decay added to the
    gradient) or ``adamw`` (torch.optim.AdamW: decoupled weight decay); Adam's and AdamW's
    moments and step count are committed next to the weights (docs/groth16.md)."""
    momentum: float = 0.0
    """sgd: > 0 is SGD with momentum (no dampening, no Nesterov); its steps are ``momentum``
    steps whose velocity is committed next to the weights (docs/proofs.md). 0: plain SGD."""
    weight_decay: float = 0.0
    """sgd: L2 weight decay, with momentum > 0 only; adam: L2 weight decay; adamw: decoupled."""
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    """adam, adamw: the decay rates of the first and second moment."""
    eps: float = 1e-8
    """adam, adamw: added to the square root of the second moment."""
    schedule: "ScheduleConfig" = field(default_factory=lambda: ScheduleConfig())
    """The learning-rate schedule from ``train.learning_rate`` (``optimizer.schedule.name=step
    optimizer.schedule.step_size=30``)."""


@dataclass
class ScheduleConfig:
    """A learning-rate schedule stepped after each optimizer step (:mod:`pot_zk.kinds.schedule`):
    ``name`` ``constant`` (none), ``step`` (StepLR: step_size, gamma), ``multistep`` (milestones,
    gamma), ``cosine`` (CosineAnnealingLR: T_max, eta_min), ``linear`` (LinearLR, a warm-up:
    start_factor, end_factor, total_iters) or ``sequential`` (SequentialLR: ``schedules``, a list
    of such dicts, and milestones). Settings a schedule does not take stay null."""

    name: str = "constant"
    step_size: Optional[int] = None
    gamma: Optional[float] = None
    milestones: Optional[List[int]] = None
    T_max: Optional[int] = None
    eta_min: Optional[float] = None
    start_factor: Optional[float] = None
    end_factor: Optional[float] = None
    total_iters: Optional[int] = None
    schedules: Optional[List[Any]] = None


@dataclass
class SrsConfig:
    path: Optional[str] = None
    """A KZG SRS file from a ceremony you trust; None: a locally generated dev SRS."""
    allow_dev_srs: bool = True
    """Accept the locally generated SRS (its maker knows the trapdoor). Production: false."""


WitnessRetain = Enum("WitnessRetain", {name: name for name in ("auto", "all", "scheduled")})


@dataclass
class WitnessConfig:
    """Which step witnesses stay in the run bundle (so an auditor can challenge the step later)."""

    retain: WitnessRetain = WitnessRetain.auto
    """``all``: every step's; ``scheduled``: only the policy's steps, until their proof is
    final; ``auto``: all when one step's witness is at most ``max_step_bytes``, else scheduled."""
    max_step_bytes: int = 1 << 20


@dataclass
class PotZkConfig:
    run_dir: str = "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"
    proving: ProvingConfig = field(default_factory=ProvingConfig)
    prover: ProverConfig = field(default_factory=ProverConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    handler: HandlerConfig = field(default_factory=HandlerConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    cache_dir: str = "${oc.env:POT_ZK_CACHE,${oc.env:HOME}/.cache/pot-zk}"
    """Compiled circuits, keys and the dev SRS, shared across runs (keys are large)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    circuit: Dict[str, Any] = field(default_factory=dict)
    """The prover backend's circuit settings; its ``conf/prover/<backend>.yaml`` sets every
    one (so a misspelt key fails at compose time) and the backend checks them at build time
    (ezkl: scale, param_scale, decomp_base, decomp_legs, tolerance_ulps; docs/proofs.md)."""
    srs: SrsConfig = field(default_factory=SrsConfig)
    witness: WitnessConfig = field(default_factory=WitnessConfig)


def register_schema() -> None:
    """Put the schema into Hydra's ConfigStore (once per process: the store keeps it, and each
    store call converts the dataclasses again, ~20 ms a composition)."""
    store = ConfigStore.instance()
    if "pot_zk_schema.yaml" not in store.repo:
        store.store(name="pot_zk_schema", node=PotZkConfig)


register_schema()

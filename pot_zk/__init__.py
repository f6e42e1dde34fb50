"""pot-zk: verifiable neural-network training with zero-knowledge proofs of each SGD step."""

from pot_zk.auditor_integration import ProofFailureAction, ZkIntegration, create_zk_integration
from pot_zk.auto_prover import AutoProver, auto_prove_training_step
from pot_zk.exceptions import PotZkError
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline
from pot_zk.proving.strategies import ProofJob
from pot_zk.runs.track import track
from pot_zk.step_proof import StepProof

__version__ = "0.1.0"

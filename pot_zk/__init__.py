"""pot-zk: verifiable neural-network training with zero-knowledge proofs of each SGD step."""

from pot_zk.auditor_integration import ZkIntegration, create_zk_integration
from pot_zk.exceptions import PotZkError
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline
from pot_zk.proving.strategies import ProofJob

__version__ = "0.1.0"

"""LoRA steps: adapters on a frozen ReLU MLP base."""

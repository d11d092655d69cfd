"""The networks and what runs them: VAE, DiT, flow, text encoder, sampler, checkpoints."""

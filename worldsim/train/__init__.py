"""Training: the data stream, the shared loop, and the VAE, DiT and reward trainers."""

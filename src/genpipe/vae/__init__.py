"""Autoencoder and VAE on Fashion-MNIST (rule group vae).

``autoencoder`` trains, saves and loads both models; ``latent_probe`` trains classifiers on their
latents; ``anomaly`` scores held-out-class detection; ``plots`` draws reconstructions, traversals,
interpolations, latent maps, FGSM and ROC figures.
"""

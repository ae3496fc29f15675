"""Adversarial robustness (rule group robustness): FGSM and accuracy under attack."""

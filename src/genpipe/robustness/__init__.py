"""Adversarial robustness (rule group robustness): FGSM, PGD, accuracy under attack; the attack_classifiers stage."""

"""Class-conditional DDPM on MNIST (rule group ddpm).

``diffusion`` is training (noise schedule, EMA, resumable checkpoints) and sampling with
diffusers' schedulers and classifier-free guidance; ``stages`` the sample_ddpm / compare_samplers
stage functions; ``plots`` their figures.
"""

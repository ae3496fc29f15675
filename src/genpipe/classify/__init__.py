"""Image classifiers and what the course studies with them (rule groups classifier, norm_study).

``classifier`` builds, trains, saves and loads the ResNet of one stage; ``train`` is the training
loop and evaluation; ``metrics`` accuracy / F1 / confusion; ``norm_study`` aggregates the
normalisation study; ``gradcam`` computes Grad-CAM maps.
"""

# Colour scenes composed from real MNIST digits and the scene parser that judges images (issue 13).

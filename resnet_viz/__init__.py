"""ResNet Lab: watch plain and residual CNNs train on MNIST, and see why skip connections help."""
__version__ = "0.1.0"

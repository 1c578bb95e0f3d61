"""Family name -> builder, the way torchvision and timm map names to models. config.FAMILIES says which
settings each family takes (torch-free, for the UI and the CLI); this says how each one is built."""
from ..config import FAMILIES, ModelSpec
from .alexnet import AlexNet
from .cifar import CifarResNet
from .lenet import LeNet5
from .net import Net
from .resnet import ResNet
from .vgg import VGG

BUILDERS = {"cifar": CifarResNet, "resnet": ResNet, "lenet5": LeNet5, "alexnet": AlexNet, "vgg": VGG}
assert set(BUILDERS) == set(FAMILIES), "every family of config.FAMILIES needs a builder, and no other"

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)  # what the lab trains on: grayscale 28x28 digits (MNIST, Fashion-MNIST)


def build_model(spec: ModelSpec, in_channels: int = IMAGE_SHAPE[0], num_classes: int = NUM_CLASSES) -> Net:
    net = BUILDERS[spec.family](spec, in_channels=in_channels, num_classes=num_classes)
    return net.freeze_backbone() if spec.frozen_backbone else net

"""Zoo models: one module per paper or textbook chapter, each model a LightningModule."""

from zoo.models.base import Classifier, ImageClassifier, ZooModule
from zoo.models.textbook_ch3 import MLP
from zoo.models.textbook_ch4 import BookCNN, LeNet

__all__ = ["ZooModule", "Classifier", "ImageClassifier", "MLP", "BookCNN", "LeNet"]
